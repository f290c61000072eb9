"""Cold or warm: is a model's weight data in the page cache, and are the engine's compile caches filled?

A setup trial that reads weights from the page cache and one that reads them from disk are different
experiments, so each setup trial records both states. Page residency comes from ``mincore(2)`` on a
read-only mapping of each weight file, which neither reads the file nor changes what is cached.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import mmap
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from joulebench.errors import UsageError

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".gguf", ".ckpt", ".engine")
WARM_FRACTION = 0.9  # at least this much resident: warm
COLD_FRACTION = 0.1  # at most this much resident: cold
_CHUNK = 1 << 30  # map at most 1 GiB at a time, so probing a 100 GB checkpoint needs little address space


@dataclass(frozen=True)
class PageCacheState:
    state: str  # warm | cold | partial | unknown
    resident_fraction: float | None
    bytes_total: int
    files: int
    reason: str = ""


def weight_files(model_path: str | Path) -> list[Path]:
    """The files whose reading is model loading: weight files of a folder, or the file itself."""
    path = Path(model_path)
    if path.is_file():
        return [path]
    if not path.is_dir():
        return []
    return sorted(p for p in path.rglob("*") if p.is_file() and p.suffix in WEIGHT_SUFFIXES)


def _libc() -> ctypes.CDLL:
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    libc.mmap.restype = ctypes.c_void_p
    libc.mmap.argtypes = [
        ctypes.c_void_p,
        ctypes.c_size_t,
        ctypes.c_int,
        ctypes.c_int,
        ctypes.c_int,
        ctypes.c_long,
    ]
    libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
    libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.POINTER(ctypes.c_ubyte)]
    return libc


def resident_pages(path: Path) -> tuple[int, int]:
    """(resident pages, total pages) of one file, from mincore on a read-only shared mapping."""
    libc = _libc()
    page = mmap.PAGESIZE
    size = path.stat().st_size
    total = (size + page - 1) // page
    resident = 0
    map_failed = ctypes.c_void_p(-1).value
    fd = os.open(path, os.O_RDONLY)
    try:
        offset = 0
        while offset < size:
            length = min(_CHUNK, size - offset)
            addr = libc.mmap(None, length, mmap.PROT_READ, mmap.MAP_SHARED, fd, offset)
            if addr in (None, map_failed):
                raise OSError(ctypes.get_errno(), f"mmap {path}: {os.strerror(ctypes.get_errno())}")
            try:
                n = (length + page - 1) // page
                vec = (ctypes.c_ubyte * n)()
                if libc.mincore(addr, length, vec) != 0:
                    raise OSError(ctypes.get_errno(), f"mincore {path}: {os.strerror(ctypes.get_errno())}")
                resident += sum(b & 1 for b in bytes(vec))
            finally:
                libc.munmap(addr, length)
            offset += length
    finally:
        os.close(fd)
    return resident, total


def page_cache_state(model_path: str | Path | None) -> PageCacheState:
    """Fraction of the model's weight bytes in the page cache; ``unknown`` when it cannot be probed."""
    files = weight_files(model_path) if model_path else []
    if not files:
        return PageCacheState("unknown", None, 0, 0, "no local weight files")
    resident = total = size = 0
    try:
        for f in files:
            r, t = resident_pages(f)
            resident, total, size = resident + r, total + t, size + f.stat().st_size
    except OSError as exc:
        return PageCacheState("unknown", None, size, len(files), str(exc))
    frac = resident / total if total else 1.0
    state = "warm" if frac >= WARM_FRACTION else "cold" if frac <= COLD_FRACTION else "partial"
    return PageCacheState(state, frac, size, len(files))


def evict_page_cache(model_path: str | Path | None) -> None:
    """Evict the model's weight files from the page cache: ``posix_fadvise(DONTNEED)`` per file, after
    writing back its dirty pages. No root needed, and no other file's pages are touched; a page that
    another process has mapped stays (the probe after it says so)."""
    for f in weight_files(model_path) if model_path else []:
        fd = os.open(f, os.O_RDONLY)
        try:
            os.fsync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def prime_page_cache(model_path: str | Path | None) -> None:
    """Read the model's weight files once, so that a setup finds them in the page cache."""
    for f in weight_files(model_path) if model_path else []:
        with f.open("rb") as fh:
            while fh.read(_READ_CHUNK):
                pass


_READ_CHUNK = 16 << 20


def drop_page_cache() -> None:
    """Write back dirty pages and drop the clean page cache (Linux, root only)."""
    if os.geteuid() != 0:
        raise UsageError("--drop-caches needs root (it writes /proc/sys/vm/drop_caches); run without it")
    os.sync()
    try:
        Path("/proc/sys/vm/drop_caches").write_text("1\n")
    except OSError as exc:
        raise UsageError(f"--drop-caches: cannot write /proc/sys/vm/drop_caches ({exc.strerror})") from None


def compile_cache_dirs(engine: str, engine_env: Mapping[str, str] | None = None) -> list[Path]:
    """Folders where ``engine`` keeps compiled kernels and graphs between processes, in the environment
    its processes get (this one's, with the run's ``engine_env`` over it): the engine says."""
    from joulebench.engines.registry import get_engine_class

    return get_engine_class(engine).compile_cache_dirs({**os.environ, **(engine_env or {})})


def compile_cache_state(engine: str, engine_env: Mapping[str, str] | None = None) -> str:
    """``warm`` when a compile cache folder of the engine exists and is non-empty, ``cold`` when not,
    ``none`` for engines that compile nothing ahead (transformers, a remote server)."""
    dirs = compile_cache_dirs(engine, engine_env)
    if not dirs:
        return "none"
    for d in dirs:
        if d.is_dir() and any(d.iterdir()):
            return "warm"
    return "cold"
