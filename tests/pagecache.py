# SPDX-License-Identifier: MIT
"""A file's pages in the page cache (Linux): how many are resident
(mincore on a mapping of the file) and dropping them (fsync, then
POSIX_FADV_DONTNEED).  Shared by tests/test_http_file_cold.py and
bench/cold_file.py.  Standard library only (ctypes for mmap and mincore)."""
import ctypes
import mmap
import os
import time

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mmap.restype = ctypes.c_void_p
_libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,
                       ctypes.c_int, ctypes.c_long]
_libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
_libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_char_p]


def resident_bytes(path):
    """Bytes of path in the page cache.  Raises OSError if mmap or mincore
    fails."""
    size = os.path.getsize(path)
    if size == 0:
        return 0
    fd = os.open(path, os.O_RDONLY)
    try:
        addr = _libc.mmap(None, size, mmap.PROT_READ, mmap.MAP_SHARED, fd, 0)
        if addr in (None, ctypes.c_void_p(-1).value):
            raise OSError(ctypes.get_errno(), "mmap")
        try:
            page = mmap.PAGESIZE
            vec = ctypes.create_string_buffer((size + page - 1) // page)
            if _libc.mincore(addr, size, vec) != 0:
                raise OSError(ctypes.get_errno(), "mincore")
            return sum(b & 1 for b in vec.raw) * page
        finally:
            _libc.munmap(addr, size)
    finally:
        os.close(fd)


def evict(path, tries=1, pause=0.02):
    """Drops path's pages, trying up to `tries` times `pause` s apart while
    some stay (pages a reader still has in flight cannot go).  Returns the
    bytes still resident (0: the file is cold)."""
    left = 0
    for i in range(tries):
        if i:
            time.sleep(pause)
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)
        left = resident_bytes(path)
        if not left:
            break
    return left
