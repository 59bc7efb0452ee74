"""The XDMF sidecar (OUT.xdmf) that lets ParaView/VisIt open a run file as a time series.

Rules that VTK's XDMF reader (the one ParaView uses) needs, stated in docs/FORMAT.md: dimensions slowest first
(z y x); a CoRectMesh's ``Dimensions`` count nodes, so cell-centred data of n cells has n + 1; each frame is a
HyperSlab of the 4-D dataset whose outer ``Dimensions`` is the frame's shape without the time axis; uint8 is
``NumberType="UChar"``; a 2-D lattice is a 3-D mesh one cell thick.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence
from xml.sax.saxutils import escape, quoteattr

import numpy as np

from .layout import temporary_path

_NUMBER_TYPES = {
    np.dtype(np.uint8): ("UChar", 1), np.dtype(np.int8): ("Char", 1),
    np.dtype(np.uint16): ("UShort", 2), np.dtype(np.int16): ("Short", 2),
    np.dtype(np.uint32): ("UInt", 4), np.dtype(np.int32): ("Int", 4),
    np.dtype(np.int64): ("Int", 8), np.dtype(np.float32): ("Float", 4), np.dtype(np.float64): ("Float", 8),
}


_NT = "@NT@"  # placeholder for the dataset length in cached frame blocks


def xdmf_frame(i: int, time_min: float, h5_name: str, shape3: Sequence[int], dx_um: float,
               layers: Sequence[tuple[str, np.dtype]]) -> str:
    """The ``<Grid>`` block of frame ``i`` (the datasets' length left as a placeholder for
    :func:`xdmf_document`)."""
    nz, ny, nx = (int(d) for d in shape3)
    frame_dims = f"{nz} {ny} {nx}"
    out = [f'  <Grid Name="frame_{i}" GridType="Uniform">',
           f'    <Time Value="{float(time_min)!r}"/>',
           f'    <Topology TopologyType="3DCoRectMesh" Dimensions="{nz + 1} {ny + 1} {nx + 1}"/>',
           '    <Geometry GeometryType="ORIGIN_DXDYDZ">',
           '      <DataItem Name="Origin" Dimensions="3" NumberType="Float" Precision="8" Format="XML">0 0 0'
           '</DataItem>',
           f'      <DataItem Name="Spacing" Dimensions="3" NumberType="Float" Precision="8" '
           f'Format="XML">{dx_um!r} {dx_um!r} {dx_um!r}</DataItem>',
           '    </Geometry>']
    for name, dtype in layers:
        ntype, prec = _NUMBER_TYPES[np.dtype(dtype)]
        out += [f'    <Attribute Name={quoteattr(name)} AttributeType="Scalar" Center="Cell">',
                f'      <DataItem ItemType="HyperSlab" Dimensions="{frame_dims}" Type="HyperSlab">',
                f'        <DataItem Dimensions="3 4" NumberType="UInt" Format="XML">'
                f'{i} 0 0 0 1 1 1 1 1 {nz} {ny} {nx}</DataItem>',
                f'        <DataItem Dimensions="{_NT} {nz} {ny} {nx}" NumberType="{ntype}" '
                f'Precision="{prec}" Format="HDF">{escape(h5_name)}:/{escape(name)}</DataItem>',
                '      </DataItem>',
                '    </Attribute>']
    out.append('  </Grid>')
    return "\n".join(out)


def xdmf_document(frames: Sequence[str], total_frames: int) -> str:
    """The whole XDMF document from :func:`xdmf_frame` blocks; ``total_frames`` is the datasets' current
    length along time (the HDF DataItems give each dataset's full shape, the HyperSlabs pick frames from it)."""
    head = ['<?xml version="1.0" ?>', '<!DOCTYPE Xdmf SYSTEM "Xdmf.dtd" []>', '<Xdmf Version="3.0">', '<Domain>',
            '<Grid Name="run" GridType="Collection" CollectionType="Temporal">']
    body = "\n".join(frames).replace(_NT, str(int(total_frames)))
    return "\n".join(head + ([body] if frames else []) + ['</Grid>', '</Domain>', '</Xdmf>', ''])


def xdmf_text(h5_name: str, shape3: Sequence[int], dx_um: float, times: Sequence[float],
              layers: Sequence[tuple[str, np.dtype]], total_frames: int | None = None) -> str:
    """The XDMF document naming the first ``len(times)`` frames of a run file.

    Parameters
    ----------
    h5_name : str
        Path of the run file as the XDMF file should name it (relative to the XDMF file: its base name).
    shape3 : (nz, ny, nx)
        Lattice shape; 2-D runs have nz = 1.
    dx_um : float
        Site spacing; the mesh origin is 0 and its nodes are ``dx_um`` apart.
    times : sequence of float
        Time (minutes) of each frame on disk; the document names exactly these frames.
    layers : sequence of (name, dtype)
        The 4-D datasets ``/name`` shaped (T, nz, ny, nx), written as cell-centred scalars.
    total_frames : int, optional
        Current length of the datasets' time axis (default ``len(times)``).
    """
    frames = [xdmf_frame(i, t, h5_name, shape3, dx_um, layers) for i, t in enumerate(times)]
    return xdmf_document(frames, len(times) if total_frames is None else total_frames)


def write_xdmf(path: str | Path, text: str) -> None:
    """Replace ``path`` with ``text`` atomically (temporary file + rename), so a reader never sees half a file."""
    path = Path(path)
    tmp = temporary_path(path)
    try:
        # surrogateescape: a run file name that is not UTF-8 is written back as the bytes it is on disk
        tmp.write_text(text, encoding="utf-8", errors="surrogateescape")
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
