"""One lattice split across MPI ranks, stepping bit for bit as the serial :class:`tumorca.Simulation`.

:class:`DistributedSimulation` is the face: construction on every rank together, reading a block of a saved
state, gathering and observables.  The step is :class:`tumorca.engine.Engine`'s, the same as the serial one,
run over this rank's :class:`tumorca.parallel.domain.BlockDomain` (halo exchange and the global pieces).
"""
from __future__ import annotations

import numbers
from typing import Any, Callable

import numpy as np

from .. import __version__
from .._lattice import available_memory, check_seed, check_threads, fmt_bytes, normalize_shape
from ..engine import STATE_ARRAYS, Engine, halo_widths
from ..errors import LatticeError, ParameterError, ResourceError, TumorcaError
from ..initial import initial_state
from ..params import Params
from ..simulation import bytes_per_site, check_state
from .decomposition import Decomposition


#: Scratch bytes per site of a block besides the serial engine's: the float64 line buffer of a pipelined
#: diffusion pass (8) and the O2 copy kept for a batch of SOR sweeps (4); with mgcg, the block's o2, tissue and
#: sources copied and pickled for rank 0 (12) instead.  (Rank 0's whole-lattice arrays and mgcg workspace are
#: counted apart: :func:`tumorca.parallel.o2.gathered_solve_bytes`.)
PARALLEL_BYTES_PER_SITE = 12


def block_bytes_per_site() -> int:
    """Bytes per site of a block with halo: the state, the serial scratch and the parallel scratch."""
    return bytes_per_site() + PARALLEL_BYTES_PER_SITE


def node_memory_error(ranks: int, blocks: int, gathered: int, available: int | None) -> str | None:
    """The one-line message of the ResourceError raised when the ``ranks`` ranks sharing a node's memory need
    more than ``available`` bytes, else None (also when ``available`` is unknown).

    ``blocks`` is the bytes of their blocks with halo and scratch (:func:`block_bytes_per_site`), ``gathered`` the
    bytes of rank 0's gathered O2 solve if rank 0 is one of them (:func:`tumorca.parallel.o2.gathered_solve_bytes`;
    0 elsewhere and with SOR)."""
    if available is None or blocks + gathered <= available:
        return None
    msg = (f"the blocks of the {ranks} ranks on this node need {fmt_bytes(blocks)} of memory "
           f"({block_bytes_per_site()} B/site with halo)")
    if gathered:
        msg += (f" and rank 0's gathered O2 solve (o2_solver = \"mgcg\": the whole lattice and the solver's "
                f"workspace) {fmt_bytes(gathered)} more")
    msg += f" but only {fmt_bytes(available)} is available; "
    if not gathered:
        return msg + "use more nodes"
    if gathered >= available:
        return msg + 'use o2_solver = "sor", which stays distributed'
    return msg + 'use more nodes, or o2_solver = "sor", which stays distributed'


class MPIUnavailableError(TumorcaError):
    """mpi4py (or an MPI library) is not installed."""


def _import_mpi():
    try:
        from mpi4py import MPI
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise MPIUnavailableError("mpi4py is not installed: pip install 'tumorca[mpi]'") from exc
    return MPI


def initial_block(shape3: tuple[int, int, int], params: Params,
                  region: tuple[slice, slice, slice]) -> dict[str, np.ndarray]:
    """The arrays of :func:`tumorca.initial.initial_state` restricted to ``region`` (global slices), computed
    without building the whole lattice."""
    return initial_state(shape3, params, region)


def _agree(comm, fn: Callable[[], Any]) -> Any:
    """Run ``fn`` on every rank; if it raised a TumorcaError on any rank, raise it on all of them (the message
    of the lowest failing rank, same class), so that no rank goes on into a collective the others left."""
    err = None
    try:
        out = fn()
    except TumorcaError as exc:
        err, out = exc, None
    flags = comm.allgather(None if err is None else (type(err), str(err)))
    for f in flags:
        if f is not None:
            cls, msg = f
            raise (err if err is not None and str(err) == msg else cls(msg))
    return out


class DistributedSimulation(Engine):
    """A tumour lattice split across the ranks of an MPI communicator; the same model as
    :class:`tumorca.Simulation`, and the same result bit for bit for any rank count and block shape.

    Every method is collective (all ranks call it, in the same order) unless its docstring says otherwise.

    Parameters
    ----------
    shape : tuple of int
        ``(ny, nx)`` or ``(nz, ny, nx)``.
    params : Params, optional
        Model parameters.  ``o2_solver = "multigrid"`` is refused (serial only).
    seed : int
        Seed of the counter-based generator.
    threads : int, optional
        OpenMP threads per rank.
    comm : mpi4py.MPI.Comm, optional
        Communicator to split the lattice over (default COMM_WORLD).
    ranks_shape : None, "auto", "PzxPyxPx", "PyxPx" or a 3-tuple
        The rank grid; None and "auto" choose the grid with the fewest halo sites
        (:meth:`Decomposition.auto_dims`).

    Raises
    ------
    tumorca.errors.TumorcaError
        On every rank together: MPIUnavailableError without mpi4py; LatticeError for a bad shape, seed, thread
        count or a rank grid that does not fit the lattice; ParameterError for bad params or multigrid;
        ResourceError if the blocks of a node's ranks would not fit its memory (on rank 0's node, with the whole
        lattice and workspace of the gathered mgcg O2 solve: docs/parallel.md, "Cost and memory").
    """

    # -- construction ---------------------------------------------------------------------------------------
    def __init__(self, shape, params: Params | None = None, seed: int = 0, threads: int | None = None,
                 comm=None, ranks_shape: Any = None) -> None:
        MPI = _import_mpi()
        comm = MPI.COMM_WORLD if comm is None else comm

        def prepare():
            shape3 = normalize_shape(shape)
            p = Params() if params is None else params
            if not isinstance(p, Params):
                raise ParameterError(f"params must be a tumorca.Params, got {type(p).__name__}")
            return shape3, len(tuple(shape)), p, check_seed(seed), check_threads(threads)

        shape3, ndim, p, sd, nt = _agree(comm, prepare)
        self._init_common(comm, shape3, ndim, p, sd, nt, ranks_shape)
        arrays = _agree(comm, lambda: self._initial_local())
        self._setup(0, arrays)

    @classmethod
    def from_state(cls, state: dict[str, Any] | None, threads: int | None = None, comm=None,
                   ranks_shape: Any = None) -> "DistributedSimulation":
        """Start from a whole state (as :meth:`tumorca.Simulation.get_state` gives it) that rank 0 alone holds:
        ``state`` on rank 0, None (or anything) on the others.  Rank 0 sends every rank its block with halo.

        This is how a run under MPI starts from a given state (a branch, a state built from data): it equals
        ``Simulation.from_state(state)`` bit for bit.  Raises LatticeError on every rank if the state is
        incomplete or its arrays do not match its shape.
        """
        MPI = _import_mpi()
        comm = MPI.COMM_WORLD if comm is None else comm

        def check() -> dict[str, Any] | None:
            if comm.Get_rank() != 0:
                return None
            check_state(state)
            return {k: state[k] for k in ("shape", "params", "seed", "step_index")}

        meta = comm.bcast(_agree(comm, check), root=0)
        return cls.from_blocks(meta, None, threads=threads, comm=comm, ranks_shape=ranks_shape,  # type: ignore[arg-type]
                               root_arrays=state["arrays"] if comm.Get_rank() == 0 else None)

    def _receive_blocks(self, arrays: dict[str, np.ndarray] | None) -> Callable[[str, Any], np.ndarray]:
        """Collective: rank 0 sends every rank the region of the whole-lattice ``arrays`` (given on rank 0) that
        rank's local array covers (its block with halo); returns a ``read_block`` over what this rank received.
        Buffers, not pickles: a block may be larger than one pickled message can be."""
        comm = self._comm
        regions = comm.gather(self._dec.local, root=0)
        mine: dict[str, np.ndarray] = {}
        for tag, (name, dt) in enumerate(STATE_ARRAYS.items()):
            if comm.Get_rank() == 0:
                whole = np.reshape(arrays[name], self._shape3)
                for r, region in enumerate(regions):
                    blk = np.ascontiguousarray(whole[region], dtype=dt)
                    if r == 0:
                        mine[name] = blk
                    else:
                        comm.Send(blk, dest=r, tag=tag)
            else:
                mine[name] = np.empty(self._dec.local_shape, dtype=dt)
                comm.Recv(mine[name], source=0, tag=tag)
        return lambda name, region: mine[name]

    @classmethod
    def from_blocks(cls, meta: dict[str, Any], read_block: Callable[[str, tuple[slice, slice, slice]], np.ndarray],
                    threads: int | None = None, comm=None, ranks_shape: Any = None,
                    root_arrays: dict[str, np.ndarray] | None = None) -> "DistributedSimulation":
        """Continue a run, each rank reading only its own block (with halo) of the whole-lattice arrays.

        Parameters
        ----------
        meta : dict
            ``shape``, ``params``, ``seed`` and ``step_index`` as in :meth:`tumorca.Simulation.get_state`.
        read_block : callable
            ``read_block(name, (zslice, yslice, xslice))`` returns that region (global 3D slices) of the
            whole-lattice array ``name`` of :data:`tumorca.engine.STATE_ARRAYS`, whichever rank count wrote
            it.  This is how a checkpoint written by P ranks continues on Q ranks.  None: rank 0 sends the
            blocks of ``root_arrays`` (see :meth:`from_state`).
        root_arrays : dict, optional
            With ``read_block`` None, on rank 0: the whole-lattice state arrays.

        The continuation equals the uninterrupted (serial) run bit for bit.
        """
        MPI = _import_mpi()
        comm = MPI.COMM_WORLD if comm is None else comm

        def prepare():
            if not isinstance(meta, dict):
                raise LatticeError(f"meta must be a dict, got {type(meta).__name__}")
            missing = [k for k in ("shape", "params", "seed", "step_index") if k not in meta]
            if missing:
                raise LatticeError(f"state is missing {', '.join(missing)}")
            shape3 = normalize_shape(meta["shape"])
            p = meta["params"]
            p = p if isinstance(p, Params) else Params.from_dict(p)
            step = meta["step_index"]
            if isinstance(step, bool) or not isinstance(step, numbers.Integral) or step < 0:
                raise LatticeError(f"state step_index must be a non-negative integer, got {step!r}")
            return shape3, len(tuple(meta["shape"])), p, check_seed(meta["seed"]), check_threads(threads), \
                int(step)

        shape3, ndim, p, sd, nt, step = _agree(comm, prepare)
        sim = cls.__new__(cls)
        sim._init_common(comm, shape3, ndim, p, sd, nt, ranks_shape)
        if read_block is None:  # from_state: rank 0 holds the whole state and sends each rank its block
            read_block = sim._receive_blocks(root_arrays)

        def read():
            region = sim._dec.local
            want = sim._dec.local_shape
            out = {}
            for name, dt in STATE_ARRAYS.items():
                blk = np.asarray(read_block(name, region))
                if blk.shape != want:
                    blk = blk.reshape(want) if blk.size == int(np.prod(want)) else None
                if blk is None:
                    raise LatticeError(f"block of state array {name!r} for region {region} has the wrong shape")
                out[name] = np.ascontiguousarray(blk, dtype=dt)
            return out

        arrays = _agree(comm, read)
        sim._setup(step, arrays)
        # Polarisation and age mean nothing where no neutrophil is (as Simulation.from_state).
        a = sim._arrays
        empty = a["neut"] == 0
        a["neut_p"][empty] = 0
        a["neut_age"][empty] = 0
        return sim

    def _init_common(self, comm, shape3, ndim, params, seed, threads, ranks_shape) -> None:
        MPI = _import_mpi()
        self._shape3, self._ndim, self._params, self._seed, self._threads = shape3, ndim, params, seed, threads
        halo = halo_widths(params)["halo"]

        def grid():
            if params.o2_solver == "multigrid":
                raise ParameterError('o2_solver = "multigrid" is serial-only; use "sor"')
            # the distributed mgcg solve needs whole rows: an automatic grid keeps them where it can
            return Decomposition.choose_dims(shape3, comm.Get_size(), ranks_shape, halo,
                                             whole_rows=params.o2_solver == "mgcg")

        dims = _agree(comm, grid)
        # reorder=False: rank r of the grid is rank r of ``comm``, in C order of the coordinates (as blocks()).
        self._cart = comm.Create_cart(list(dims), periods=[False, False, False], reorder=False)
        self._comm = comm
        coords = tuple(self._cart.Get_coords(self._cart.Get_rank()))
        self._dec = Decomposition(shape3, dims, coords, halo=halo, size=comm.Get_size())
        try:
            _agree(comm, lambda: self._check_node_memory(MPI))
        except BaseException:
            self.close()  # every rank raised together: free the communicator on all of them
            raise
        from .domain import BlockDomain
        self._domain = BlockDomain(self._cart, self._dec, params, params.rates(), threads)

    def _check_node_memory(self, MPI) -> None:
        """ResourceError if the blocks (with halo and the engine's scratch) of all ranks sharing this node's
        memory, and on rank 0's node the whole lattice and workspace of the gathered mgcg solve, need more than
        is available here (the serial check, counted per node, not per rank)."""
        from .o2 import block_solve_bytes, gathered_solve_bytes, o2_mode

        mode = o2_mode(self._params, self._dec, self._comm.Get_size())
        local = int(np.prod(self._dec.local_shape))
        gathered = mode == "gathered" and self._comm.Get_rank() == 0
        need = np.array([local * block_bytes_per_site() + block_solve_bytes(local, mode),
                         gathered_solve_bytes(self._shape3, self._params) if gathered else 0], dtype=np.int64)
        node = self._comm.Split_type(MPI.COMM_TYPE_SHARED)
        try:
            total, ranks = np.empty_like(need), node.Get_size()
            node.Allreduce(need, total, op=MPI.SUM)
        finally:
            node.Free()
        msg = node_memory_error(ranks, int(total[0]), int(total[1]), available_memory())
        if msg is not None:
            raise ResourceError(msg)

    def _initial_local(self) -> dict[str, np.ndarray]:
        return initial_block(self._shape3, self._params, self._dec.local)

    def _setup(self, step_index: int, arrays: dict[str, np.ndarray]) -> None:
        self._init_engine(step_index, arrays)
        self._halo_time0 = self._domain.exchanger.seconds
        # The inlet layer never changes: one full exchange makes its halo right for the whole run (it arrives
        # right from initial_block or read_block already; this also covers a read_block that leaves it stale).
        self._domain.exchange([self._arrays["inlet"]], self._dec.halo)

    # -- observables ----------------------------------------------------------------------------------------
    @property
    def comm(self):
        """The communicator the lattice is split over (as given)."""
        return self._comm

    @property
    def cart(self):
        """The Cartesian communicator of the rank grid."""
        return self._cart

    @property
    def decomposition(self) -> Decomposition:
        return self._dec

    @property
    def rank(self) -> int:
        return self._comm.Get_rank()

    @property
    def size(self) -> int:
        return self._comm.Get_size()

    def close(self) -> None:
        """Free the Cartesian communicator (collective: every rank calls it).  MPI has a limited number of
        communicators per process, so a program that builds many simulations should close them (or use the
        object as a context manager)."""
        cart, self._cart = getattr(self, "_cart", None), None
        if cart is not None:
            cart.Free()

    def __enter__(self) -> "DistributedSimulation":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    @property
    def halo_width(self) -> int:
        """Halo layers allocated on each side facing another block."""
        return self._dec.halo

    def layer(self, name: str) -> np.ndarray:
        """Read-only view of this rank's block (3D) of state array ``name``; not collective."""
        if name not in STATE_ARRAYS:
            raise ParameterError(f"unknown state array {name!r}; arrays are {', '.join(STATE_ARRAYS)}")
        v = self._arrays[name][self._dec.box_slices]
        v.flags.writeable = False
        return v

    def local_state(self) -> dict[str, Any]:
        """This rank's block of the state (copies), with its global position ``owned``; not collective."""
        return {"version": __version__, "shape": self.shape, "params": self._params.to_dict(), "seed": self._seed,
                "step_index": self._step, "owned": self._dec.owned,
                "arrays": {name: self._arrays[name][self._dec.box_slices].copy() for name in STATE_ARRAYS}}

    def gather_state(self, root: int = 0) -> dict[str, Any] | None:
        """The whole state as :meth:`tumorca.Simulation.get_state` on rank ``root``, None elsewhere (gathers the
        lattice on one rank: for tests and small runs)."""
        mine = self.local_state()
        parts = self._comm.gather((mine["owned"], mine["arrays"]), root=root)
        if self.rank != root:
            return None
        arrays = {}
        for name, dt in STATE_ARRAYS.items():
            full = np.empty(self._shape3, dtype=dt)
            for owned, arrs in parts:
                full[owned] = arrs[name]
            arrays[name] = full.reshape(self.shape)
        return {"version": __version__, "shape": self.shape, "params": self._params.to_dict(), "seed": self._seed,
                "step_index": self._step, "arrays": arrays}

    @property
    def phase_times(self) -> dict[str, float]:
        """Wall seconds of this rank in each phase (:data:`tumorca.engine.PHASES`) since creation, plus
        ``halo``: the part of them spent in halo exchanges; not collective."""
        out = dict(self._phase_time)
        out["halo"] = self._domain.exchanger.seconds - self._halo_time0
        return out

    def __repr__(self) -> str:
        return (f"DistributedSimulation(shape={self.shape}, seed={self._seed}, step_index={self._step}, "
                f"ranks={self.size}, grid={'x'.join(map(str, self._dec.dims))}, threads={self._threads})")
