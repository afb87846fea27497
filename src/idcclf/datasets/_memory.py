"""Memory a load needs, memory available, and rows written to disk instead of RAM."""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ._base import PATCH_SIZE, Patch

MEMORY_ENV = "IDCCLF_MAX_MEMORY"
_UNITS = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}
_ROW_BYTES = PATCH_SIZE * PATCH_SIZE * 3


def _parse_bytes(text: str) -> int:
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]?)i?B?\s*", text, flags=re.IGNORECASE)
    if m is None:
        raise ValueError(
            f"{MEMORY_ENV}={text!r} is not a size: use bytes or a number with K, M, G or T"
        )
    return int(float(m[1]) * _UNITS[m[2].upper()])


def _read_int(path: str) -> int | None:
    try:
        with open(path, encoding="ascii") as fh:
            text = fh.read().strip()
        return int(text)
    except (OSError, ValueError):
        return None  # absent, or "max" (no limit)


def _mem_available() -> int | None:
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def available_memory() -> tuple[int, str] | None:
    """Bytes this process may still allocate, and where that figure comes from.

    The smallest of: the ``IDCCLF_MAX_MEMORY`` environment variable, the kernel's
    ``MemAvailable`` and the room left under a cgroup (container) memory limit.
    """
    found: list[tuple[int, str]] = []
    if os.environ.get(MEMORY_ENV):
        found.append((_parse_bytes(os.environ[MEMORY_ENV]), MEMORY_ENV))
    mem = _mem_available()
    if mem is not None:
        found.append((mem, "MemAvailable"))
    for limit_file, usage_file in (
        ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
        (
            "/sys/fs/cgroup/memory/memory.limit_in_bytes",
            "/sys/fs/cgroup/memory/memory.usage_in_bytes",
        ),
    ):
        limit, usage = _read_int(limit_file), _read_int(usage_file)
        if limit is not None and usage is not None and limit < 2**60:
            found.append((max(0, limit - usage), "the cgroup memory limit"))
            break
    return min(found) if found else None


def estimate_bytes(cands: Sequence[Patch], n_rows: int) -> int:
    """Memory a load of ``n_rows`` of ``cands`` holds at its peak, in bytes."""
    if not cands:
        return 0
    name_len = max(len(c.relpath) for c in cands)
    # Pixels, plus filenames and groups (numpy str: 4 bytes a character), plus
    # target, coords and original_shapes.
    return n_rows * (_ROW_BYTES + 8 * name_len + 48)


def _human_bytes(n: int) -> str:
    for unit, size in (("GiB", 1024**3), ("MiB", 1024**2)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n / 1024:.1f} KiB"


def check_memory(where: str, n_rows: int, need: int) -> None:
    """Raise MemoryError, before the work, if ``need`` bytes would not fit in memory."""
    available = available_memory()
    if available is None:
        return
    room, source = available
    if need > room:
        raise MemoryError(
            f"load_idc would need about {_human_bytes(need)} of memory for {n_rows} patches under "
            f"{where}, but only {_human_bytes(room)} are available ({source}). Pass "
            "memory_map=True to decode into a memory-mapped file under data_home instead, "
            "or load fewer patches (patients=..., max_per_class=...)."
        )


class RowFile:
    """A ``.npy`` file of (n, 50, 50, 3) uint8 rows, filled by ``rows[i:j] = block``.

    Rows are written with ``os.pwrite`` rather than through a memory map, so the
    decoded data goes to the OS page cache (which the kernel writes back and frees
    as it needs) and never counts towards the process's memory.
    """

    def __init__(self, path: Path, n_rows: int) -> None:
        self.path = path
        shape = (n_rows, PATCH_SIZE, PATCH_SIZE, 3)
        # open_memmap writes the header and sizes the file; no page of it is touched.
        header_only = np.lib.format.open_memmap(path, mode="w+", dtype=np.uint8, shape=shape)
        del header_only
        self._fh = open(path, "rb+")  # noqa: SIM115 (closed by close())
        if np.lib.format.read_magic(self._fh) == (1, 0):
            np.lib.format.read_array_header_1_0(self._fh)
        else:
            np.lib.format.read_array_header_2_0(self._fh)
        self._offset = self._fh.tell()

    def __setitem__(self, rows: slice, block: np.ndarray) -> None:
        data = memoryview(np.ascontiguousarray(block, dtype=np.uint8)).cast("B")
        at = self._offset + rows.start * _ROW_BYTES
        while data:
            n = os.pwrite(self._fh.fileno(), data, at)
            data, at = data[n:], at + n

    def close(self) -> None:
        self._fh.close()


def take_rows(data: np.ndarray, keep: np.ndarray, path: Path | None) -> np.ndarray:
    """``data[keep]``, in memory, or chunk by chunk into a ``.npy`` map at ``path``.

    ``data`` may be mapped from ``path``; no full copy is ever in RAM.
    """
    if path is None:
        return data[keep]
    part = path.with_name(path.stem + "-kept.npy")
    kept = np.lib.format.open_memmap(
        part, mode="w+", dtype=np.uint8, shape=(len(keep), *data.shape[1:])
    )
    step = 4096
    for i in range(0, len(keep), step):
        kept[i : i + step] = data[keep[i : i + step]]
    kept.flush()
    del kept, data
    os.replace(part, path)
    return np.load(path, mmap_mode="r+")


def _file_of(arr: np.ndarray) -> np.memmap | None:
    """The memory map ``arr`` is the whole of, if any."""
    base = arr
    while base is not None and not isinstance(base, np.memmap):
        base = base.base
    if base is None or arr.ctypes.data != base.ctypes.data or arr.nbytes != base.nbytes:
        return None
    return base


def concatenate(arrays: list[np.ndarray]) -> np.ndarray:
    """``np.concatenate(arrays)``, reading memory-mapped parts from their files.

    Copying out of a map would bring every page of the part into this process on
    top of the copy; reading the file puts only the copy in its memory.
    """
    if not all(a.flags["C_CONTIGUOUS"] for a in arrays):
        return np.concatenate(arrays)
    dtype = np.result_type(*arrays)
    out = np.empty((sum(len(a) for a in arrays), *arrays[0].shape[1:]), dtype=dtype)
    i = 0
    for a in arrays:
        mapped = _file_of(a)
        if mapped is None or a.dtype != dtype:
            out[i : i + len(a)] = a
        else:
            with open(mapped.filename, "rb") as fh:
                fh.seek(mapped.offset)
                fh.readinto(out[i : i + len(a)].reshape(-1).view(np.uint8))
        i += len(a)
    return out
