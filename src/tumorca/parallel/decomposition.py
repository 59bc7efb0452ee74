"""How a lattice is split into a Cartesian grid of blocks, one per MPI rank (pure Python and NumPy).

Nothing here imports mpi4py, so the rules (and their error messages) can be used and tested without MPI, and the
I/O side can work out every rank's block of a run file from the lattice shape and the rank grid alone.
"""
from __future__ import annotations

import itertools
import numbers
from typing import Any

from .._lattice import normalize_shape
from ..errors import LatticeError

_AXES = ("z", "y", "x")


def split_axis(n: int, parts: int) -> list[tuple[int, int]]:
    """Near-equal split of ``range(n)`` into ``parts`` half-open ranges, the first ``n % parts`` one longer (the
    rule of ``numpy.array_split``)."""
    base, extra = divmod(n, parts)
    out, lo = [], 0
    for i in range(parts):
        hi = lo + base + (1 if i < extra else 0)
        out.append((lo, hi))
        lo = hi
    return out


def _check_dims(dims: Any) -> tuple[int, int, int]:
    try:
        d = tuple(dims)
    except TypeError:
        raise LatticeError(f"rank grid must be (Pz, Py, Px), got {dims!r}") from None
    if len(d) != 3 or any(isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 1 for v in d):
        raise LatticeError(f"rank grid must be three positive integers (Pz, Py, Px), got {dims!r}")
    return tuple(int(v) for v in d)


def _fmt(dims: tuple[int, int, int]) -> str:
    return "x".join(str(v) for v in dims)


class Decomposition:
    """One rank's block of a lattice split into a ``dims`` = (Pz, Py, Px) grid of blocks.

    Parameters
    ----------
    shape3 : (nz, ny, nx)
        Global lattice shape (a 2D lattice is (1, ny, nx)).
    dims : (Pz, Py, Px)
        Blocks along each axis; each axis is split near-equally, the first ``n % P`` blocks one site longer
        (:func:`split_axis`).
    coords : (cz, cy, cx)
        This rank's position in the grid.
    halo : int
        Halo width the engine will exchange: every block along a split axis must be at least this thick, since
        a halo is filled from the adjacent block only.
    size : int, optional
        Number of ranks available (the communicator size); must equal Pz*Py*Px.

    Raises
    ------
    tumorca.errors.LatticeError
        With a one-line message: the grid does not match ``size``, has more blocks than sites along an axis,
        makes a block thinner than ``halo``, or splits z on a 2D lattice.
    """

    def __init__(self, shape3: tuple[int, int, int], dims: tuple[int, int, int],
                 coords: tuple[int, int, int] = (0, 0, 0), halo: int = 0, size: int | None = None) -> None:
        self.shape3 = normalize_shape(shape3)
        self.dims = _check_dims(dims)
        self.halo = int(halo)
        self.check(self.shape3, self.dims, halo=self.halo, size=size)
        c = tuple(int(v) for v in coords)
        if len(c) != 3 or not all(0 <= c[a] < self.dims[a] for a in range(3)):
            raise LatticeError(f"rank coordinates {coords!r} are outside the rank grid {_fmt(self.dims)}")
        self.coords = c
        self._ranges = tuple(split_axis(self.shape3[a], self.dims[a])[c[a]] for a in range(3))

    # -- validation -----------------------------------------------------------------------------------------
    @staticmethod
    def check(shape3: tuple[int, int, int], dims: tuple[int, int, int], halo: int = 0,
              size: int | None = None) -> None:
        """Raise LatticeError (one line) if ``dims`` cannot split ``shape3`` for ``size`` ranks and halo
        width ``halo``; see the class docstring."""
        shape3 = normalize_shape(shape3)
        dims = _check_dims(dims)
        nprocs = dims[0] * dims[1] * dims[2]
        if size is not None and nprocs != size:
            raise LatticeError(f"rank grid {_fmt(dims)} has {nprocs} blocks but {size} MPI ranks are running")
        if shape3[0] == 1 and dims[0] > 1:
            raise LatticeError(f"rank grid {_fmt(dims)} splits z, but the lattice is 2D "
                               f"({shape3[1]}x{shape3[2]}); give a Py x Px grid")
        for a in range(3):
            if dims[a] > shape3[a]:
                raise LatticeError(f"rank grid {_fmt(dims)} has more ranks ({dims[a]}) than sites ({shape3[a]}) "
                                   f"along {_AXES[a]}")
        for a in range(3):
            if dims[a] > 1:
                thinnest = shape3[a] // dims[a]
                if thinnest < halo:
                    raise LatticeError(f"rank grid {_fmt(dims)} makes blocks {thinnest} sites thick along "
                                       f"{_AXES[a]}, thinner than the halo width {halo}; use fewer ranks "
                                       f"along {_AXES[a]}")

    @staticmethod
    def parse_ranks_shape(text: str | None) -> tuple[int, int, int] | str | None:
        """``"PzxPyxPx"`` or ``"PyxPx"`` (a 2D grid, Pz = 1) as a 3-tuple; ``"auto"`` and None pass through.

        Raises LatticeError for anything else.
        """
        if text is None:
            return None
        if not isinstance(text, str):
            raise LatticeError(f"ranks shape must be a string like '2x1x2', '2x2' or 'auto', got {text!r}")
        t = text.strip().lower()
        if t == "auto":
            return "auto"
        parts = t.split("x")
        if len(parts) not in (2, 3) or not all(p.strip().isdigit() for p in parts):
            raise LatticeError(f"ranks shape must be PzxPyxPx, PyxPx or 'auto', got {text!r}")
        vals = tuple(int(p) for p in parts)
        if any(v < 1 for v in vals):
            raise LatticeError(f"ranks shape entries must be positive, got {text!r}")
        return (1,) + vals if len(vals) == 2 else vals

    @staticmethod
    def auto_dims(shape3: tuple[int, int, int], size: int, halo: int = 0,
                  whole_rows: bool = False) -> tuple[int, int, int]:
        """The rank grid for ``size`` ranks that exchanges the fewest halo sites per step.

        Every factorisation Pz*Py*Px = size that the checks accept is scored by the sites on the faces between
        blocks; ties go to more ranks on the earlier axis (the order of MPI_Dims_create).  MPI_Dims_create itself
        is not used because it balances the grid without looking at the lattice shape (it would cut a 512x64
        lattice 2x2 rather than along the long axis, and it splits z on a 2D lattice).  With ``whole_rows``, a
        grid that does not split x (Px = 1) wins whenever one fits: the distributed mgcg O2 solve needs whole
        rows (:mod:`tumorca.parallel.o2_mgcg`).

        Raises LatticeError if no grid fits.
        """
        shape3 = normalize_shape(shape3)
        if isinstance(size, bool) or not isinstance(size, numbers.Integral) or size < 1:
            raise LatticeError(f"number of ranks must be a positive integer, got {size!r}")
        best = None
        for pz in _divisors(size):
            for py in _divisors(size // pz):
                dims = (pz, py, size // (pz * py))
                try:
                    Decomposition.check(shape3, dims, halo=halo, size=size)
                except LatticeError:
                    continue
                faces = sum((dims[a] - 1) * shape3[0] * shape3[1] * shape3[2] // shape3[a] for a in range(3))
                key = (whole_rows and dims[2] > 1, faces, tuple(-d for d in dims))
                if best is None or key < best[0]:
                    best = (key, dims)
        if best is None:
            raise LatticeError(f"no rank grid splits the lattice {_fmt(shape3)} into {size} blocks at least "
                               f"{halo} sites thick; use fewer ranks")
        return best[1]

    @classmethod
    def choose_dims(cls, shape3: tuple[int, int, int], size: int, ranks_shape: Any = None,
                    halo: int = 0, whole_rows: bool = False) -> tuple[int, int, int]:
        """The rank grid for ``ranks_shape`` (None or "auto": :meth:`auto_dims`; a string or a 3-tuple),
        checked against ``shape3``, ``size`` and ``halo``."""
        if isinstance(ranks_shape, str):
            ranks_shape = cls.parse_ranks_shape(ranks_shape)
        if ranks_shape is None or ranks_shape == "auto":
            return cls.auto_dims(shape3, size, halo, whole_rows)
        dims = _check_dims(ranks_shape)
        cls.check(shape3, dims, halo=halo, size=size)
        return dims

    @staticmethod
    def blocks(shape3: tuple[int, int, int], dims: tuple[int, int, int]) -> list[tuple[slice, slice, slice]]:
        """The owned block (global slices) of every rank, in C order of the grid coordinates (the rank order of
        a Cartesian communicator)."""
        shape3 = normalize_shape(shape3)
        dims = _check_dims(dims)
        ranges = [split_axis(shape3[a], dims[a]) for a in range(3)]
        return [tuple(slice(*ranges[a][c[a]]) for a in range(3))
                for c in itertools.product(range(dims[0]), range(dims[1]), range(dims[2]))]

    # -- this rank's block ----------------------------------------------------------------------------------
    @property
    def owned(self) -> tuple[slice, slice, slice]:
        """Global index ranges of this rank's block."""
        return tuple(slice(lo, hi) for lo, hi in self._ranges)

    @property
    def block_shape(self) -> tuple[int, int, int]:
        return tuple(hi - lo for lo, hi in self._ranges)

    @property
    def rank(self) -> int:
        """Position of this block in C order of the grid (its rank in a Cartesian communicator)."""
        cz, cy, cx = self.coords
        return (cz * self.dims[1] + cy) * self.dims[2] + cx

    def halo_sides(self, width: int | None = None) -> tuple[tuple[int, int], ...]:
        """Halo layers (low, high) along each axis: ``width`` (default: the halo) on a side with a neighbour,
        0 on a face of the lattice."""
        w = self.halo if width is None else int(width)
        return tuple((w if self.coords[a] > 0 else 0, w if self.coords[a] < self.dims[a] - 1 else 0)
                     for a in range(3))

    @property
    def local(self) -> tuple[slice, slice, slice]:
        """Global index ranges of the local array: the block plus its halo on the sides facing another block."""
        return tuple(slice(lo - h[0], hi + h[1]) for (lo, hi), h in zip(self._ranges, self.halo_sides()))

    @property
    def local_shape(self) -> tuple[int, int, int]:
        return tuple(s.stop - s.start for s in self.local)

    @property
    def origin(self) -> tuple[int, int, int]:
        """Global index of element [0, 0, 0] of the local array."""
        return tuple(s.start for s in self.local)

    @property
    def box(self) -> tuple[tuple[int, int], tuple[int, int], tuple[int, int]]:
        """The block inside the local array, ((z0, z1), (y0, y1), (x0, x1)) in local indices."""
        return tuple((h[0], h[0] + hi - lo) for (lo, hi), h in zip(self._ranges, self.halo_sides()))

    @property
    def box_slices(self) -> tuple[slice, slice, slice]:
        return tuple(slice(a, b) for a, b in self.box)

    def __repr__(self) -> str:
        return (f"Decomposition(shape3={self.shape3}, dims={self.dims}, coords={self.coords}, "
                f"halo={self.halo})")


def _divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]
