"""Lattice shapes: one rule for the engine, the run files and the command line (pure Python, no kernels)."""
from __future__ import annotations

import numbers
from typing import Any

from .errors import LatticeError


def normalize_shape(shape: Any) -> tuple[int, int, int]:
    """``(ny, nx)`` or ``(nz, ny, nx)`` as a 3-tuple (2D is depth 1); LatticeError if not positive integers."""
    try:
        dims = tuple(shape)
    except TypeError:
        raise LatticeError(f"shape must be (ny, nx) or (nz, ny, nx), got {shape!r}") from None
    if len(dims) not in (2, 3):
        raise LatticeError(f"shape must have 2 or 3 dimensions, got {len(dims)}: {shape!r}")
    for d in dims:
        if isinstance(d, bool) or not isinstance(d, numbers.Integral):
            raise LatticeError(f"shape entries must be integers, got {d!r} in {shape!r}")
        if d < 1:
            raise LatticeError(f"shape entries must be positive, got {d!r} in {shape!r}")
    dims = tuple(int(d) for d in dims)
    return (1,) + dims if len(dims) == 2 else dims
