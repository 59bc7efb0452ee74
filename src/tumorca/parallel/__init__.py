"""One lattice split across MPI ranks (domain decomposition), bit-identical to the serial run.

* :class:`Decomposition` (pure Python): the Cartesian grid of blocks, one per rank, and its checks.
* :class:`DistributedSimulation`: the engine on one block per rank (needs mpi4py: ``pip install 'tumorca[mpi]'``,
  imported only when a DistributedSimulation is created).
* :func:`bench_step`: time per step and halo-exchange time per step, for ``tumorca bench`` and docs/scaling.md.

See docs/parallel.md for the halo width of every phase and how the global pieces are done.
"""
from __future__ import annotations

from .decomposition import Decomposition, split_axis
from .simulation import DistributedSimulation, MPIUnavailableError, halo_widths, initial_block
from .bench import bench_step

__all__ = ["Decomposition", "DistributedSimulation", "MPIUnavailableError", "bench_step", "halo_widths",
           "initial_block", "split_axis"]
