"""Benchmarks: throughput per case and per phase, beside a measured memory-bandwidth roofline and the NumPy
reference timed in the same run (absolute times drift on shared machines; ratios measured together do not).

Used by ``tumorca bench`` and ``scripts/bench.py``.  Nothing here is asserted in tests except that it runs and
that its JSON follows :data:`SCHEMA`.
"""
from __future__ import annotations

import math
import multiprocessing as mp
import os
import platform
import resource
import time
from typing import Any

import numpy as np

from . import __version__
from .params import Params
from .presets import get as preset_params
from .engine import PHASES  # noqa: F401 (re-exported: the phases a bench reports)
from .simulation import Simulation, bytes_per_site, solver_bytes_per_site

#: The JSON document ``tumorca bench --json`` writes: top-level keys and, for each case, its keys.
SCHEMA: dict[str, Any] = {
    "top": ["tumorca", "numpy", "machine", "threads_available", "roofline", "cases", "scaling"],
    "roofline": ["threads", "triad_GBps", "scale32_GBps"],
    # rss_bytes_per_site: growth of the process's peak RSS over the case, divided by the sites (includes the
    # reference's temporaries when the reference runs in that case).
    "case": ["shape", "threads", "preset", "set", "tumour_fraction", "o2_solver", "steps", "seconds_per_step",
             "steps_per_s", "site_updates_per_s", "o2_sweep_equivalents_per_step", "o2_iterations_per_step",
             "o2_cold", "phase_seconds_per_step", "phase_GBps", "phase_roofline_fraction", "phase_bytes_per_site",
             "peak_rss_bytes", "state_bytes_per_site", "solver_bytes_per_site", "rss_bytes_per_site",
             "speedup_vs_1_thread", "reference_seconds_per_step", "ratio_vs_reference", "streaming_overhead"],
    # The per-phase entries of a case (phase_seconds_per_step, phase_GBps, phase_roofline_fraction,
    # phase_bytes_per_site) are objects keyed by these phase names (tumorca.engine.PHASES).
    "phases": list(PHASES),
    # o2_cold: the first solve of the case, from init_o2 everywhere (before the warm-up steps).
    "o2_cold": ["iterations", "sweep_equivalents", "seconds", "residual"],
}

#: What each case key means (units in brackets).
CASE_DOC: dict[str, str] = {
    "set": "parameters set with --set (key -> value), on top of the preset",
    "tumour_fraction": "fraction of the lattice's area (2D) or volume (3D) the initial tumour fills",
    "o2_solver": "the O2 solver of the case (o2_solver)",
    "o2_sweep_equivalents_per_step": "O2 work per timed step in lattice-sweep equivalents",
    "o2_iterations_per_step": "O2 iterations per timed step (SOR sweeps, CG iterations or V-cycles)",
    "phase_seconds_per_step": "wall seconds per step of each phase [s]",
    "phase_GBps": "bandwidth implied by phase_bytes_per_site [GB/s]",
    "phase_roofline_fraction": "phase_GBps over the float32 STREAM scale of the same thread count",
    "phase_bytes_per_site": "compulsory bytes per site each phase moves per step (phase_bytes_per_site()) [B]",
}


def peak_rss() -> int:
    """This process's peak resident memory in bytes.  VmHWM belongs to the address space, so a spawned child
    starts afresh; ru_maxrss (the fallback) survives exec and would report the parent's peak."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def parse_shape(text: str) -> tuple[int, ...]:
    """'512x512' -> (512, 512)."""
    return tuple(int(v) for v in text.lower().split("x"))


# ---------------------------------------------------------------------------------------------------------------
# Roofline
# ---------------------------------------------------------------------------------------------------------------
def roofline(threads: int, megabytes: int = 256, repeats: int = 5) -> dict[str, float]:
    """Best-of-``repeats`` bandwidth (GB/s) of a STREAM triad (float64) and a float32 scale, compiled with the
    project's flags, on arrays far larger than the caches."""
    from . import _stream

    n = megabytes * 2 ** 20 // 8
    a, b, c = np.zeros(n), np.ones(n), np.full(n, 2.0)
    best = math.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        _stream.triad(a, b, c, 3.0, threads)
        best = min(best, time.perf_counter() - t0)
    triad = 24 * n / best / 1e9
    a32, b32 = np.zeros(2 * n, dtype=np.float32), np.ones(2 * n, dtype=np.float32)
    best = math.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        _stream.scale(a32, b32, np.float32(3.0), threads)
        best = min(best, time.perf_counter() - t0)
    return {"threads": threads, "triad_GBps": triad, "scale32_GBps": 8 * 2 * n / best / 1e9}


def phase_bytes_per_site(ndim: int, sweeps: float, substeps: int, o2_solver: str = "sor",
                         o2_iterations: float = 0.0) -> dict[str, float]:
    """Bytes each phase must move per site per step (compulsory traffic, neighbours assumed cached).

    O2, SOR: each half-sweep streams c (read+write 8 B), tissue and source (2 B): 20 B per sweep-equivalent
    (``sweeps`` counts multigrid work in fine-sweep units).  O2, mgcg: each CG iteration streams A p (p, tissue,
    source in, q out: 18 B), its dot and the x, r update (48 B), r.z (16 B) and p = z + beta p (24 B); the V-cycle's
    work (``sweeps`` less one per iteration) is counted at 35 B per sweep-equivalent in 2D and 31 in 3D: its eight
    lattice half-sweeps (r, z read, z written, tissue and source: 14 B each), the transfers (23 B) and the float32
    coarse levels (e, f, m, b and the face weights, about 300 B per coarse cell and V-cycle, on N/3 cells in 2D and
    N/7 in 3D), about 235 B and 178 B over the cycle's 6.7 and 5.7 sweep-equivalents (docs/o2-solver.md).
    Slow fields:
    secretion reads 26 B; each implicit axis reads and writes 8 B for three fields, plus bound-VEGF decay.
    Tumour: 5 B; endothelium: 4 B (vessel, tissue, perfused, flags); neutrophils: 4 B plus 3 B per sub-move.  Perfusion: 3 B.
    """
    axes = 2 if ndim == 2 else 3
    cycle = 35.0 if ndim == 2 else 31.0
    o2 = (20.0 * sweeps if o2_solver != "mgcg"
          else cycle * max(sweeps - o2_iterations, 0.0) + 106.0 * o2_iterations)
    return {"perfusion": 3.0, "o2": o2, "slow_fields": 26.0 + 3 * axes * 8.0 + 8.0,
            "endothelium": 4.0, "tumour": 5.0, "neutrophils": 4.0 + 3.0 * substeps}


# ---------------------------------------------------------------------------------------------------------------
# One case
# ---------------------------------------------------------------------------------------------------------------
def case_params(shape: tuple[int, ...], preset: str, tumour_fraction: float = 0.25,
                overrides: dict[str, Any] | None = None) -> Params:
    """The preset with a tumour filling ``tumour_fraction`` of the lattice's area (2D) or volume (3D), then
    ``overrides`` (``--set``; an ``init_tumor_radius`` there wins over the fraction)."""
    if not 0.0 <= tumour_fraction <= 1.0:
        raise ValueError(f"tumour_fraction must be in [0, 1], got {tumour_fraction}")
    n = float(np.prod(shape))
    if len(shape) == 2:
        radius = math.sqrt(tumour_fraction * n / math.pi)
    else:
        radius = (3 * tumour_fraction * n / (4 * math.pi)) ** (1 / 3)
    params = preset_params(preset, init_tumor_radius=radius)
    return params.replace(**overrides) if overrides else params


def _reference_seconds(state: dict[str, Any]) -> float:
    from . import reference

    shape = tuple(state["shape"])
    shape3 = (1,) + shape if len(shape) == 2 else shape
    st = {**state, "arrays": {k: v.reshape(shape3).copy() for k, v in state["arrays"].items()}}
    t0 = time.perf_counter()
    reference.step(st)
    return time.perf_counter() - t0


def run_case(shape: tuple[int, ...], threads: int, steps: int, preset: str = "wild-type", warmup: int = 3,
             reference: bool = False, roof: dict[str, float] | None = None, seed: int = 1,
             overrides: dict[str, Any] | None = None, tumour_fraction: float = 0.25) -> dict[str, Any]:
    """Time ``steps`` warm steps of one case in this process (see :data:`SCHEMA` for the keys)."""
    params = case_params(shape, preset, tumour_fraction, overrides)
    rss0 = peak_rss()
    sim = Simulation(shape, params, seed=seed, threads=threads)
    before = sim.phase_times
    t0 = time.perf_counter()
    sim.step(1)
    st = sim.o2_solver_stats
    cold = {"iterations": st["sweeps"], "sweep_equivalents": st["work"],
            "seconds": sim.phase_times["o2"] - before["o2"], "residual": st["residual"]}
    sim.step(max(warmup - 1, 0))
    ref = _reference_seconds(sim.get_state()) if reference else None
    before = sim.phase_times
    work0 = sim.o2_solver_stats["work_total"]
    its0 = sim.o2_solver_stats["sweeps_total"]
    t0 = time.perf_counter()
    sim.step(steps)
    dt = (time.perf_counter() - t0) / steps
    sweeps = (sim.o2_solver_stats["work_total"] - work0) / steps
    its = (sim.o2_solver_stats["sweeps_total"] - its0) / steps
    phases = {k: (v - before[k]) / steps for k, v in sim.phase_times.items()}
    n = int(np.prod(shape))
    model = phase_bytes_per_site(len(shape), sweeps, params.neut_substeps, params.o2_solver, its)
    gbps = {k: model[k] * n / phases[k] / 1e9 if phases[k] > 0 else 0.0 for k in PHASES}
    peak = peak_rss()
    return {
        "shape": list(shape), "threads": threads, "preset": preset, "set": dict(overrides or {}),
        "tumour_fraction": tumour_fraction, "o2_solver": params.o2_solver, "steps": steps,
        "seconds_per_step": dt, "steps_per_s": 1.0 / dt, "site_updates_per_s": n / dt,
        "o2_sweep_equivalents_per_step": sweeps, "o2_iterations_per_step": its, "o2_cold": cold,
        "phase_seconds_per_step": phases, "phase_GBps": gbps,
        "phase_roofline_fraction": {k: (g / roof["scale32_GBps"] if roof else None) for k, g in gbps.items()},
        "phase_bytes_per_site": {k: model[k] for k in PHASES},
        "peak_rss_bytes": peak, "state_bytes_per_site": bytes_per_site(),
        "solver_bytes_per_site": solver_bytes_per_site(params), "rss_bytes_per_site": (peak - rss0) / n,
        "speedup_vs_1_thread": None, "reference_seconds_per_step": ref,
        "ratio_vs_reference": (ref / dt) if ref else None, "streaming_overhead": None,
    }


def _child(queue, kwargs):
    try:
        queue.put(("ok", run_case(**kwargs)))
    except BaseException as exc:  # pragma: no cover - reported to the parent
        queue.put(("error", f"{type(exc).__name__}: {exc}"))


def run_case_isolated(**kwargs) -> dict[str, Any]:
    """:func:`run_case` in a fresh process, so that its peak RSS is its own."""
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_child, args=(queue, kwargs))
    proc.start()
    status, result = queue.get()
    proc.join()
    if status != "ok":
        raise RuntimeError(f"benchmark case {kwargs.get('shape')} failed: {result}")
    return result


# ---------------------------------------------------------------------------------------------------------------
# Scaling with work
# ---------------------------------------------------------------------------------------------------------------
def growth_scaling(shape: tuple[int, ...], threads: int, steps: int, preset: str = "wild-type",
                   seed: int = 1) -> dict[str, Any]:
    """Time per step as a small tumour grows: least-squares fit ``t = t0 + c_live * live_cells``."""
    sim = Simulation(shape, preset_params(preset, init_tumor_radius=max(2.0, min(shape[-2:]) / 32)), seed=seed,
                     threads=threads)
    sim.step(3)
    times, live = [], []
    for _ in range(steps):
        t0 = time.perf_counter()
        sim.step(1)
        times.append(time.perf_counter() - t0)
        live.append(sim.summary()["tumor_live"])
    A = np.vstack([np.ones(len(live)), live]).T
    (t0_fit, per_live), *_ = np.linalg.lstsq(A, np.array(times), rcond=None)
    return {"shape": list(shape), "threads": threads, "steps": steps, "live_first": live[0], "live_last": live[-1],
            "seconds_per_step_fixed": float(t0_fit), "seconds_per_live_cell": float(per_live)}


def bench(sizes: list[tuple[int, ...]], threads: list[int], steps: int = 10, preset: str = "wild-type",
          reference: bool = True, reference_max_sites: int = 1024 * 1024, roofline_mb: int = 256,
          streaming: Any = None, isolated: bool = True, progress=None, overrides: dict[str, Any] | None = None,
          tumour_fraction: float = 0.25) -> dict[str, Any]:
    """Run every (size, threads) case and return the JSON-ready document of :data:`SCHEMA`.

    ``overrides``: parameters set on top of the preset in every case (``--set``); ``tumour_fraction``: the
    initial tumour's share of the lattice.

    ``streaming``: an optional callable ``(shape, threads, steps, preset) -> overhead fraction`` measuring the
    cost of HDF5 snapshots (supplied by the I/O layer, which the engine does not know).
    """
    roofs = {t: roofline(t, roofline_mb) for t in sorted(set(threads))}
    cases = []
    for shape in sizes:
        base = None
        for i, t in enumerate(threads):
            kw = dict(shape=shape, threads=t, steps=steps, preset=preset, roof=roofs[t], overrides=overrides,
                      tumour_fraction=tumour_fraction,
                      reference=reference and i == 0 and int(np.prod(shape)) <= reference_max_sites)
            row = run_case_isolated(**kw) if isolated else run_case(**kw)
            if i > 0 and cases[-1]["reference_seconds_per_step"]:
                row["reference_seconds_per_step"] = cases[-1]["reference_seconds_per_step"]
                row["ratio_vs_reference"] = row["reference_seconds_per_step"] / row["seconds_per_step"]
            base = base or (row["seconds_per_step"] if t == 1 else None)
            row["speedup_vs_1_thread"] = base / row["seconds_per_step"] if base else None
            if streaming is not None:
                row["streaming_overhead"] = streaming(shape, t, steps, preset)
            cases.append(row)
            if progress:
                progress(row)
    scaling = {"per_site": None, "growth": None}
    if len(cases) >= 2:
        one = [c for c in cases if c["threads"] == threads[0]]
        n = np.array([np.prod(c["shape"]) for c in one], dtype=float)
        s = np.array([c["seconds_per_step"] for c in one])
        if len(one) >= 2:
            A = np.vstack([np.ones_like(n), n]).T
            (fixed, per_site), *_ = np.linalg.lstsq(A, s, rcond=None)
            scaling["per_site"] = {"threads": threads[0], "seconds_fixed": float(fixed),
                                   "seconds_per_site": float(per_site)}
    return {"tumorca": __version__, "numpy": np.__version__,
            "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
            "threads_available": len(os.sched_getaffinity(0)), "roofline": list(roofs.values()), "cases": cases,
            "scaling": scaling}


def streaming_overhead(shape: tuple[int, ...], threads: int, steps: int, preset: str = "wild-type",
                       every: int = 10, seed: int = 1) -> float:
    """Fractional extra wall time of a run that writes HDF5 frames every ``every`` steps (gzip-1, all layers) over
    the same steps without any file, both from the initial state."""
    import tempfile
    from pathlib import Path

    from .io.layout import RunPlan
    from .runner import run

    params = case_params(shape, preset)
    t0 = time.perf_counter()
    Simulation(shape, params, seed=seed, threads=threads).step(steps)
    bare = time.perf_counter() - t0
    with tempfile.TemporaryDirectory() as tmp:
        plan = RunPlan(shape=tuple(shape), params=params, seed=seed, steps=steps, every=min(every, steps))
        t0 = time.perf_counter()
        run(plan, Path(tmp) / "bench.h5", provenance={"command_line": "tumorca bench", "threads": threads},
            threads=threads)
        written = time.perf_counter() - t0
    return written / bare - 1.0


def format_table(doc: dict[str, Any]) -> str:
    """A short human-readable table of a :func:`bench` document."""
    lines = []
    for r in doc["roofline"]:
        lines.append(f"roofline {r['threads']} thread(s): triad {r['triad_GBps']:.1f} GB/s, "
                     f"float32 scale {r['scale32_GBps']:.1f} GB/s")
    lines.append(f"{'lattice':>13} {'thr':>3} {'steps/s':>8} {'site-upd/s':>10} {'O2 swq':>6} {'x1thr':>6} "
                 f"{'x ref':>7} {'B/site':>7}  slowest phases (s/step, % of roofline)")
    for c in doc["cases"]:
        ph = sorted(c["phase_seconds_per_step"].items(), key=lambda kv: -kv[1])[:3]
        frac = c["phase_roofline_fraction"]
        desc = ", ".join(f"{k} {v:.3g} ({100 * frac[k]:.0f}%)" if frac[k] is not None else f"{k} {v:.3g}"
                         for k, v in ph)
        ratio = f"{c['ratio_vs_reference']:7.1f}" if c["ratio_vs_reference"] else f"{'-':>7}"
        sp = f"{c['speedup_vs_1_thread']:6.2f}" if c["speedup_vs_1_thread"] else f"{'-':>6}"
        lines.append(f"{'x'.join(map(str, c['shape'])):>13} {c['threads']:3d} {c['steps_per_s']:8.2f} "
                     f"{c['site_updates_per_s']:10.3e} {c['o2_sweep_equivalents_per_step']:6.1f} {sp} {ratio} "
                     f"{c['rss_bytes_per_site']:7.1f}  {desc}")
        if c["streaming_overhead"] is not None:
            lines.append(f"{'':>13}     HDF5 frames every 10 steps: {100 * c['streaming_overhead']:+.1f} % wall time")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------------------------
# MPI: strong scaling and halo exchange (docs/scaling.md)
# ---------------------------------------------------------------------------------------------------------------
#: Keys of each row of :func:`mpi_scaling` (one per rank count); the document adds ``shape``, ``threads``,
#: ``preset``, ``steps``.
MPI_ROW_KEYS = ["ranks", "grid", "sites", "halo_width", "step_seconds", "halo_seconds", "halo_fraction",
                "halo_bytes", "o2_sweeps", "phase_seconds", "seconds_per_site", "speedup", "efficiency"]


def mpi_scaling(shape: tuple[int, ...], ranks: list[int], steps: int = 3, threads: int = 1,
                preset: str = "wild-type", mpiexec: str | None = None, timeout: float | None = None,
                progress: Any = None) -> dict[str, Any]:
    """Strong scaling of one lattice over ``ranks`` MPI processes: for each count, ``mpiexec -n P`` runs
    :func:`tumorca.parallel.bench_step` (``steps`` timed steps after one warm-up, the bench's tumour quarter of
    the lattice) and reports seconds per step on the slowest rank, the halo-exchange seconds and bytes per step
    (the engine's ``phase_times["halo"]``), O2 sweeps per step, seconds per site-update, speed-up and parallel
    efficiency against the smallest rank count."""
    import json
    import shutil
    import subprocess
    import sys

    from .errors import ResourceError, TumorcaError

    exe = mpiexec or shutil.which("mpiexec")
    if exe is None:
        raise ResourceError("no mpiexec on PATH: pip install 'tumorca[mpi]' (or load the cluster's MPI)")
    rows = []
    for p in ranks:
        cmd = [exe, "-n", str(p), sys.executable, "-m", "tumorca.parallel.bench", "--shape", "x".join(map(str, shape)),
               "--steps", str(steps), "--threads", str(threads), "--preset", preset]
        try:
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                               env={**os.environ, "OMP_NUM_THREADS": str(threads)})
        except subprocess.TimeoutExpired:
            raise TumorcaError(f"the {p}-rank case of {'x'.join(map(str, shape))} took longer than {timeout:g} s")
        lines = [ln for ln in r.stdout.splitlines() if ln.startswith("{")]
        if r.returncode != 0 or not lines:
            err = " ".join((r.stderr.strip().splitlines() or ["no output"])[-1].split())
            raise TumorcaError(f"the {p}-rank case failed (exit {r.returncode}): {err}")
        row = json.loads(lines[-1])
        row["halo_fraction"] = row["halo_seconds"] / row["step_seconds"] if row["step_seconds"] else None
        row["seconds_per_site"] = row["step_seconds"] * row["ranks"] / row["sites"]
        rows.append(row)
        if progress is not None:
            progress(row)
    base = rows[0]
    for row in rows:
        row["speedup"] = base["step_seconds"] / row["step_seconds"]
        row["efficiency"] = row["speedup"] * base["ranks"] / row["ranks"]
    return {"shape": list(shape), "threads": threads, "preset": preset, "steps": steps, "rows": rows}


def format_mpi_table(doc: dict[str, Any]) -> str:
    """A short table of an :func:`mpi_scaling` document."""
    lines = [f"MPI strong scaling, {'x'.join(map(str, doc['shape']))}, {doc['threads']} thread(s) per rank, "
             f"{doc['steps']} timed steps:",
             f"{'ranks':>5} {'grid':>7} {'s/step':>8} {'speed-up':>8} {'effic.':>6} {'halo s/step':>11} "
             f"{'halo %':>6} {'halo MB/step':>12} {'O2 sweeps':>9} {'ns/site':>8}"]
    for r in doc["rows"]:
        frac = f"{100 * r['halo_fraction']:6.1f}" if r["halo_fraction"] is not None else f"{'-':>6}"
        lines.append(f"{r['ranks']:5d} {r['grid']:>7} {r['step_seconds']:8.3f} {r['speedup']:8.2f} "
                     f"{r['efficiency']:6.2f} {r['halo_seconds']:11.4f} {frac} {r['halo_bytes'] / 1e6:12.2f} "
                     f"{r['o2_sweeps']:9.1f} {1e9 * r['seconds_per_site']:8.1f}")
    return "\n".join(lines)
