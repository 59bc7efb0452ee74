"""MPI side of tests/test_parallel.py: ``mpiexec -n P python tests/mpi_driver.py CASE [CASE ...]``.

Every rank runs the serial :class:`tumorca.Simulation` alongside the :class:`DistributedSimulation` of the case
(so no rank idles in a busy-waiting MPI call while another computes), compares ``summary()`` after every step
on every rank and the gathered state on rank 0, bit for bit.  Rank 0 prints one line per case,
``PASS <case> <json>`` (the json says which rules fired) or ``FAIL <case> <reason>``; the exit status is 1 on
every rank if any case failed.
"""
from __future__ import annotations

import json
import sys
import traceback
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from mpi4py import MPI  # noqa: E402

import tumorca  # noqa: E402
import tumorca.presets  # noqa: E402
from tumorca import Cell, Vessel  # noqa: E402
from tumorca._lattice import available_memory, normalize_shape  # noqa: E402
from tumorca.errors import LatticeError, ParameterError, ResourceError  # noqa: E402
from tumorca.parallel import DistributedSimulation, o2_mgcg  # noqa: E402

from conftest import hypoxic_params, random_state  # noqa: E402

COMM = MPI.COMM_WORLD
META = ("shape", "params", "seed", "step_index")


class CaseFailed(Exception):
    pass


def busy(**kw) -> tumorca.Params:
    """Every rule fires within a few tens of steps on a small lattice (tests/conftest.py), with the default
    80 um sprouting exclusion (halo 8) unless overridden, and no pushing (push_range 0: its halo, 4 per site of
    range, would not fit these small blocks; the push and default cases below run it), and the topological
    perfusion rule (random inlets feed themselves; the flow cases below set perfusion = "flow")."""
    base = dict(sprout_exclusion=80.0, init_vessel_spacing=16, init_tumor_radius=7, push_range=0, perfusion="loops")
    base.update(kw)
    return hypoxic_params(**base)


def network_state(shape3, params):
    """Hand-built vessels crossing the middle of every axis: an inlet vessel along x, a loop hanging from it
    (perfused), a blind sprout from the loop (connected, not perfused) and a cut-off piece (regresses)."""
    st = tumorca.Simulation(shape3[1:] if shape3[0] == 1 else shape3, params, seed=1, threads=1).get_state()
    a = st["arrays"]
    nz, ny, nx = shape3
    t = a["vessel"].reshape(shape3)
    inlet = a["inlet"].reshape(shape3)
    t[...] = Vessel.NONE
    a["tissue"][...] = Cell.EMPTY
    inlet[...] = 0
    z = nz // 2
    zs = slice(max(0, z - 3), min(nz, z + 4))     # 3D: vertical segments cross the z split
    y0, y1 = 3, ny - 8
    t[z, y0, :] = Vessel.STALK
    inlet[z, y0, :] = 1                            # the inlet vessel
    xa, xb = 5, nx - 6
    t[z, y0:y1 + 1, xa] = Vessel.STALK            # loop: down, across the x split, up again
    t[z, y1, xa:xb + 1] = Vessel.STALK
    t[z, y0:y1 + 1, xb] = Vessel.STALK
    if nz > 1:
        t[zs, y1, nx // 2] = Vessel.STALK         # a loop through z as well
        t[zs.start, y1:y1 + 4, nx // 2] = Vessel.STALK
        t[zs.stop - 1, y1:y1 + 4, nx // 2] = Vessel.STALK
        t[zs, y1 + 3, nx // 2] = Vessel.STALK
    ys = (y0 + y1) // 2                            # blind sprout from the loop, across the x split
    t[z, ys, xa:nx // 2 + 4] = Vessel.STALK
    t[z, ys + 1, nx // 2 + 4] = Vessel.TIP
    t[z, ny - 3, 2:nx - 2] = Vessel.STALK         # cut off from every inlet, across the x split
    a["perfused"][...] = 0
    a["o2"][...] = np.float32(params.init_o2)
    return st, {"loop_row": (z, y1, xa, xb), "sprout_row": (z, ys, xa, nx // 2 + 4)}


def compare_states(ref: dict, got: dict, where: str) -> None:
    for name, x in ref["arrays"].items():
        y = got["arrays"][name]
        if x.shape != y.shape or not np.array_equal(np.ascontiguousarray(x).view(np.uint8),
                                                    np.ascontiguousarray(y).view(np.uint8)):
            diff = np.argwhere(np.asarray(x) != np.asarray(y))
            raise CaseFailed(f"{where}: array {name} differs at {len(diff)} sites, first {diff[:3].tolist()}")


def run_case(shape, grid, params, steps, *, start="initial", seed=5, poison=False, resume=None, check=None,
             agglomerate=None, threads=1):
    """Serial and distributed side by side; returns what fired.  ``agglomerate``: the coarse level size at which
    the distributed mgcg solve gathers its levels onto rank 0 (default tumorca.parallel.o2_mgcg's; 0 keeps every
    level it can on the blocks, so that small lattices exercise them).  ``threads``: OpenMP threads of each rank
    of the distributed run (the serial one runs on one)."""
    if agglomerate is not None:
        keep = o2_mgcg.AGGLOMERATE_CELLS
        o2_mgcg.AGGLOMERATE_CELLS = agglomerate
        try:
            return run_case(shape, grid, params, steps, start=start, seed=seed, poison=poison, resume=resume,
                            check=check, threads=threads)
        finally:
            o2_mgcg.AGGLOMERATE_CELLS = keep
    """Serial and distributed side by side; returns what fired.  ``resume`` = (step, ranks, grid): the first
    ``step`` steps run on a sub-communicator of ``ranks`` ranks, whose gathered state every rank then reads its
    block from (as --resume from a whole-lattice file written by another rank count)."""
    shape3 = normalize_shape(shape)
    if start == "initial":
        serial = tumorca.Simulation(shape, params, seed=seed, threads=1)
    else:
        st0 = start
        serial = tumorca.Simulation.from_state(st0, threads=1)
    fired = {"born": 0, "recruited": 0, "died": 0, "killed": 0, "max_tips": 0, "max_necrotic": 0, "max_q": 0,
             "max_vessels": 0, "max_perfused": 0}

    def record(s):
        fired["born"] += s["tumor_born"]
        fired["recruited"] += s["neut_recruited"]
        fired["died"] += s["neut_died"]
        fired["killed"] += s["tumor_killed"]
        fired["max_tips"] = max(fired["max_tips"], s["tips"])
        fired["max_necrotic"] = max(fired["max_necrotic"], s["necrotic"])
        fired["max_q"] = max(fired["max_q"], s["tumor_q"])
        fired["max_vessels"] = max(fired["max_vessels"], s["vessel_sites"])
        fired["max_perfused"] = max(fired["max_perfused"], s["perfused_sites"])
        fired.setdefault("first_perfused", s["perfused_sites"])

    first = 0
    if resume is not None:
        k, nsub, subgrid = resume
        sub = COMM.Split(0 if COMM.rank < nsub else MPI.UNDEFINED, COMM.rank)
        state = None
        if sub != MPI.COMM_NULL:
            if start == "initial":
                part = DistributedSimulation(shape, params, seed=seed, threads=1, comm=sub, ranks_shape=subgrid)
            else:
                part = DistributedSimulation.from_blocks({m: start[m] for m in META},
                                                         lambda n, sl: start["arrays"][n].reshape(shape3)[sl],
                                                         threads=1, comm=sub, ranks_shape=subgrid)
            part.step(k)
            state = part.gather_state(root=0)
            sub.Free()
        state = COMM.bcast(state, root=0)
        serial.step(k)
        compare_states(serial.get_state(), state, f"after {k} steps on {nsub} ranks")
        dist = DistributedSimulation.from_blocks({m: state[m] for m in META},
                                                 lambda n, sl: state["arrays"][n].reshape(shape3)[sl],
                                                 threads=threads, ranks_shape=grid)
        first = k
    elif start == "initial":
        dist = DistributedSimulation(shape, params, seed=seed, threads=threads, ranks_shape=grid)
    else:
        dist = DistributedSimulation.from_blocks({m: start[m] for m in META},
                                                 lambda n, sl: start["arrays"][n].reshape(shape3)[sl],
                                                 threads=threads, ranks_shape=grid)
    dist._domain.exchanger.poison = poison
    for i in range(first, steps):
        serial.step(1)
        dist.step(1)
        ss, sd = serial.summary(), dist.summary()
        if set(ss) != set(sd):
            raise CaseFailed(f"summary keys differ: {sorted(set(ss) ^ set(sd))}")
        bad = {k: (ss[k], sd[k]) for k in ss if type(ss[k]) is not type(sd[k]) or ss[k] != sd[k]}
        # agree before raising: a rank that stopped alone would leave the others in a collective
        first_bad = COMM.allgather(bad)
        for r, b in enumerate(first_bad):
            if b:
                raise CaseFailed(f"step {i}: summary differs on rank {r}: {b}")
        record(ss)
    got = dist.gather_state()
    if COMM.rank == 0:
        compare_states(serial.get_state(), got, f"after {steps} steps")
        if check is not None:
            check(got)
    fired["grid"] = "x".join(map(str, dist.decomposition.dims))
    o2 = dist._domain.o2
    fired["o2_mode"] = o2.mode
    fired["o2_levels_on_blocks"] = o2._dist.first if o2._dist is not None else 0
    fired["halo"] = dist.halo_width
    return fired


# -- cases ------------------------------------------------------------------------------------------------------
def case_push(shape, grid, steps, seed):
    """Pushing (push_range 3, halo 12) from a densely packed random state, halo poisoned; the serial run with
    pushing must also differ from one without (pushes happened)."""
    probs = (0.08, 0.68, 0.12, 0.12)
    p = busy(push_range=3)
    st = random_state(shape, p, seed, probs=probs)
    fired = run_case(shape, grid, p, steps, start=st, poison=True)
    if fired["halo"] < 12:
        raise CaseFailed(f"halo {fired['halo']} < 4 * push_range")
    if COMM.rank == 0:
        with_push = tumorca.Simulation.from_state(st, threads=1)
        without = tumorca.Simulation.from_state(random_state(shape, busy(), seed, probs=probs), threads=1)
        with_push.step(steps)
        without.step(steps)
        a, b = with_push.get_state()["arrays"]["tissue"], without.get_state()["arrays"]["tissue"]
        if np.array_equal(a, b) or (a != Cell.EMPTY).sum() <= (b != Cell.EMPTY).sum():
            raise CaseFailed("push_range 3 grew no more tumour than push_range 0: no push happened")
    return fired


def case_network(shape, grid):
    shape3 = normalize_shape(shape)
    p = busy(perfusion="loops", init_vessels="none", init_tumor_radius=0, sprout_rate=0.0, neut_recruit_max=0.0,
             neut_recruit_min=0.0, tip_move_min=0.0, tip_move_max=0.0, vessel_regression_time=600.0)
    st, where = network_state(shape3, p)

    def check(got):
        perf = got["arrays"]["perfused"].reshape(shape3)
        z, y, xa, xb = where["loop_row"]
        row = perf[z, y, xa + 1:xb]
        if row.mean() < 0.9:
            raise CaseFailed(f"loop across the split is not perfused: {row.tolist()}")
        z, y, xa, xe = where["sprout_row"]
        if perf[z, y, xa + 2:xe + 1].any():
            raise CaseFailed("blind sprout across the split carries flow")
        ves = got["arrays"]["vessel"].reshape(shape3)
        if (ves[z, shape3[1] - 3, 2:shape3[2] - 2] != Vessel.STALK).any():
            raise CaseFailed("the cut-off vessel changed before regressing")
        if got["arrays"]["vclock"].reshape(shape3)[z, shape3[1] - 3, 4] != 3:
            raise CaseFailed("the cut-off vessel's clock did not count 3 steps")

    return run_case(shape, grid, p, 3, start=st, check=check)


CASES = {
    # P = 1: the distributed engine on one rank
    "one_2d": lambda: run_case((40, 44), "1x1", busy(), 25),
    "one_3d": lambda: run_case((16, 16, 18), "auto", busy(ifn_level=0.0), 12),
    # P = 2
    "wt_2d_1x2": lambda: run_case((47, 45), "1x2", busy(), 40),
    "ko_2d_2x1_dirichlet": lambda: run_case((48, 44), "2x1", busy(ifn_level=0.0, o2_boundary="dirichlet",
                                                                   field_boundary="dirichlet"), 40, seed=8),
    "ko_3d_2x1x1": lambda: run_case((18, 16, 16), "2x1x1", busy(ifn_level=0.0, init_vessel_spacing=8,
                                                                  init_tumor_radius=5), 20),
    "wt_3d_1x1x2_edge": lambda: run_case((17, 15, 21), "1x1x2", busy(vessel_inlets="edge", o2_boundary="dirichlet",
                                                                     init_vessel_spacing=8, init_tumor_radius=5),
                                         20, seed=3),
    "random_2d_1x2_poison": lambda: run_case((40, 48), "1x2", busy(), 3, start=random_state((40, 48), busy(), 7),
                                             poison=True),
    "network_2d_1x2": lambda: case_network((32, 40), "1x2"),
    "random_push_2d_1x2_poison": lambda: case_push((40, 48), "1x2", 4, 11),
    "network_3d_2x1x1": lambda: case_network((18, 28, 24), "2x1x1"),
    "preset_knockout_3d_2x1x1": lambda: run_case((44, 16, 16), "2x1x1", tumorca.presets.get("ifnb-knockout"), 15),
    "capped_o2_2d_1x2": lambda: run_case((40, 48), "1x2", busy(o2_solver="sor", o2_max_sweeps=3), 6, seed=9),
    "capped_mgcg_2d_1x2": lambda: run_case((40, 48), "1x2", busy(o2_max_iter=1), 6, seed=9),
    "sor_2d_2x1_dirichlet": lambda: run_case((45, 47), "2x1", busy(o2_solver="sor", o2_boundary="dirichlet"), 20),
    "resume_1_to_2": lambda: run_case((48, 48), "2x1", busy(ifn_level=0.0), 24, resume=(11, 1, "1x1")),
    # the distributed mgcg solve with its coarse levels on the blocks (odd sizes, both boundaries, smooth 1 and 3)
    "levels_2d_2x1": lambda: run_case((101, 67), "2x1", busy(), 12, agglomerate=0, poison=True, threads=3),
    "levels_2d_2x1_smooth1_dirichlet": lambda: run_case((96, 80), "2x1", busy(o2_boundary="dirichlet",
                                                                              o2_mgcg_smooth=1), 8, agglomerate=0),
    "levels_3d_2x1x1": lambda: run_case((31, 20, 18), "2x1x1", busy(ifn_level=0.0, init_vessel_spacing=8,
                                                                      init_tumor_radius=5, o2_mgcg_smooth=3),
                                        8, agglomerate=0),
    # P = 4
    "ko_2d_2x2": lambda: run_case((49, 51), "2x2", busy(ifn_level=0.0), 40, seed=2),
    "wt_2d_4x1_edge": lambda: run_case((64, 40), "4x1", busy(vessel_inlets="edge"), 30, seed=4),
    "wt_3d_1x2x2": lambda: run_case((16, 19, 17), "1x2x2", busy(init_vessel_spacing=8, init_tumor_radius=5), 16),
    "ko_3d_2x2x1_dirichlet": lambda: run_case((16, 16, 16), "2x2x1",
                                              busy(ifn_level=0.0, o2_boundary="dirichlet", init_vessel_spacing=8,
                                                   init_tumor_radius=5), 16, seed=6),
    "random_2d_2x2_poison": lambda: run_case((48, 48), "2x2", busy(), 3, start=random_state((48, 48), busy(), 3),
                                             poison=True),
    "random_3d_1x2x2_poison_edge": lambda: run_case(
        (16, 18, 18), "1x2x2", busy(vessel_inlets="edge", o2_boundary="dirichlet"), 2,
        start=random_state((16, 18, 18), busy(vessel_inlets="edge", o2_boundary="dirichlet"), 5,
                           probs=(0.9, 0.1, 0.0, 0.0), vessel_probs=(0.6, 0.395, 0.005),
                           inlet_fraction=0.5), poison=True),
    "network_2d_2x2": lambda: case_network((32, 40), "2x2"),
    "random_push_2d_2x2_poison": lambda: case_push((48, 50), "2x2", 4, 13),
    "random_push_3d_1x2x2_poison": lambda: case_push((14, 28, 26), "1x2x2", 3, 14),
    # perfusion from the flow solve: the vessel network gathered on rank 0, the verdict broadcast
    "flow_bed_2d_2x2": lambda: run_case((48, 56), "2x2", busy(perfusion="flow", init_vessels="bed",
                                                              init_vessel_spacing=8, init_bed_crosslink_spacing=12),
                                        40, seed=21),
    "flow_bed_3d_1x2x2_edge": lambda: run_case(
        (14, 20, 22), "1x2x2", busy(perfusion="flow", init_vessels="bed", init_vessel_spacing=6,
                                    init_bed_crosslink_spacing=8, vessel_inlets="edge"), 12, seed=22),
    "preset_wildtype_2d_2x2": lambda: run_case((64, 64), "2x2", tumorca.Params(), 30),
    "noexcl_2d_4x1": lambda: run_case((40, 36), "4x1", busy(sprout_exclusion=0.0), 30, seed=10),
    "resume_2_to_4": lambda: run_case((48, 48), "2x2", busy(), 24, resume=(9, 2, "1x2"), seed=12),
    "levels_3d_2x2x1_dirichlet": lambda: run_case((33, 45, 29), "2x2x1", busy(o2_boundary="dirichlet"), 8,
                                                  agglomerate=0, poison=True),
    "levels_2d_4x1": lambda: run_case((130, 70), "4x1", busy(ifn_level=0.0), 8, agglomerate=0, threads=2),
}


def errors_case():
    """Bad input: every rank raises the same one-line error together (no hang)."""
    size = COMM.Get_size()
    avail = COMM.bcast(available_memory(), root=0)
    side = None if avail is None else int(round((avail / 70) ** (1 / 3)))
    bad = [
        (lambda: DistributedSimulation((48, 48), busy(), ranks_shape=f"{size + 1}x1"), LatticeError,
         "MPI ranks are running"),
        (lambda: DistributedSimulation((48, 48), busy(o2_solver="multigrid")), ParameterError,
         'o2_solver = "multigrid" is serial-only; use "sor"'),
        (lambda: DistributedSimulation((48, 10), busy(), ranks_shape=f"1x{size}"), LatticeError,
         "thinner than the halo width 8"),
        (lambda: DistributedSimulation((8, 1), busy(sprout_exclusion=0.0), ranks_shape=f"1x{size}"), LatticeError,
         "more ranks"),
        (lambda: DistributedSimulation((12, 12), busy(), ranks_shape=f"{size}x1x1"), LatticeError,
         "splits z, but the lattice is 2D"),
        (lambda: DistributedSimulation((8192, 8192, 8192), busy()), ResourceError, "ranks on this node need"),
        # blocks that fit with room to spare (45 of 70 B/site of the lattice), but not with rank 0's gathered
        # mgcg solve (+50 B/site of the whole lattice)
        *([] if avail is None else [(lambda: DistributedSimulation((side,) * 3, busy(), ranks_shape=f"1x1x{size}"),
                                     ResourceError, "rank 0's gathered O2 solve")]),
        (lambda: DistributedSimulation.from_blocks({"shape": (24, 24), "params": busy().to_dict(), "seed": 1,
                                                    "step_index": 0},
                                                   lambda n, sl: np.zeros((2, 2, 2)), ranks_shape="auto"),
         LatticeError, "wrong shape"),
    ]
    for make, cls, text in bad:
        try:
            make()
        except cls as exc:
            msg = str(exc)
            if text not in msg or "\n" in msg:
                raise CaseFailed(f"error message {msg!r} lacks {text!r}")
        else:
            raise CaseFailed(f"no {cls.__name__} for a case expected to say {text!r}")
    COMM.Barrier()
    return {"errors": len(bad)}


CASES["errors"] = errors_case


def main(names: list[str]) -> int:
    failed = False
    for name in names:
        try:
            info = CASES[name]()
            ok, msg = True, json.dumps(info)
        except CaseFailed as exc:
            ok, msg = False, str(exc)
        except Exception:  # report, never hang the other ranks
            ok, msg = False, traceback.format_exc().replace("\n", " | ")
        oks = COMM.allgather((ok, msg))
        if COMM.rank == 0:
            bad = [m for o, m in oks if not o]
            print(("PASS " if not bad else "FAIL ") + name + " " + (msg if not bad else bad[0]), flush=True)
        failed = failed or not all(o for o, _ in oks)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
