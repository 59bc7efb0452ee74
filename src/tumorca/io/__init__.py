"""Run files: the HDF5 file a ``tumorca run`` writes (layout in docs/FORMAT.md), its writer and its reader.

Reading (:class:`RunReader`) needs only h5py, NumPy and tumorca's pure-Python modules, not the compiled engine.
"""
from .checkpoint import load_checkpoint_file, read_state, save_checkpoint_file, write_state
from .layout import FORMAT_NAME, FORMAT_VERSION, RunFileError, RunPlan, sidecar_paths
from .reader import RunReader, RunStatus, open_run
from .writer import RunWriter

__all__ = ["RunWriter", "RunReader", "RunStatus", "RunPlan", "RunFileError", "open_run", "FORMAT_NAME",
           "FORMAT_VERSION", "sidecar_paths", "write_state", "read_state", "save_checkpoint_file",
           "load_checkpoint_file"]
