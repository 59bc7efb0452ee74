"""Implicit (backward-Euler) diffusion along an axis split across ranks: a pipelined Thomas solve.

The serial kernel (``tumorca._fields.implicit_axis``) solves each line along the axis with precomputed factors
(cp, m) of the whole line:

    forward   y_i = (d_i + alpha*y_{i-1}) * m[i]      (y_0 = d_0*m[0]),  d_i = c_i*gain (+ edge_add at the ends)
    backward  x_i = y_i - cp[i]*x_{i+1}                (x_{n-1} = y_{n-1}),  c_i = float32(x_i)

Every value depends only on the previous (forward) or next (backward) one along the line, so a rank holding
sites [g0, g1) of the line can do its part given y_{g0-1} from the rank below and x_{g1} from the rank above.
Here each rank receives that carry plane, runs its segment with the serial arithmetic in the serial order (same
float64 operations, rounded to float32 at the same points: bit-identical), and passes its own last y (forward)
or first x (backward) on.  The planes of lines are cut into chunks so that ranks work on different chunks at
the same time (a software pipeline) rather than waiting for the whole plane.
"""
from __future__ import annotations

import numpy as np


def implicit_axis_split(c: np.ndarray, axis: int, cp: np.ndarray, m: np.ndarray, alpha: float, gain: float,
                        edge_add: float, block: tuple[slice, slice, slice], g0: int, cart, prev: int, nxt: int,
                        chunks: int = 1) -> None:
    """Backward-Euler diffusion along ``axis`` of the owned block of ``c``, in place, cooperatively with the
    ranks ``prev`` (holding the line below g0) and ``nxt`` (above); either may be MPI.PROC_NULL.

    Parameters
    ----------
    c : float32 local array (block plus halo); only the block (``block``, local slices) is read and written.
    axis : 0, 1 or 2.
    cp, m : float64 factors of the whole global line (length = global lattice length along ``axis``).
    alpha, gain, edge_add : as for ``tumorca._fields.implicit_axis``.
    g0 : global index along ``axis`` of the block's first layer.
    cart : the Cartesian communicator.
    chunks : number of pieces the plane of lines is cut into for pipelining.
    """
    from mpi4py import MPI
    n_glob = cp.shape[0]
    b = np.moveaxis(c[block], axis, 0)          # (segment, A, B) view of the block
    nseg, na, nb = b.shape
    if nseg == 0 or na * nb == 0:
        return
    chunks = max(1, min(int(chunks), na))
    bounds = np.linspace(0, na, chunks + 1).astype(int)
    # y values of the whole segment, kept in float64 for the back substitution (as the serial kernel's buffer)
    y = np.empty((nseg, na, nb), dtype=np.float64)
    has_prev = prev != MPI.PROC_NULL
    has_next = nxt != MPI.PROC_NULL
    # forward elimination, chunk by chunk
    for k in range(chunks):
        a0, a1 = bounds[k], bounds[k + 1]
        if a1 == a0:
            continue
        carry = None
        if has_prev:
            carry = np.empty((a1 - a0, nb), dtype=np.float64)
            cart.Recv([carry, MPI.DOUBLE], source=prev, tag=100 + k)
        for i in range(nseg):
            gi = g0 + i
            d = b[i, a0:a1].astype(np.float64) * gain
            if gi == 0:
                d = d + edge_add
            if gi == n_glob - 1:
                d = d + edge_add
            if gi == 0:
                y[i, a0:a1] = d * m[0]
            else:
                below = y[i - 1, a0:a1] if i > 0 else carry
                y[i, a0:a1] = (d + alpha * below) * m[gi]
        if has_next:
            cart.Send([np.ascontiguousarray(y[nseg - 1, a0:a1]), MPI.DOUBLE], dest=nxt, tag=100 + k)
    # back substitution, chunk by chunk, from the top rank down
    for k in range(chunks):
        a0, a1 = bounds[k], bounds[k + 1]
        if a1 == a0:
            continue
        if has_next:
            above = np.empty((a1 - a0, nb), dtype=np.float64)
            cart.Recv([above, MPI.DOUBLE], source=nxt, tag=200 + k)
            start = nseg - 1
        else:
            # the last site of the line: x = y
            b[nseg - 1, a0:a1] = y[nseg - 1, a0:a1].astype(np.float32)
            above = None
            start = nseg - 2
        for i in range(start, -1, -1):
            up = y[i + 1, a0:a1] if i + 1 < nseg else above
            x = y[i, a0:a1] - cp[g0 + i] * up
            y[i, a0:a1] = x
            b[i, a0:a1] = x.astype(np.float32)
        if has_prev:
            cart.Send([np.ascontiguousarray(y[0, a0:a1]), MPI.DOUBLE], dest=prev, tag=200 + k)
