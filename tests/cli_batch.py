"""Run many ``tumorca`` command lines in one process (``python tests/cli_batch.py < cases.json``) and report
each one's exit status, stderr and time as JSON: the adversarial tests start one real process for many bad
inputs instead of one process each (2 cores).  A hang still shows, as the caller's timeout on the whole batch.

Input: a JSON list of ``[argv, cwd]``.  Output (stdout, the last line): a JSON list of ``{"code", "stderr",
"stdout", "seconds", "traceback"}``; ``traceback`` is the text of an exception that escaped the command ("" if
none).
"""
from __future__ import annotations

import json
import os
import sys
import time
import traceback


def main() -> None:
    from click.testing import CliRunner

    from tumorca.cli import cli

    cases = json.load(sys.stdin)
    out = []
    home = os.getcwd()
    for argv, cwd in cases:
        os.chdir(cwd or home)
        t0 = time.perf_counter()
        res = CliRunner().invoke(cli, argv)
        tb = ""
        if res.exception is not None and not isinstance(res.exception, SystemExit):
            tb = "".join(traceback.format_exception(*res.exc_info))
        out.append({"code": res.exit_code, "stderr": res.stderr, "stdout": res.stdout[-2000:],
                    "seconds": time.perf_counter() - t0, "traceback": tb})
    os.chdir(home)
    sys.stdout.write("\n" + json.dumps(out) + "\n")


if __name__ == "__main__":
    main()
