"""Halo exchange between the blocks of a Cartesian rank grid (mpi4py).

Each rank's local array is its block plus ``halo`` layers on every side that faces another block (none on a
face of the lattice, so there the kernels' own bounds are the lattice bounds).  An exchange of width ``w``
copies, for the listed arrays, the ``w`` layers next to each interior face from the neighbour that owns them.
Axes are done one after the other (z, y, x) and each slab spans the halo already received along the earlier
axes, so edge and corner regions arrive too (in two or three hops) without diagonal messages.
"""
from __future__ import annotations

from time import perf_counter
from typing import Sequence

import numpy as np

from .decomposition import Decomposition


class HaloExchanger:
    """Exchanges halo layers of local arrays laid out as :attr:`Decomposition.local`.

    Parameters
    ----------
    cart : mpi4py.MPI.Cartcomm
        The Cartesian communicator of the rank grid (non-periodic).
    decomposition : Decomposition
        This rank's block; its ``halo`` is the largest width an exchange may ask for.

    Attributes
    ----------
    seconds : float
        Wall time spent in exchanges since creation (packing, messages and unpacking).
    calls, bytes_sent : int
        Exchanges done and bytes this rank sent.
    """

    def __init__(self, cart, decomposition: Decomposition) -> None:
        from mpi4py import MPI
        self._mpi = MPI
        self.cart = cart
        self.dec = decomposition
        self.neighbours = tuple(cart.Shift(a, 1) for a in range(3))  # (low, high), PROC_NULL on a lattice face
        self.seconds = 0.0
        self.calls = 0
        self.bytes_sent = 0
        #: Testing aid: fill the whole halo with random values before each exchange, so that anything a phase
        #: reads beyond the width it asked for is garbage (tests/test_parallel.py checks the widths this way).
        self.poison = False
        self._rng = np.random.default_rng(12345 + cart.Get_rank())

    def _slab(self, axis: int, lo: int, hi: int, width: int) -> tuple[slice, slice, slice]:
        """Local slices of layers [lo, hi) along ``axis``, spanning the block plus ``width`` halo layers (where
        there is a halo) along the other axes."""
        box = self.dec.box
        sides = self.dec.halo_sides(width)
        out = []
        for a in range(3):
            if a == axis:
                out.append(slice(lo, hi))
            else:
                out.append(slice(box[a][0] - sides[a][0], box[a][1] + sides[a][1]))
        return tuple(out)

    def exchange(self, arrays: Sequence[np.ndarray], width: int) -> None:
        """Refresh ``width`` halo layers of every array in ``arrays`` (each of the local shape).

        ``width`` must not exceed the decomposition's halo (blocks are at least that thick, so the layers come
        from the adjacent block alone).  All ranks of the grid must call this with the same arrays and width.
        """
        width = int(width)
        if width <= 0 or not arrays:
            return
        if width > self.dec.halo:
            raise ValueError(f"halo exchange of width {width} exceeds the halo {self.dec.halo}")
        if self.poison:
            self._poison(arrays)
        t0 = perf_counter()
        MPI = self._mpi
        box = self.dec.box
        sides = self.dec.halo_sides(width)
        for axis in range(3):
            low, high = self.neighbours[axis]
            if low == MPI.PROC_NULL and high == MPI.PROC_NULL:
                continue
            b0, b1 = box[axis]
            # upward: my top owned layers go to the block above, the block below fills my low halo
            self._shift(arrays, self._slab(axis, b1 - width, b1, width), high,
                        self._slab(axis, b0 - width, b0, width), low, sides[axis][1] > 0, sides[axis][0] > 0)
            # downward: my bottom owned layers go to the block below, the block above fills my high halo
            self._shift(arrays, self._slab(axis, b0, b0 + width, width), low,
                        self._slab(axis, b1, b1 + width, width), high, sides[axis][0] > 0, sides[axis][1] > 0)
        self.calls += 1
        self.seconds += perf_counter() - t0

    def _shift(self, arrays, send_sl, dest, recv_sl, source, do_send: bool, do_recv: bool) -> None:
        MPI = self._mpi
        if do_send:
            # One message per direction: the slabs of all arrays packed back to back as bytes.
            sendbuf = np.concatenate([np.ascontiguousarray(a[send_sl]).reshape(-1).view(np.uint8)
                                      for a in arrays])
        else:
            sendbuf = np.empty(0, dtype=np.uint8)
        if do_recv:
            sizes = [a[recv_sl].size * a.itemsize for a in arrays]
            recvbuf = np.empty(sum(sizes), dtype=np.uint8)
        else:
            recvbuf = np.empty(0, dtype=np.uint8)
        self.cart.Sendrecv([sendbuf, MPI.BYTE], dest if do_send else MPI.PROC_NULL, 7,
                           [recvbuf, MPI.BYTE], source if do_recv else MPI.PROC_NULL, 7)
        self.bytes_sent += sendbuf.size
        if do_recv:
            off = 0
            for a, n in zip(arrays, sizes):
                target = a[recv_sl]
                target[...] = recvbuf[off:off + n].view(a.dtype).reshape(target.shape)
                off += n

    def _poison(self, arrays: Sequence[np.ndarray]) -> None:
        inner = tuple(slice(a, b) for a, b in self.dec.box)
        for arr in arrays:
            keep = arr[inner].copy()
            if arr.dtype == np.uint8:
                arr[...] = self._rng.integers(0, 6, size=arr.shape, dtype=np.uint8)
            elif arr.dtype.kind == "u":
                arr[...] = self._rng.integers(0, 200, size=arr.shape).astype(arr.dtype)
            else:
                arr[...] = (self._rng.random(arr.shape) * 50).astype(arr.dtype)
            arr[inner] = keep
