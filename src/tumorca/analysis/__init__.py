"""Post-processing of tumorca runs: frame measures (:mod:`tumorca.analysis.measures`).

Pure Python over NumPy and h5py: nothing here needs the compiled engine.
"""
from . import measures  # noqa: F401
