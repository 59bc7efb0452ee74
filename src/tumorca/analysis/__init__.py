"""Post-processing of tumorca runs: frame measures (:mod:`tumorca.analysis.measures`) and sweep results
(:func:`open_sweep`, :mod:`tumorca.analysis.sweep`).

Pure Python over NumPy and h5py: nothing here needs the compiled engine.
"""
from . import measures  # noqa: F401
from .sweep import iter_runs, open_sweep  # noqa: F401,E402
