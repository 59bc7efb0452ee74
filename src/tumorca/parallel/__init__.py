"""One lattice split across MPI ranks (domain decomposition), bit-identical to the serial run.

* :class:`Decomposition` (pure Python): the Cartesian grid of blocks, one per rank, and its checks.
* :class:`DistributedSimulation`: the engine on one block per rank (needs mpi4py: ``pip install 'tumorca[mpi]'``,
  imported only when a DistributedSimulation is created).
* :func:`bench_step`: time per step and halo-exchange time per step, for ``tumorca bench`` and docs/scaling.md.
* :mod:`.run`: the collective run loop of ``mpiexec -n P tumorca run`` (the files are :mod:`tumorca.io.distributed`).

See docs/parallel.md for the halo width of every phase and how the global pieces are done.
"""
from __future__ import annotations

from .decomposition import Decomposition, split_axis
from .simulation import DistributedSimulation, MPIUnavailableError, halo_widths, initial_block


def __getattr__(name: str):
    # bench_step loads on first use: ``python -m tumorca.parallel.bench`` (tumorca bench --mpi) runs that module
    # as __main__, which runpy warns about when importing this package has already imported it.
    if name == "bench_step":
        from .bench import bench_step
        return bench_step
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["Decomposition", "DistributedSimulation", "MPIUnavailableError", "bench_step", "halo_widths",
           "initial_block", "split_axis"]
