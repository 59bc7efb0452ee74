"""Batch sweeps (docs/sweeps.md): one sweep file (TOML) expands into many runs; each run is one task on Dask
distributed that writes its own run file, and a manifest records every run's parameters, seed, status and final
measures.

The parts, from the file to the cluster:

* :mod:`.spec`: the sweep file.  :func:`load_sweep` validates one into a :class:`SweepSpec` of :class:`SweepRun` s
  (a :class:`~tumorca.io.layout.RunPlan` each), with seeds from ``numpy.random.SeedSequence(seed).spawn(n)``
  (:func:`derive_seeds`).
* :mod:`.task`: :func:`run_task`, what a worker runs: one simulation into ``OUTDIR/.partial/NAME/NAME.h5``, moved
  to ``OUTDIR/runs/NAME.h5`` once complete, and a summary (final measures, wall time) returned.  In a branched
  sweep (``[branch]``) the run continues its replicate's parent, grown once into ``OUTDIR/parents/``.
* :mod:`.driver`: :class:`SweepDriver` owns an output directory (lock, resume scan, manifest rows) and submits the
  runs to a ``distributed.Client``, retrying failed ones; :func:`run_on_cluster` sets the cluster up and tears it
  down; :func:`run_sweep` does all of it from Python.
* The output directory's layout and the manifest files are :mod:`tumorca.io.manifest`.

Nothing here imports Dask at module level: the sweep file, the dry run and the manifest work without it.
"""
from ..errors import SweepError
from ..io.manifest import (LOCK_NAME, MANIFEST_CSV, MANIFEST_FORMAT, MANIFEST_JSON, MANIFEST_VERSION, PARENTS_DIR,
                           PARTIAL_DIR, RUNS_DIR, read_manifest, run_paths)
from .driver import (ClusterError, SweepDriver, SweepEstimate, SweepProgressEvent, SweepRunError, check_sweep_resources,
                     cluster_security, connect, default_workers, describe_failure, estimate_sweep, local_cluster,
                     run_on_cluster, run_sweep)
from .spec import SEED_RULE, SweepParent, SweepRun, SweepSpec, derive_seeds, load_sweep, parse_sweep
from .task import final_measures, is_complete_run, run_task

__all__ = ["SweepSpec", "SweepRun", "SweepParent", "SweepError", "SweepDriver", "SweepEstimate", "SweepProgressEvent",
           "ClusterError", "SweepRunError", "load_sweep", "parse_sweep", "derive_seeds", "run_task", "run_sweep",
           "run_on_cluster", "cluster_security", "final_measures", "is_complete_run", "read_manifest", "run_paths",
           "estimate_sweep",
           "check_sweep_resources", "local_cluster", "default_workers", "connect", "describe_failure", "SEED_RULE",
           "MANIFEST_FORMAT", "MANIFEST_VERSION", "MANIFEST_JSON", "MANIFEST_CSV", "RUNS_DIR", "PARENTS_DIR", "PARTIAL_DIR",
           "LOCK_NAME"]
