"""Lattice shapes and the other arguments of a run (seed, threads, memory): one rule for the engine, the run files
and the command line (pure Python, no kernels)."""
from __future__ import annotations

import numbers
import os
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


def check_seed(seed: Any) -> int:
    """The seed as an int; LatticeError unless an integer in [0, 2**64)."""
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise LatticeError(f"seed must be an integer in [0, 2**64), got {seed!r}")
    if not 0 <= int(seed) < 2 ** 64:
        raise LatticeError(f"seed must be in [0, 2**64), got {seed!r}")
    return int(seed)


def check_threads(threads: Any) -> int:
    """A thread count: None means the CPUs this process may use; LatticeError unless a positive integer."""
    if threads is None:
        try:
            return max(1, len(os.sched_getaffinity(0)))
        except AttributeError:  # pragma: no cover - non-Linux
            return max(1, os.cpu_count() or 1)
    if isinstance(threads, bool) or not isinstance(threads, numbers.Integral) or threads < 1:
        raise LatticeError(f"threads must be a positive integer, got {threads!r}")
    return int(threads)


def available_memory() -> int | None:
    """Bytes of memory available to a new allocation (MemAvailable), or None where unknown."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def fmt_bytes(n: float) -> str:
    """``n`` bytes in binary units with one decimal (``12.0 MiB``)."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if n < 1024 or unit == "PiB":
            return f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} PiB"
