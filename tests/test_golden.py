"""Whole runs against the fingerprints in tests/golden.json (recorded with ``python tests/golden.py --write``).

The fingerprints were first recorded before the engine was restructured (issue 13), so these tests prove that
refactors leave every result unchanged, serially and under MPI.  Only a deliberate model change may rewrite
golden.json, and its commit must say so.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import tumorca

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import golden  # noqa: E402

RECORDED = json.loads(golden.GOLDEN.read_text())


def test_cases_match_recorded_names():
    assert sorted(golden.cases()) == sorted(RECORDED)


@pytest.mark.parametrize("name", sorted(golden.cases()))
def test_serial_run_matches_golden(name):
    got = golden.run_serial(name)
    changed = sorted(k for k in RECORDED[name] if got.get(k) != RECORDED[name][k])
    assert not changed, f"{name}: {', '.join(changed)} differ from tests/golden.json (a model change?)"


@pytest.mark.mpi
@pytest.mark.subprocess
@pytest.mark.timeout(400)  # golden.MPI_CASES; mpiexec -n 3 of all 20 cases took 179-236 s on 2 loaded cores
@pytest.mark.parametrize("nprocs", [2, 3])
def test_mpi_run_matches_golden(nprocs):
    if shutil.which("mpiexec") is None:
        pytest.skip("mpiexec is not on PATH (pip install mpich)")
    pytest.importorskip("mpi4py")
    env = dict(os.environ, OMP_NUM_THREADS="1")
    src = str(Path(tumorca.__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join([src] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    cmd = [shutil.which("mpiexec"), "-n", str(nprocs), sys.executable, str(HERE / "golden.py"), "--mpi",
           *golden.MPI_CASES]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=360, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    assert sorted(got) == sorted(golden.MPI_CASES)
    changed = sorted(f"{n}:{k}" for n in got for k in RECORDED[n] if got[n].get(k) != RECORDED[n][k])
    assert not changed, f"mpiexec -n {nprocs}: {', '.join(changed[:10])} differ from tests/golden.json"
