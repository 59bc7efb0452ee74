"""Helpers shared by the run-file and CLI tests: compare run files dataset by dataset, run the CLI in a subprocess."""
from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from tumorca.io.layout import PROVENANCE_DATASETS

#: ``mpiexec`` on PATH (from the mpich wheel in CI), or None.
MPIEXEC = shutil.which("mpiexec")


def mpi_job_marks(timeout: float) -> list:
    """The marks of a test file that starts real MPI jobs: skipped without mpi4py, mpiexec or the MPI engine;
    ``mpi`` and ``subprocess``; a per-test timeout."""
    return [
        pytest.mark.skipif(importlib.util.find_spec("mpi4py") is None,
                           reason="mpi4py is not installed (pip install 'tumorca[mpi]')"),
        pytest.mark.skipif(MPIEXEC is None, reason="no mpiexec on PATH (pip install mpich, or load the cluster's MPI)"),
        pytest.mark.skipif(importlib.util.find_spec("tumorca.parallel") is None,
                           reason="tumorca.parallel (the MPI engine) is not available"),
        pytest.mark.mpi,
        pytest.mark.subprocess,
        pytest.mark.timeout(timeout),
    ]


def mpi_cmd(n: int, *args) -> list[str]:
    """``mpiexec -n N python -m tumorca.cli ARGS...``."""
    return [MPIEXEC, "-n", str(n), sys.executable, "-m", "tumorca.cli", *map(str, args)]

#: A small plan whose steps cost about a millisecond each on one thread: long enough (about a second) to signal a
#: run in the middle, short enough for the test budget.  Vessels 20 sites apart give the O2 solver real work.
LONG_ARGS = ["--shape", "40x40", "--set", "init_vessel_spacing=20", "--steps", "800", "--every", "20",
             "--checkpoint-every", "80", "--seed", "11", "--threads", "1"]


def datasets(path: str | Path) -> dict[str, np.ndarray]:
    """Every dataset of an HDF5 file by path, opened the way a cut-off file needs (SWMR read)."""
    out: dict[str, np.ndarray] = {}
    with h5py.File(path, "r", swmr=True) as f:
        f.visititems(lambda name, obj: out.__setitem__(name, obj[()]) if isinstance(obj, h5py.Dataset) else None)
    return out


def assert_same_run(a: str | Path, b: str | Path) -> int:
    """Assert that two run files hold the same datasets, equal bit for bit (provenance datasets aside).
    Returns the number of datasets compared."""
    da, db = datasets(a), datasets(b)
    assert sorted(da) == sorted(db)
    n = 0
    for name in da:
        if name in PROVENANCE_DATASETS:
            continue
        x, y = np.asarray(da[name]), np.asarray(db[name])
        assert x.dtype == y.dtype and x.shape == y.shape, name
        assert x.tobytes() == y.tobytes(), f"dataset {name!r} differs"
        n += 1
    return n


def cli_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "tumorca.cli", *args]


def start_cli(*args: str, **kw) -> subprocess.Popen:
    """Start ``tumorca`` in a subprocess with stderr captured."""
    return subprocess.Popen(cli_cmd(*args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ), **kw)


def run_cli(*args: str, timeout: float = 120, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cli_cmd(*args), capture_output=True, text=True, timeout=timeout, env=dict(os.environ),
                          **kw)


def checkpoint_step(path: Path) -> int:
    """Step of a sibling checkpoint file, or -1 if there is none yet."""
    if not path.exists():
        return -1
    try:
        with h5py.File(path, "r") as f:
            return int(f.attrs["step_index"])
    except (OSError, KeyError):
        return -1


def wait_for(cond, proc: subprocess.Popen, what: str, timeout: float = 60.0) -> None:
    """Poll ``cond()`` every 5 ms until true; fail if ``proc`` exits first or time runs out."""
    deadline = time.monotonic() + timeout
    while not cond():
        if proc.poll() is not None:
            raise AssertionError(f"the run ended (rc {proc.returncode}) before {what}: {proc.stderr.read()}")
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.005)
