#!/usr/bin/env python
"""Run the validation suite and write docs/validation.md (the same as ``tumorca validate``).

    python scripts/validate.py --workers 2           # full suite: hours on 2 cores
    python scripts/validate.py --quick               # a few minutes
    python scripts/validate.py --fresh --workers 2   # regenerate everything from scratch
"""
from tumorca.cli import cli

if __name__ == "__main__":
    cli(["validate", *__import__("sys").argv[1:]])
