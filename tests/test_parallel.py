"""MPI domain decomposition (tumorca.parallel): bit-identical to the serial run for any rank count and grid.

The Decomposition rules are tested in-process (pure Python).  Everything that needs MPI runs in real
``mpiexec -n P python tests/mpi_driver.py CASE ...`` subprocesses (no mocks), which compare the distributed run
with the serial one after every step; they are skipped, with the reason, where mpi4py or mpiexec is missing.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import tumorca
from tumorca.errors import LatticeError
from tumorca.initial import initial_state
from tumorca.parallel import Decomposition, halo_widths, initial_block, split_axis

HERE = Path(__file__).resolve().parent


# -- Decomposition (no MPI) -------------------------------------------------------------------------------------
@pytest.mark.parametrize("n,p", [(10, 3), (48, 4), (7, 7), (9, 2), (5, 1)])
def test_split_axis_is_array_split(n, p):
    got = split_axis(n, p)
    want = [(int(a[0]), int(a[-1]) + 1) for a in np.array_split(np.arange(n), p)]
    assert got == want


@pytest.mark.parametrize("shape3,dims", [((1, 48, 44), (1, 2, 2)), ((16, 18, 20), (2, 1, 3)), ((9, 9, 9), (3, 3, 1))])
def test_blocks_tile_the_lattice_in_rank_order(shape3, dims):
    blocks = Decomposition.blocks(shape3, dims)
    cover = np.zeros(shape3, dtype=int)
    for rank, sl in enumerate(blocks):
        cover[sl] += 1
        coords = np.unravel_index(rank, dims)
        dec = Decomposition(shape3, dims, coords)
        assert dec.owned == sl and dec.rank == rank
        assert dec.block_shape == tuple(s.stop - s.start for s in sl)
    assert (cover == 1).all()


def test_local_array_has_halo_only_towards_other_blocks():
    dec = Decomposition((1, 48, 60), (1, 2, 3), (0, 1, 1), halo=4)
    assert dec.owned == (slice(0, 1), slice(24, 48), slice(20, 40))
    assert dec.local == (slice(0, 1), slice(20, 48), slice(16, 44))   # no halo on the lattice's y face
    assert dec.origin == (0, 20, 16) and dec.local_shape == (1, 28, 28)
    assert dec.box == ((0, 1), (4, 28), (4, 24))
    assert dec.halo_sides(2) == ((0, 0), (2, 0), (2, 2))


@pytest.mark.parametrize("text,want", [("2x1x2", (2, 1, 2)), ("2x2", (1, 2, 2)), (" 1X4 ", (1, 1, 4)),
                                       ("auto", "auto"), (None, None)])
def test_parse_ranks_shape(text, want):
    assert Decomposition.parse_ranks_shape(text) == want


@pytest.mark.parametrize("text", ["2x", "x2", "2x2x2x2", "0x2", "2*2", "two", "", "-1x2"])
def test_parse_ranks_shape_rejects(text):
    with pytest.raises(LatticeError, match="ranks shape"):
        Decomposition.parse_ranks_shape(text)


@pytest.mark.parametrize("shape3,dims,size,halo,message", [
    ((1, 48, 48), (1, 2, 2), 3, 0, "rank grid 1x2x2 has 4 blocks but 3 MPI ranks are running"),
    ((1, 48, 48), (2, 1, 1), 2, 0, "splits z, but the lattice is 2D (48x48)"),
    ((4, 48, 3), (1, 1, 4), 4, 0, "more ranks (4) than sites (3) along x"),
    ((16, 48, 48), (1, 8, 1), 8, 8, "blocks 6 sites thick along y, thinner than the halo width 8"),
    ((15, 48, 48), (2, 1, 1), 2, 8, "blocks 7 sites thick along z, thinner than the halo width 8"),
])
def test_decomposition_errors_are_one_line(shape3, dims, size, halo, message):
    with pytest.raises(LatticeError) as err:
        Decomposition(shape3, dims, (0, 0, 0), halo=halo, size=size)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_coords_outside_grid_rejected():
    with pytest.raises(LatticeError, match="outside the rank grid"):
        Decomposition((1, 8, 8), (1, 2, 1), (0, 2, 0))


def test_auto_dims_cuts_few_sites():
    assert Decomposition.auto_dims((1, 512, 64), 2) == (1, 2, 1)      # along the long axis
    assert Decomposition.auto_dims((1, 64, 512), 4) == (1, 1, 4)
    assert Decomposition.auto_dims((32, 32, 32), 4) == (2, 2, 1)
    assert Decomposition.auto_dims((1, 48, 48), 4) == (1, 2, 2)       # never z on a 2D lattice
    assert Decomposition.auto_dims((1, 48, 20), 4, halo=8) == (1, 4, 1)  # 20/2 = 10 >= 8 but 20/4 < 8
    with pytest.raises(LatticeError, match="no rank grid"):
        Decomposition.auto_dims((1, 12, 12), 4, halo=8)
    assert Decomposition.choose_dims((1, 48, 48), 2, "2x1") == (1, 2, 1)
    assert Decomposition.choose_dims((1, 48, 48), 2, None) == Decomposition.auto_dims((1, 48, 48), 2)


def test_auto_dims_keeps_rows_whole_for_the_distributed_mgcg_solve():
    """whole_rows: a grid with Px = 1 wins wherever one fits (the distributed mgcg solve needs whole rows), the
    fewest face sites among those; otherwise the usual choice."""
    assert Decomposition.auto_dims((1, 64, 512), 4, whole_rows=True) == (1, 4, 1)
    assert Decomposition.auto_dims((1, 48, 48), 4, whole_rows=True) == (1, 4, 1)
    assert Decomposition.auto_dims((32, 32, 32), 8, whole_rows=True) == (4, 2, 1)
    assert Decomposition.auto_dims((1, 12, 48), 4, halo=8, whole_rows=True) == (1, 1, 4)  # no Px = 1 grid fits
    assert Decomposition.choose_dims((1, 48, 48), 4, "2x2", whole_rows=True) == (1, 2, 2)  # a given grid stands


def test_o2_mode_and_block_bytes_follow_the_grid():
    """mgcg runs on the blocks on a grid with whole rows and more than one rank (each block then holds its share
    of the workspace), gathered on rank 0 otherwise; SOR is always on the blocks."""
    from tumorca.parallel.o2 import block_solve_bytes, o2_mode
    p = tumorca.Params()

    def dec(dims, halo=20):
        return Decomposition((1, 256, 256), dims, (0, 0, 0), halo=halo, size=dims[0] * dims[1] * dims[2])
    assert o2_mode(p, dec((1, 2, 1)), 2) == "distributed"
    assert o2_mode(p, dec((1, 1, 2)), 2) == "gathered"
    assert o2_mode(p, dec((1, 1, 1)), 1) == "gathered"
    assert o2_mode(p, dec((1, 2, 1), halo=1), 2) == "gathered"
    assert o2_mode(p.replace(o2_solver="sor"), dec((1, 2, 1)), 2) == "sor"
    assert block_solve_bytes(1000, "distributed") == 1000 * tumorca.o2.WORKSPACE_BYTES_PER_SITE["mgcg"]
    assert block_solve_bytes(1000, "gathered") == block_solve_bytes(1000, "sor") == 0


def test_halo_widths_follow_the_exclusion_radius():
    p = tumorca.Params(push_range=0)
    w = halo_widths(p)                                     # 80 um / 20 um: e = 4, endothelium 4 + 4
    assert w["endothelium"] == 8 and w["halo"] == 8 and w["tumour"] == 2 and w["neutrophil_move"] == 3
    assert halo_widths(p.replace(sprout_exclusion=0.0))["halo"] == 3   # 2 + 1, and 3 per sub-move
    assert halo_widths(p.replace(sprout_exclusion=60.0))["endothelium"] == 6
    assert halo_widths(tumorca.Params())["halo"] == 20   # the default push_range 5: 4 * 5 for the tumour


def test_halo_widths_grow_with_push_range():
    assert halo_widths(tumorca.Params(push_range=1))["tumour"] == 2     # 1: no pushing
    w = halo_widths(tumorca.Params(push_range=3))
    assert w["tumour"] == 12 and w["halo"] == 12


@pytest.mark.parametrize("shape,region", [((40, 44), (slice(0, 1), slice(5, 30), slice(17, 44))),
                                          ((16, 18, 20), (slice(3, 11), slice(0, 9), slice(12, 20)))])
def test_initial_block_is_the_initial_state_restricted(shape, region):
    p = tumorca.Params(init_vessel_spacing=7, init_tumor_radius=6)
    from tumorca._lattice import normalize_shape
    shape3 = normalize_shape(shape)
    whole = initial_state(shape3, p)
    part = initial_block(shape3, p, region)
    for name, arr in whole.items():
        np.testing.assert_array_equal(part[name], arr[region], err_msg=name)
        assert part[name].dtype == arr.dtype


# -- memory accounting (no MPI) ---------------------------------------------------------------------------------
@pytest.mark.parametrize("shape3", [(1, 97, 131), (1, 64, 64), (21, 45, 37), (16, 16, 16), (1, 1, 50), (1, 2, 9),
                                    (1, 1, 1)])
def test_gathered_solve_bytes_count_rank0s_arrays_and_mgcg_workspace(shape3):
    from tumorca._numerics import MgcgWorkspace, mgcg_workspace_nbytes
    from tumorca.parallel.o2 import GATHER_BYTES_PER_SITE, gathered_solve_bytes

    sites = int(np.prod(shape3))
    ws = MgcgWorkspace(shape3).nbytes
    assert mgcg_workspace_nbytes(shape3) == ws                         # counted without allocating
    assert GATHER_BYTES_PER_SITE >= 12                                   # o2, tissue, sources: received, copied
    assert gathered_solve_bytes(shape3, tumorca.Params()) == ws + sites * GATHER_BYTES_PER_SITE   # mgcg, default
    assert gathered_solve_bytes(shape3, tumorca.Params(o2_solver="sor")) == 0   # SOR stays distributed


def test_node_memory_counts_rank0s_gathered_solve():
    from tumorca.parallel.simulation import block_bytes_per_site, node_memory_error

    gib = 1 << 30
    assert block_bytes_per_site() == 48
    assert node_memory_error(2, 3 * gib, 4 * gib, None) is None                 # unknown: no check
    assert node_memory_error(2, 3 * gib, 4 * gib, 7 * gib) is None              # exactly fits
    msg = node_memory_error(4, 9 * gib, 0, 8 * gib)                              # blocks alone (SOR, or not rank 0's node)
    assert msg == ("the blocks of the 4 ranks on this node need 9.0 GiB of memory (48 B/site with halo) but only "
                   "8.0 GiB is available; use more nodes")
    msg = node_memory_error(2, 3 * gib, 4 * gib, 6 * gib)                        # the blocks fit, not with rank 0's solve
    assert "\n" not in msg and msg.startswith("the blocks of the 2 ranks on this node need 3.0 GiB")
    assert "rank 0's gathered O2 solve" in msg and "4.0 GiB more" in msg and "only 6.0 GiB" in msg
    assert msg.endswith('use more nodes, or o2_solver = "sor", which stays distributed')
    msg = node_memory_error(1, 1 * gib, 8 * gib, 6 * gib)                        # more nodes cannot help
    assert msg.endswith('; use o2_solver = "sor", which stays distributed')


# -- real MPI runs ----------------------------------------------------------------------------------------------
def _mpi_missing() -> str | None:
    try:
        import mpi4py  # noqa: F401
    except ImportError:
        return "mpi4py is not installed (pip install 'tumorca[mpi]')"
    if shutil.which("mpiexec") is None:
        return "mpiexec is not on PATH (pip install mpich)"
    return None


GROUPS = {
    1: ["one_2d", "one_3d"],
    2: ["errors", "wt_2d_1x2", "ko_2d_2x1_dirichlet", "ko_3d_2x1x1", "wt_3d_1x1x2_edge", "random_2d_1x2_poison",
        "random_push_2d_1x2_poison", "network_2d_1x2", "network_3d_2x1x1", "preset_knockout_3d_2x1x1", "capped_o2_2d_1x2",
        "capped_mgcg_2d_1x2", "sor_2d_2x1_dirichlet", "resume_1_to_2", "levels_2d_2x1",
        "levels_2d_2x1_smooth1_dirichlet", "levels_3d_2x1x1"],
    4: ["ko_2d_2x2", "wt_2d_4x1_edge", "wt_3d_1x2x2", "ko_3d_2x2x1_dirichlet", "random_2d_2x2_poison",
        "random_push_2d_2x2_poison", "random_push_3d_1x2x2_poison", "random_3d_1x2x2_poison_edge", "network_2d_2x2",
        "preset_wildtype_2d_2x2", "noexcl_2d_4x1", "resume_2_to_4", "flow_bed_2d_2x2", "flow_bed_3d_1x2x2_edge",
        "levels_3d_2x2x1_dirichlet", "levels_2d_4x1"],
}


def _run_driver(nprocs: int, cases: list[str]) -> dict[str, dict]:
    env = dict(os.environ)
    src = str(Path(tumorca.__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join([src, str(HERE)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    env["OMP_NUM_THREADS"] = "1"
    cmd = [shutil.which("mpiexec"), "-n", str(nprocs), sys.executable, str(HERE / "mpi_driver.py"), *cases]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"mpiexec -n {nprocs} did not finish in 300 s (hang?): {exc.stdout!r} {exc.stderr!r}")
    results = {}
    for line in proc.stdout.splitlines():
        status, _, rest = line.partition(" ")
        if status in ("PASS", "FAIL"):
            name, _, info = rest.partition(" ")
            results[name] = {"ok": status == "PASS", "info": info}
    missing = [c for c in cases if c not in results]
    failed = {c: r["info"] for c, r in results.items() if not r["ok"]}
    assert not failed and not missing and proc.returncode == 0, (
        f"rc={proc.returncode} failed={failed} missing={missing}\nstdout:\n{proc.stdout[-3000:]}\n"
        f"stderr:\n{proc.stderr[-3000:]}")
    return {c: json.loads(r["info"]) for c, r in results.items()}


@pytest.mark.mpi
@pytest.mark.subprocess
@pytest.mark.timeout(360)  # measured 3-39 s; the driver itself gives up at 300 s with its output
@pytest.mark.parametrize("nprocs", sorted(GROUPS))
def test_distributed_run_is_bit_identical_to_serial(nprocs):
    """Every step's summary() (on every rank) and the final state equal the serial run's, bit for bit: 2D and
    3D, wild-type and knockout, no-flux and Dirichlet O2, initial and edge inlets, grids 1x1 .. 2x2x1, a random
    state with the halo poisoned beyond each phase's width, hand-built vessel networks across the blocks, and
    continuation on another rank count (from_blocks)."""
    why = _mpi_missing()
    if why:
        pytest.skip(why)
    info = _run_driver(nprocs, GROUPS[nprocs])
    # the presets' own rates are slow: those runs check identity only, the others also that every rule fired
    runs = {c: v for c, v in info.items() if not c.startswith(("network", "errors", "preset", "capped", "levels"))}
    # mgcg runs on the blocks where the grid keeps rows whole (Px = 1) and more than one rank runs, its coarse
    # levels too in the levels_* cases; gathered on rank 0 otherwise
    for case, v in info.items():
        if "o2_mode" not in v:
            continue
        grid = tuple(int(d) for d in v["grid"].split("x"))
        sor = case.startswith(("capped_o2", "sor"))
        want = "sor" if sor else ("distributed" if nprocs > 1 and grid[2] == 1 else "gathered")
        assert v["o2_mode"] == want, f"{case}: O2 ran {v['o2_mode']}, expected {want}"
        if case.startswith("levels"):
            assert v["o2_levels_on_blocks"] >= 2, f"{case}: only {v['o2_levels_on_blocks']} levels on the blocks"
    for case, fired in runs.items():
        for rule in ("born", "recruited", "died", "killed", "max_tips"):
            assert fired[rule] > 0, f"{case}: {rule} never happened"
    # anastomosis: some sprout closed a loop, so perfusion grew beyond the initial vessels
    assert any(v["max_perfused"] > v["first_perfused"] for v in runs.values())
    if nprocs == 1:
        assert info["one_3d"]["max_necrotic"] > 0 and info["one_3d"]["max_q"] > 0
