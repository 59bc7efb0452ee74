"""Opening HDF5 files for reading without hanging on damaged ones, and spotting truncated files.

HDF5 reads files in SWMR mode (the only mode in which a file left open by a killed writer opens) with up to 100
attempts per piece of metadata whose checksum fails, sleeping longer after each: a reader racing a live writer
needs a few, but a damaged file made tools hang for minutes, deaf to Ctrl-C.  :func:`open_file` caps the
attempts (:data:`METADATA_READ_ATTEMPTS`), through the HDF5 library h5py itself loaded, since h5py has no call
for it; where that library cannot be found the cap is skipped (the file still opens).
"""
from __future__ import annotations

import ctypes
import functools
import struct
from pathlib import Path
from typing import Any

import h5py

#: Attempts to read a piece of metadata whose checksum fails (HDF5's SWMR default: 100, with growing sleeps).  A
#: few absorb a read torn by a live writer; a damaged file then fails within about a second.
METADATA_READ_ATTEMPTS = 8

_SIGNATURE = b"\x89HDF\r\n\x1a\n"


@functools.lru_cache(maxsize=1)
def _set_read_attempts() -> Any:
    """``H5Pset_metadata_read_attempts`` of the libhdf5 h5py uses (the same loaded copy), or None."""
    try:
        with open("/proc/self/maps", encoding="utf-8") as fh:
            libs = {line.split()[-1] for line in fh if "libhdf5" in line and ".so" in line
                    and "libhdf5_hl" not in line}
    except OSError:
        return None
    for lib in sorted(libs):
        try:
            fn = ctypes.CDLL(lib).H5Pset_metadata_read_attempts
        except (OSError, AttributeError):
            continue
        fn.argtypes = [ctypes.c_int64, ctypes.c_uint]
        fn.restype = ctypes.c_int
        return fn
    return None


def open_file(path: str | Path, swmr: bool = True) -> h5py.File:
    """``h5py.File(path, "r", swmr=swmr)`` with the metadata read attempts capped; OSError as h5py raises it."""
    setter = _set_read_attempts()
    if setter is None:
        return h5py.File(path, "r", swmr=swmr)
    fapl = h5py.h5p.create(h5py.h5p.FILE_ACCESS)
    fapl.set_fclose_degree(h5py.h5f.CLOSE_STRONG)  # as h5py.File's own: closing the file closes what it opened
    if setter(fapl.id, METADATA_READ_ATTEMPTS) < 0:
        return h5py.File(path, "r", swmr=swmr)
    flags = h5py.h5f.ACC_RDONLY | (h5py.h5f.ACC_SWMR_READ if swmr else 0)
    return h5py.File(h5py.h5f.open(str(path).encode("utf-8", "surrogateescape"), flags, fapl=fapl))


def end_of_file_address(path: str | Path) -> int | None:
    """The end-of-file address in an HDF5 superblock of version 2 or 3 (what run files have): the size the file
    had when the library last wrote its superblock.  None if the superblock is of another version or unreadable."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(48)
    except OSError:
        return None
    if len(head) < 48 or not head.startswith(_SIGNATURE) or head[8] not in (2, 3) or head[9] != 8:
        return None
    # version, sizes of offsets and lengths, flags; base address, extension address, end-of-file address
    base, _ext, eof = struct.unpack_from("<QQQ", head, 12)
    return base + eof


__all__ = ["open_file", "end_of_file_address", "METADATA_READ_ATTEMPTS"]
