"""Post-processing of tumorca runs.

* :func:`open_run` -> :class:`Run`: metadata, lazy frames (``run.frame(i)``, ``run.tissue[i]``), the per-step time
  series (``run.timeseries()``, ``run.timeseries_frame()``); works on finished, running and cut-off files.
* :mod:`~tumorca.analysis.measures`: measures of one frame; :func:`measure_run`: of every frame of a run;
  :func:`summarize_run` / :func:`compare`: final and time-integrated measures, mean ± sd per group of replicates.
* :func:`open_sweep`: the manifest of a ``tumorca sweep`` as a table; :func:`iter_runs` opens its runs one by one;
  :func:`compare_arms` tests one condition against another (paired by parent in a branched sweep).
* :mod:`~tumorca.analysis.plots`: figures and movies (needs matplotlib: ``pip install 'tumorca[plot]'``).

Pure Python over NumPy and h5py: nothing here needs the compiled engine.  See docs/analysis.md.
"""
from . import measures  # noqa: F401
from .run import LayerView, Run, open_run
from .series import (SUMMARY_COLUMNS, aggregate, compare, format_compare, measure_run, run_growth_rate, save_table,
                     summarize_run, summarize_runs)
from .sweep import compare_arms, iter_runs, open_sweep

__all__ = ["measures", "open_run", "Run", "LayerView", "measure_run", "run_growth_rate", "summarize_run",
           "summarize_runs", "compare", "aggregate", "format_compare", "save_table", "SUMMARY_COLUMNS",
           "open_sweep", "iter_runs", "compare_arms"]
