"""Loaders for the IDC breast histopathology patch data set.

The public *Breast Histopathology Images* set (IDC_regular_ps50_idx5; Janowczyk &
Madabhushi 2016, Cruz-Roa et al. 2014) is a tree of RGB PNG patches::

    <root>/<patient>/<0|1>/<patient>_idx5_x<X>_y<Y>_class<C>.png

:func:`load_idc` reads such a tree (validating every file name against its folders),
decodes the PNGs in parallel and caches the decoded arrays on disk; :func:`load_sample`
reads the small real sample that ships inside the package. See ``docs/loaders.md``.
"""

from __future__ import annotations

import hashlib
import io
import itertools
import json
import math
import multiprocessing as mp
import numbers
import os
import re
import shutil
import struct
import sys
import tempfile
import time
import warnings
import zlib
from array import array
from collections import deque
from collections.abc import Iterable
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from sklearn.utils import Bunch

__all__ = ["load_idc", "load_patches", "load_sample", "parse_patch_filename", "sample_path"]

PATCH_SIZE = 50
TARGET_NAMES = ("no IDC", "IDC")
SIZE_POLICIES = ("pad", "resize", "drop")
ON_ERROR = ("raise", "skip")
CACHE_CHECKS = ("fast", "full")

# Bump whenever decoding or the cache layout changes, so old caches are never reused.
_CACHE_VERSION = 1
_CACHE_SUBDIR = "idc_cache"
_MANIFEST = "manifest.json"
_ARRAYS = ("data", "target", "groups", "coords", "filenames", "original_shapes")
# Leftover temp dirs of killed writers are removed once they are this old (seconds);
# younger ones may belong to a writer that is still running.
_STALE_TMP_AGE = 24 * 3600

# "auto": processes (fork) on Linux, threads elsewhere; "thread"/"process" force one.
# Measured on the real data with 2 cores (benchmarks/bench_loading.py --executor):
# Pillow parses PNG chunks in Python under the GIL, so 2 threads were no faster than
# 1 (about 4.2 s for 22,896 patches either way) while 2 processes took 2.4 s.
_EXECUTOR = "auto"

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_CHUNK_HEAD = struct.Struct(">I4s")
_NAME_RE = re.compile(
    r"(?P<patient>[^_/\\]+)_idx5_x(?P<x>\d+)_y(?P<y>\d+)_class(?P<label>[01])\.png",
    # ASCII: "\d" would take other scripts' digits (full-width "５") and IGNORECASE
    # would take "ſ" for "s" and "İ" for "i"; no real patch name has either.
    re.IGNORECASE | re.ASCII,
)
_NAME_PATTERN = "<patient>_idx5_x<X>_y<Y>_class<0|1>.png"

# Status codes of one decoded patch.
_OK, _PADDED, _RESIZED, _DROPPED, _BAD = 0, 1, 2, 3, 4

_SAMPLE_SOURCE = (
    "Embedded sample of the public 'Breast Histopathology Images' data set\n"
    "(IDC_regular_ps50_idx5; Janowczyk & Madabhushi, J Pathol Inform 2016;7:29;\n"
    "Cruz-Roa et al., SPIE Medical Imaging 2014), shipped inside idcclf: a seeded random\n"
    "subset of real 50x50 px RGB patches of 12 patients, plus every smaller-than-50x50\n"
    "patch of those patients, copied byte for byte (see idcclf/_data/sample/README.md\n"
    "and tools/make_sample.py)."
)


class _BadPatch(Exception):
    """A patch file that cannot be used; ``str(exc)`` is the reason."""


# --------------------------------------------------------------------------- names


def parse_patch_filename(name: str | os.PathLike[str]) -> tuple[str, int, int, int]:
    """Parse an IDC patch file name.

    Parameters
    ----------
    name : str or path-like
        A file name such as ``"8863_idx5_x51_y1251_class0.png"``. Leading folders are
        ignored, so a full path works too.

    Returns
    -------
    patient : str
        Patient id, e.g. ``"8863"``.
    x, y : int
        Pixel coordinates of the patch's top-left corner in its slide.
    label : int
        0 (no IDC) or 1 (IDC).

    Raises
    ------
    ValueError
        If the name does not match ``<patient>_idx5_x<X>_y<Y>_class<0|1>.png``; the
        message names the file.

    Examples
    --------
    >>> parse_patch_filename("8863_idx5_x51_y1251_class0.png")
    ('8863', 51, 1251, 0)
    """
    base = os.path.basename(os.fspath(name))
    m = _NAME_RE.fullmatch(base)
    if m is None:
        raise ValueError(f"patch file name {base!r} does not match {_NAME_PATTERN!r}")
    return m["patient"], int(m["x"]), int(m["y"]), int(m["label"])


# ------------------------------------------------------------------------- decoding


def _to_rgb8(im: Image.Image) -> np.ndarray:
    """Return a decoded PNG as an (h, w, 3) uint8 array."""
    mode = im.mode
    if mode == "RGB" and "transparency" not in im.info:
        return np.asarray(im)
    if mode.startswith("I"):
        # 16-bit grayscale. Pillow's convert("L") clips values above 255 to white, so
        # reduce the depth ourselves by keeping the most significant byte (v >> 8, as
        # libpng's strip_16 and as Pillow already does for 16-bit RGB/RGBA): 0 -> 0,
        # 65535 -> 255, the full range preserved.
        a = np.asarray(im).astype(np.int64, copy=False)
        a8 = (np.clip(a, 0, 65535) >> 8).astype(np.uint8)
        return np.repeat(a8[..., None], 3, axis=2)
    if "A" in mode or "a" in mode or "transparency" in im.info:
        # Composite on white rather than dropping alpha: transparent pixels then look
        # like slide background (and like the white padding of edge patches) instead
        # of whatever colour happens to be stored under them.
        rgba = np.asarray(im.convert("RGBA")).astype(np.uint16)
        alpha = rgba[..., 3:4]
        rgb = (rgba[..., :3] * alpha + 255 * (255 - alpha) + 127) // 255
        return rgb.astype(np.uint8)
    # L, 1, P (palette) and CMYK.
    return np.asarray(im.convert("RGB"))


def _check_chunks(raw: bytes) -> None:
    """Check that every PNG chunk is complete and has the right CRC, up to IEND.

    Pillow does not check the CRC of image data, so a flipped bit could decode into
    silently wrong pixels; and it can be told globally (ImageFile.LOAD_TRUNCATED_IMAGES)
    to fill a truncated image with grey. Walking the few chunks of a patch costs a few
    microseconds (7.5 us measured) next to ~150 us of decoding.
    """
    view = memoryview(raw)
    pos, n = len(_PNG_SIGNATURE), len(raw)
    while True:
        if pos + 8 > n:
            raise _BadPatch("truncated PNG (the file ends before the IEND chunk)")
        length, ctype = _CHUNK_HEAD.unpack_from(raw, pos)
        end = pos + 8 + length + 4
        name = ctype.decode("latin-1")
        if end > n:
            raise _BadPatch(f"truncated PNG (the {name!r} chunk runs past the end of the file)")
        if zlib.crc32(view[pos + 4 : end - 4]) != int.from_bytes(view[end - 4 : end], "big"):
            raise _BadPatch(f"corrupt PNG (CRC mismatch in the {name!r} chunk)")
        if ctype == b"IEND":
            return
        pos = end


def _decode_patch(path: str) -> np.ndarray:
    """Decode one patch file into an (h, w, 3) uint8 array or raise ``_BadPatch``."""
    try:
        with open(path, "rb") as fh:
            raw = fh.read()
    except OSError as exc:
        raise _BadPatch(_os_reason(exc, "cannot read file")) from None
    if not raw:
        raise _BadPatch("empty file (0 bytes)")
    if not raw.startswith(_PNG_SIGNATURE):
        raise _BadPatch("not a PNG file (content does not start with the PNG signature)")
    _check_chunks(raw)
    try:
        with Image.open(io.BytesIO(raw), formats=["PNG"]) as im:
            w, h = im.size
            if w > PATCH_SIZE or h > PATCH_SIZE:
                # Checked before decoding so a huge image is never decompressed.
                raise _BadPatch(
                    f"patch is {w}x{h} px (width x height), larger than {PATCH_SIZE}x{PATCH_SIZE}"
                )
            im.load()
            return _to_rgb8(im)
    except _BadPatch:
        raise
    except Exception as exc:  # Pillow raises many types (OSError, SyntaxError, ...)
        raise _BadPatch(f"corrupt PNG ({type(exc).__name__}: {exc})") from None


def _decode_chunk(
    paths: list[str], size_policy: str
) -> tuple[np.ndarray, np.ndarray, list[tuple[int, str]]]:
    """Decode a list of files and apply the size policy.

    Returns the (k, 50, 50, 3) block (rows of dropped/bad files are left unfilled),
    their stored (height, width) and one ``(status, reason)`` per file.
    """
    s = PATCH_SIZE
    block = np.empty((len(paths), s, s, 3), dtype=np.uint8)
    shapes = np.zeros((len(paths), 2), dtype=np.int64)
    status: list[tuple[int, str]] = []
    for i, path in enumerate(paths):
        try:
            rgb = _decode_patch(path)
        except _BadPatch as exc:
            status.append((_BAD, str(exc)))
            continue
        h, w = rgb.shape[:2]
        shapes[i] = h, w
        if h == s and w == s:
            block[i] = rgb
            status.append((_OK, ""))
        elif size_policy == "pad":
            block[i] = 255
            block[i, :h, :w] = rgb
            status.append((_PADDED, ""))
        elif size_policy == "resize":
            resized = Image.fromarray(rgb).resize((s, s), Image.Resampling.BILINEAR)
            block[i] = np.asarray(resized)
            status.append((_RESIZED, ""))
        else:
            status.append((_DROPPED, ""))
    return block, shapes, status


def _cpu_count() -> int:
    # Counts the cores this process may use (containers, taskset), which is what a
    # pool can actually keep busy.
    if hasattr(os, "process_cpu_count"):  # Python >= 3.13
        n = os.process_cpu_count()
    elif hasattr(os, "sched_getaffinity"):
        n = len(os.sched_getaffinity(0))
    else:
        n = os.cpu_count()
    return max(1, n or 1)


def _executor_kind() -> str:
    if _EXECUTOR != "auto":
        return _EXECUTOR
    # fork is only cheap and safe enough on Linux (macOS' system libraries are not
    # fork-safe; Windows has no fork), and spawn/forkserver would re-import the
    # caller's __main__, breaking scripts without an ``if __name__ == "__main__"``
    # guard. Elsewhere threads still overlap the C parts of decoding.
    if sys.platform.startswith("linux") and "fork" in mp.get_all_start_methods():
        return "process"
    return "thread"


def _make_executor(n_workers: int) -> Executor:
    if _executor_kind() == "process":
        return ProcessPoolExecutor(n_workers, mp_context=mp.get_context("fork"))
    return ThreadPoolExecutor(n_workers, thread_name_prefix="idcclf-decode")


def _decode_many(
    paths: list[str], size_policy: str, n_jobs: int, out: Any = None
) -> tuple[np.ndarray, np.ndarray, list[tuple[int, str]]]:
    """Decode ``paths`` in chunks, in parallel; results are in the order of ``paths``.

    ``out``, if given, is the (n, 50, 50, 3) destination, e.g. a memory-mapped file.
    """
    n = len(paths)
    s = PATCH_SIZE
    if out is None:
        out = np.empty((n, s, s, 3), dtype=np.uint8)
    shapes = np.zeros((n, 2), dtype=np.int64)
    status: list[tuple[int, str]] = [(_OK, "")] * n

    def store(i: int, result: tuple[np.ndarray, np.ndarray, list[tuple[int, str]]]) -> None:
        block, shp, st = result
        out[i : i + len(st)] = block
        shapes[i : i + len(st)] = shp
        status[i : i + len(st)] = st

    # Several chunks per worker balance the load, while each chunk still amortises
    # the per-task cost (pickling, ~ms) over hundreds of ~0.15 ms decodes.
    chunk = max(64, min(1024, math.ceil(n / (4 * n_jobs)))) if n else 1
    starts = list(range(0, n, chunk))
    if n_jobs == 1 or len(starts) <= 1:
        for i in starts:
            store(i, _decode_chunk(paths[i : i + chunk], size_policy))
        return out, shapes, status
    n_workers = min(n_jobs, len(starts))
    with _make_executor(n_workers) as ex:
        # A bounded window of chunks in flight: finished blocks are copied into the
        # single preallocated output and released at once, so the peak memory stays
        # close to 1x the decoded data instead of holding every block until the end.
        pending: deque[tuple[int, Future]] = deque()
        next_start = iter(starts)
        with warnings.catch_warnings():
            # Python >= 3.12 warns that fork() in a multi-threaded process (numpy's
            # BLAS threads count) may deadlock the child. The workers only run Pillow
            # and numpy copies and take no lock another thread could hold (the same
            # reasoning as PyTorch's fork-based DataLoader workers).
            warnings.filterwarnings(
                "ignore", message=r".*multi-threaded, use of fork\(\)", category=DeprecationWarning
            )
            for i in itertools.islice(next_start, 2 * n_workers):
                pending.append((i, ex.submit(_decode_chunk, paths[i : i + chunk], size_policy)))
        while pending:
            i, fut = pending.popleft()
            store(i, fut.result())
            del fut
            for j in itertools.islice(next_start, 1):
                pending.append((j, ex.submit(_decode_chunk, paths[j : j + chunk], size_policy)))
    return out, shapes, status


# -------------------------------------------------------------------------- listing


class _Folder:
    """The ``*.png`` files directly in one folder, sorted by name.

    ``sizes`` and ``mtimes`` are None when the files were listed without a stat
    (``cache_check="fast"``); ``dir_mtime`` is the folder's own mtime.
    """

    __slots__ = ("names", "sizes", "mtimes", "dir_mtime")

    def __init__(
        self,
        names: list[str],
        sizes: list[int] | None = None,
        mtimes: list[int] | None = None,
        dir_mtime: int = 0,
    ) -> None:
        order = sorted(range(len(names)), key=names.__getitem__)
        self.names = [names[i] for i in order]
        self.sizes = None if sizes is None else [sizes[i] for i in order]
        self.mtimes = None if mtimes is None else [mtimes[i] for i in order]
        self.dir_mtime = dir_mtime

    def __len__(self) -> int:
        return len(self.names)


def _is_ignored(name: str) -> bool:
    # Hidden entries (.DS_Store, AppleDouble "._x.png", .ipynb_checkpoints) and the
    # __MACOSX folder of zips made on macOS are metadata, never patches.
    return name.startswith(".") or name == "__MACOSX"


def _os_reason(exc: OSError, failed: str = "cannot read") -> str:
    """``"<failed> (<the OS's reason>)"``, the bad-file reason for an OSError."""
    return f"{failed} ({exc.strerror or exc})"


def _scan_pngs(dirpath: str, stat_files: bool, unreadable: list[tuple[str, str]]) -> _Folder:
    """The non-hidden ``*.png`` files directly in a folder, with size and mtime if asked.

    The per-file stat is most of the cost of a cached load, so the loop stays lean:
    ``os.scandir`` gives the file type without a syscall, scanning through a
    directory fd lets each stat resolve just the file name instead of the full path,
    and no per-file objects are built beyond the list items. Entries that cannot be
    inspected (a symlink loop, a dangling or forbidden target) are appended to
    ``unreadable`` as ``(name, reason)``; they never stop the scan or vanish silently.
    """
    names: list[str] = []
    sizes: list[int] = []
    mtimes: list[int] = []
    use_fd = os.scandir in os.supports_fd and hasattr(os, "O_DIRECTORY")
    fd = os.open(dirpath, os.O_RDONLY | os.O_DIRECTORY) if use_fd else None
    try:
        dir_mtime = os.stat(fd if fd is not None else dirpath).st_mtime_ns
        if not stat_files:
            try:
                # The common case in comprehensions (a third faster than the loop
                # below); anything but plain files sends us to the loop, which
                # tells sub-folders from broken links and loops.
                with os.scandir(fd if fd is not None else dirpath) as it:
                    pngs = [e for e in it if e.name[-4:].lower() == ".png" and e.name[0] != "."]
                names = [e.name for e in pngs if e.is_file()]
                if len(names) == len(pngs):
                    return _Folder(names, dir_mtime=dir_mtime)
            except OSError:
                pass
            names = []
        with os.scandir(fd if fd is not None else dirpath) as it:
            for e in it:
                name = e.name
                if (name.endswith(".png") or name[-4:].lower() == ".png") and name[0] != ".":
                    try:
                        if not e.is_file():
                            if e.is_symlink() and not e.is_dir():
                                unreadable.append((name, "broken symbolic link"))
                            continue
                        if stat_files:
                            st = e.stat()
                            sizes.append(st.st_size)
                            mtimes.append(st.st_mtime_ns)
                    except OSError as exc:
                        unreadable.append((name, _os_reason(exc)))
                        continue
                    names.append(name)
    finally:
        if fd is not None:
            os.close(fd)
    if stat_files:
        return _Folder(names, sizes, mtimes, dir_mtime)
    return _Folder(names, dir_mtime=dir_mtime)


def _scan_top(dirpath: str, unreadable: list[tuple[str, str]]) -> tuple[list[str], _Folder]:
    """Sub-folders (sorted) and ``*.png`` files of a root or patient folder."""
    dirs: list[str] = []
    names: list[str] = []
    sizes: list[int] = []
    mtimes: list[int] = []
    with os.scandir(dirpath) as it:
        for e in it:
            if _is_ignored(e.name):
                continue
            try:
                if e.is_dir():
                    dirs.append(e.name)
                elif e.name[-4:].lower() == ".png" and e.is_file():
                    st = e.stat()
                    names.append(e.name)
                    sizes.append(st.st_size)
                    mtimes.append(st.st_mtime_ns)
                elif e.name[-4:].lower() == ".png" and e.is_symlink():
                    unreadable.append((e.name, "broken symbolic link"))
            except OSError as exc:
                unreadable.append((e.name, _os_reason(exc)))
    dirs.sort()
    return dirs, _Folder(names, sizes, mtimes)


class _Tree:
    """Every ``.png`` under the root (of the selected patients), listed for the cache key.

    With ``stat_files`` each file's size and mtime are read too (one stat per file);
    without, only names and the folders' own mtimes are.
    """

    def __init__(self, root: Path, patients: list[str] | None, stat_files: bool = True) -> None:
        self.root = root
        self.stat_files = stat_files
        # (path relative to root, reason) of entries that could not be listed or
        # inspected; they are reported as bad files by _collect_candidates.
        self.unreadable: list[tuple[str, str]] = []
        top_unreadable: list[tuple[str, str]] = []
        try:
            patient_dirs, root_pngs = _scan_top(str(root), top_unreadable)
        except OSError as exc:
            raise PermissionError(
                f"cannot list the IDC data folder {root}: {exc.strerror or exc}"
            ) from None
        self.unreadable += top_unreadable
        self.available = patient_dirs
        if patients is None:
            self.patients = patient_dirs
        else:
            unknown = sorted(set(patients) - set(patient_dirs))
            if unknown:
                raise ValueError(
                    f"patients not found under {root}: {', '.join(unknown)}. "
                    f"Available patients ({len(patient_dirs)}): {', '.join(patient_dirs)}"
                )
            self.patients = sorted(set(patients))
        # .png files outside any class folder, keyed by their folder relative to root
        # ("" for the root itself), and the contents of every class folder.
        self.misplaced: dict[str, _Folder] = {}
        if root_pngs:
            self.misplaced[""] = root_pngs
        self.folders: dict[tuple[str, str], _Folder] = {}
        for p in self.patients:
            pdir = os.path.join(root, p)
            found: list[tuple[str, str]] = []
            try:
                class_dirs, pngs = _scan_top(pdir, found)
            except OSError as exc:
                self.unreadable.append((p, _os_reason(exc, "cannot list folder")))
                continue
            self.unreadable += [(f"{p}/{n}", r) for n, r in found]
            if pngs:
                self.misplaced[p] = pngs
            for c in class_dirs:
                found = []
                try:
                    files = _scan_pngs(os.path.join(pdir, c), stat_files, found)
                except OSError as exc:
                    self.unreadable.append((f"{p}/{c}", _os_reason(exc, "cannot list folder")))
                    continue
                self.unreadable += [(f"{p}/{c}/{n}", r) for n, r in found]
                if files or found:
                    self.folders[p, c] = files
        self.unreadable.sort()

    def is_empty(self) -> bool:
        return not self.folders and not self.misplaced and not self.unreadable

    def hash_into(self, h: Any) -> None:
        """Feed what the cache depends on, in sorted order, to ``h``.

        That is every .png's relative path, plus its size and mtime when files were
        stat'ed, else the mtime of its folder, and every entry that could not be read.
        """
        groups = [(f"{d}/" if d else "", f) for d, f in sorted(self.misplaced.items())]
        groups += [(f"{p}/{c}/", f) for (p, c), f in sorted(self.folders.items())]
        for prefix, f in groups:
            h.update(f"\n[{prefix}]\n".encode("utf-8", "surrogateescape"))
            h.update("\n".join(f.names).encode("utf-8", "surrogateescape"))
            if f.sizes is not None and f.mtimes is not None:
                h.update(array("q", f.sizes).tobytes())
                h.update(array("q", f.mtimes).tobytes())
            else:
                h.update(array("q", [f.dir_mtime]).tobytes())
        for rel, reason in self.unreadable:
            h.update(f"\n[unreadable]{rel}\t{reason}".encode("utf-8", "surrogateescape"))


# ---------------------------------------------------------------------------- cache


def _default_data_home(data_home: str | os.PathLike[str] | None) -> Path:
    if data_home is None:
        data_home = os.environ.get("IDCCLF_DATA") or os.path.join("~", "idcclf_data")
    return Path(data_home).expanduser()


def _cache_key(root: Path, tree: _Tree, options: dict[str, Any]) -> str:
    h = hashlib.sha256()
    header = {"version": _CACHE_VERSION, "root": str(root), "options": options}
    h.update(json.dumps(header, sort_keys=True).encode())
    tree.hash_into(h)
    return h.hexdigest()[:40]


def _read_cache(cache_dir: Path, key: str) -> dict[str, Any] | None:
    """Return the cached arrays and metadata, or None if absent, partial or corrupt."""
    try:
        with open(cache_dir / _MANIFEST, encoding="utf-8") as fh:
            manifest = json.load(fh)
        if manifest.get("version") != _CACHE_VERSION or manifest.get("key") != key:
            return None
        arrays = {}
        for name in _ARRAYS:
            meta = manifest["arrays"][name]
            fpath = cache_dir / f"{name}.npy"
            if os.stat(fpath).st_size != meta["file_size"]:
                return None
            # Copy-on-write maps: a cached load then costs no copy and no memory
            # until the arrays are used; they are writable and writes never reach
            # the cache files.
            arr = np.load(fpath, mmap_mode="c", allow_pickle=False)
            if list(arr.shape) != meta["shape"] or arr.dtype.str != meta["dtype"]:
                return None
            arrays[name] = np.asarray(arr)
        return {"arrays": arrays, "meta": manifest["meta"]}
    except Exception:  # missing/partial/corrupt files of any kind mean "rebuild"
        return None


def _remove_stale_tmp(parent: Path) -> None:
    now = time.time()
    try:
        entries = list(os.scandir(parent))
    except OSError:
        return
    for e in entries:
        if e.name.startswith((".tmp-", ".old-")):
            try:
                if now - e.stat().st_mtime > _STALE_TMP_AGE:
                    shutil.rmtree(e.path, ignore_errors=True)
            except OSError:
                pass


def _new_cache_tmp(cache_dir: Path, key: str) -> Path:
    """A fresh temp folder beside ``cache_dir``, to be renamed into place when complete."""
    parent = cache_dir.parent
    parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_tmp(parent)
    return Path(tempfile.mkdtemp(prefix=f".tmp-{key[:12]}-", dir=parent))


def _write_cache(
    cache_dir: Path,
    key: str,
    arrays: dict[str, np.ndarray],
    meta: dict[str, Any],
    tmp: Path | None = None,
) -> None:
    """Write the cache atomically: everything goes to a temp dir that is renamed last.

    ``tmp`` is a folder from ``_new_cache_tmp`` that may already hold ``data.npy``
    (``arrays["data"]`` is then a memory map of that file); it is consumed.
    """
    parent = cache_dir.parent
    if tmp is None:
        tmp = _new_cache_tmp(cache_dir, key)
    try:
        manifest: dict[str, Any] = {
            "format": "idcclf load_idc cache",
            "version": _CACHE_VERSION,
            "key": key,
            "arrays": {},
            "meta": meta,
        }
        for name in _ARRAYS:
            arr = arrays[name]
            fpath = tmp / f"{name}.npy"
            if isinstance(arr, np.memmap) and Path(str(arr.filename)).resolve() == fpath.resolve():
                arr.flush()
                with open(fpath, "rb+") as fh:
                    os.fsync(fh.fileno())
            else:
                arr = np.ascontiguousarray(arr)
                with open(fpath, "wb") as fh:
                    np.save(fh, arr, allow_pickle=False)
                    fh.flush()
                    os.fsync(fh.fileno())
            manifest["arrays"][name] = {
                "shape": list(arr.shape),
                "dtype": arr.dtype.str,
                "file_size": os.stat(fpath).st_size,
            }
        # The manifest is written last and checked on read, so even a directory that
        # somehow got renamed into place half-written is never taken as valid.
        with open(tmp / _MANIFEST, "w", encoding="utf-8") as fh:
            json.dump(manifest, fh, indent=1)
            fh.flush()
            os.fsync(fh.fileno())
        if cache_dir.exists():
            # An invalid cache is in the way: move it aside first so the swap below
            # stays a single rename.
            old = Path(tempfile.mkdtemp(prefix=f".old-{key[:12]}-", dir=parent))
            os.replace(cache_dir, old / "x")
            shutil.rmtree(old, ignore_errors=True)
        try:
            os.rename(tmp, cache_dir)
        except OSError:
            # Another process finished the same cache first; theirs is equivalent.
            if not (cache_dir / _MANIFEST).exists():
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


# --------------------------------------------------------------------------- memory

_MEMORY_ENV = "IDCCLF_MAX_MEMORY"
_UNITS = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}


def _parse_bytes(text: str) -> int:
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]?)i?B?\s*", text, flags=re.IGNORECASE)
    if m is None:
        raise ValueError(
            f"{_MEMORY_ENV}={text!r} is not a size: use bytes or a number with K, M, G or T"
        )
    return int(float(m[1]) * _UNITS[m[2].upper()])


def _read_int(path: str) -> int | None:
    try:
        with open(path, encoding="ascii") as fh:
            text = fh.read().strip()
        return int(text)
    except (OSError, ValueError):
        return None  # absent, or "max" (no limit)


def _available_memory() -> tuple[int, str] | None:
    """Bytes this process may still allocate, and where that figure comes from.

    The smallest of: the ``IDCCLF_MAX_MEMORY`` environment variable, the kernel's
    ``MemAvailable`` and the room left under a cgroup (container) memory limit.
    """
    found: list[tuple[int, str]] = []
    if os.environ.get(_MEMORY_ENV):
        found.append((_parse_bytes(os.environ[_MEMORY_ENV]), _MEMORY_ENV))
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    found.append((int(line.split()[1]) * 1024, "MemAvailable"))
                    break
    except (OSError, ValueError, IndexError):
        pass
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


def _estimate_bytes(cands: list[tuple[str, int, str, int, int]], n_rows: int) -> int:
    """Memory a load of ``n_rows`` of ``cands`` holds at its peak, in bytes."""
    if not cands:
        return 0
    name_len = max(len(c[2]) for c in cands) + max(len(c[0]) for c in cands) + 3
    per_row = PATCH_SIZE * PATCH_SIZE * 3 + 4 * name_len + 4 * name_len + 48
    return n_rows * per_row


def _human_bytes(n: int) -> str:
    for unit, size in (("GiB", 1024**3), ("MiB", 1024**2)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n / 1024:.1f} KiB"


def _check_memory(root: Path, cands: list[tuple[str, int, str, int, int]], n_rows: int) -> None:
    """Raise MemoryError, before decoding, if the arrays would not fit in memory."""
    available = _available_memory()
    if available is None:
        return
    need = _estimate_bytes(cands, n_rows)
    room, source = available
    if need > room:
        raise MemoryError(
            f"load_idc would need about {_human_bytes(need)} of memory for {n_rows} patches under "
            f"{root}, but only {_human_bytes(room)} are available ({source}). Pass "
            "memory_map=True to decode into a memory-mapped file under data_home instead, "
            "or load fewer patches (patients=..., max_per_class=...)."
        )


# ---------------------------------------------------------------------- validation


def _check_params(
    size_policy: Any,
    on_error: Any,
    max_per_class: Any,
    n_jobs: Any,
    random_state: Any,
    cache_check: Any = "fast",
) -> int:
    """Validate parameters; return the number of decoding workers."""
    if size_policy not in SIZE_POLICIES:
        raise ValueError(f"size_policy must be one of {SIZE_POLICIES}, got {size_policy!r}")
    if on_error not in ON_ERROR:
        raise ValueError(f"on_error must be one of {ON_ERROR}, got {on_error!r}")
    if cache_check not in CACHE_CHECKS:
        raise ValueError(f"cache_check must be one of {CACHE_CHECKS}, got {cache_check!r}")
    if max_per_class is not None and (
        isinstance(max_per_class, bool)
        or not isinstance(max_per_class, numbers.Integral)
        or max_per_class < 1
    ):
        raise ValueError(f"max_per_class must be None or an int >= 1, got {max_per_class!r}")
    if random_state is not None and not isinstance(
        random_state, numbers.Integral | np.random.Generator | np.random.RandomState
    ):
        raise ValueError(
            "random_state must be None, an int, a numpy Generator or RandomState, "
            f"got {random_state!r}"
        )
    if n_jobs is None:
        return _cpu_count()
    if isinstance(n_jobs, bool) or not isinstance(n_jobs, numbers.Integral) or n_jobs == 0:
        raise ValueError(f"n_jobs must be None or a non-zero int, got {n_jobs!r}")
    if n_jobs < 0:  # joblib convention: -1 = all cores, -2 = all but one, ...
        return max(1, _cpu_count() + 1 + int(n_jobs))
    return int(n_jobs)


def _normalize_patients(patients: Any) -> list[str] | None:
    if patients is None:
        return None
    if isinstance(patients, str | numbers.Integral):
        patients = [patients]
    out = []
    for p in patients:
        if isinstance(p, bool) or not isinstance(p, str | numbers.Integral):
            raise ValueError(f"patients must hold str or int ids, got {p!r}")
        out.append(str(p))
    if not out:
        raise ValueError("patients is empty; pass None to load all patients")
    return out


# -------------------------------------------------------------------------- loading


def _collect_candidates(
    tree: _Tree,
) -> tuple[list[tuple[str, int, str, int, int]], list[tuple[str, str]]]:
    """Check every file name against its folders.

    Returns the good patches as ``(patient, label, name, x, y)`` in the deterministic
    order, and the bad files as ``(relative path, reason)``.
    """
    good: list[tuple[str, int, str, int, int]] = []
    bad: list[tuple[str, str]] = list(tree.unreadable)
    for d, files in tree.misplaced.items():
        prefix = f"{d}/" if d else ""
        bad.extend((f"{prefix}{n}", "not inside a <patient>/<0|1>/ folder") for n in files.names)
    for (p, c), files in sorted(tree.folders.items()):
        if c not in ("0", "1"):
            reason = f"class folder {c!r} is not '0' or '1'"
            bad.extend((f"{p}/{c}/{n}", reason) for n in files.names)
            continue
        label = int(c)
        # Without a stat (cache_check="fast") empty files are caught when decoded.
        sizes = files.sizes if files.sizes is not None else [1] * len(files.names)
        for name, size in zip(files.names, sizes, strict=True):
            m = _NAME_RE.fullmatch(name)
            if m is None:
                reason = f"file name does not match {_NAME_PATTERN!r}"
            elif int(m["label"]) != label:
                reason = f"file name says class{m['label']} but the file is in class folder {c!r}"
            elif m["patient"] != p:
                reason = (
                    f"file name says patient {m['patient']!r} but the file is in "
                    f"patient folder {p!r}"
                )
            elif size == 0:
                reason = "empty file (0 bytes)"
            else:
                good.append((p, label, name, int(m["x"]), int(m["y"])))
                continue
            bad.append((f"{p}/{c}/{name}", reason))
    good.sort(key=lambda t: (t[0], t[1], t[2]))
    bad.sort()
    return good, bad


def _raise_bad(root: Path, bad: list[tuple[str, str]]) -> None:
    rel, reason = bad[0]
    more = f" ({len(bad) - 1} more bad file(s) found)" if len(bad) > 1 else ""
    raise ValueError(
        f"bad IDC patch file {root / rel}: {reason}{more}. "
        "Fix or remove it, or pass on_error='skip' to leave bad files out."
    )


def _skip_warning(root: Path, bad: list[tuple[str, str]]) -> str:
    lines = [f"  {root / rel}: {reason}" for rel, reason in bad]
    return f"load_idc skipped {len(bad)} bad file(s) under {root}:\n" + "\n".join(lines)


def _drop_warning(root: Path, n_dropped: int) -> str:
    return (
        f"load_idc dropped {n_dropped} patch(es) under {root} that are smaller than "
        f"{PATCH_SIZE}x{PATCH_SIZE} (size_policy='drop')"
    )


def _decode_selection(
    root: Path,
    cands: list[tuple[str, int, str, int, int]],
    *,
    size_policy: str,
    max_per_class: int | None,
    random_state: Any,
    n_jobs: int,
    out: Any = None,
) -> tuple[list[int], np.ndarray, np.ndarray, list[tuple[int, str]]]:
    """Decode the candidates (or a random capped subset of them).

    Returns the indices into ``cands`` that were decoded, in ascending order, with
    their rows, stored shapes and statuses. ``out`` (used without ``max_per_class``)
    is the destination for all of ``cands``.
    """
    paths = [os.path.join(root, p, str(lab), name) for p, lab, name, _, _ in cands]
    if max_per_class is None:
        data, shapes, status = _decode_many(paths, size_policy, n_jobs, out)
        return list(range(len(cands))), data, shapes, status

    if isinstance(random_state, np.random.Generator | np.random.RandomState):
        rng = random_state
    else:
        rng = np.random.default_rng(random_state)
    labels = np.array([c[1] for c in cands], dtype=np.int64)
    # A fixed random priority order per class; files are decoded in that order in
    # rounds until the class has max_per_class usable patches, so dropped or bad
    # files are replaced by the next ones instead of silently shrinking the class.
    queues = {
        lab: np.flatnonzero(labels == lab)[rng.permutation(int((labels == lab).sum()))]
        for lab in (0, 1)
    }
    taken = {0: 0, 1: 0}
    accepted = {0: 0, 1: 0}
    idx_parts: list[np.ndarray] = []
    data_parts: list[np.ndarray] = []
    shape_parts: list[np.ndarray] = []
    status_all: list[tuple[int, str]] = []
    while True:
        batch = []
        for lab in (0, 1):
            need = max_per_class - accepted[lab]
            nxt = queues[lab][taken[lab] : taken[lab] + need]
            taken[lab] += len(nxt)
            batch.append(nxt)
        idx = np.concatenate(batch)
        if idx.size == 0:
            break
        data, shapes, status = _decode_many([paths[i] for i in idx], size_policy, n_jobs)
        for i, (code, _) in zip(idx, status, strict=True):
            if code in (_OK, _PADDED, _RESIZED):
                accepted[int(labels[i])] += 1
        idx_parts.append(idx)
        data_parts.append(data)
        shape_parts.append(shapes)
        status_all.extend(status)
    if not idx_parts:
        empty = np.empty((0, PATCH_SIZE, PATCH_SIZE, 3), np.uint8)
        return [], empty, np.zeros((0, 2), np.int64), []
    idx = np.concatenate(idx_parts)
    order = np.argsort(idx, kind="stable")
    data = np.concatenate(data_parts)[order]
    shapes = np.concatenate(shape_parts)[order]
    status_sorted = [status_all[j] for j in order]
    return idx[order].tolist(), data, shapes, status_sorted


class _RowFile:
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
        self._row_bytes = PATCH_SIZE * PATCH_SIZE * 3

    def __setitem__(self, rows: slice, block: np.ndarray) -> None:
        data = memoryview(np.ascontiguousarray(block, dtype=np.uint8)).cast("B")
        at = self._offset + rows.start * self._row_bytes
        while data:
            n = os.pwrite(self._fh.fileno(), data, at)
            data, at = data[n:], at + n

    def close(self) -> None:
        self._fh.close()


def _take_rows(data: np.ndarray, keep: np.ndarray, path: Path | None) -> np.ndarray:
    """``data[keep]``, in memory, or chunk by chunk into a new ``.npy`` memory map at
    ``path`` (which ``data`` may be mapped from) so that no full copy is ever in RAM."""
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


def _describe(root: Path, meta: dict[str, Any]) -> str:
    counts = meta["per_patient"]
    n0 = sum(c[0] for c in counts.values())
    n1 = sum(c[1] for c in counts.values())
    patients = sorted(counts)
    rows = "\n".join(f"    {p:>10}  {c[0]:>7}  {c[1]:>7}" for p, c in sorted(counts.items()))
    mpc = meta["max_per_class"]
    lines = [
        "IDC breast histopathology patches (idcclf.datasets.load_idc)",
        "",
        f"root: {root}",
        f"patients ({len(patients)}): {', '.join(patients)}",
        f"patches: {n0 + n1} (class 0 'no IDC': {n0}; class 1 'IDC': {n1})",
        "data: uint8 RGB array of shape (n, 50, 50, 3)",
        "",
        f"    {'patient':>10}  {'class 0':>7}  {'class 1':>7}",
        rows,
        "",
        f"max_per_class: {mpc}"
        + (f" (random subset, random_state={meta['random_state']})" if mpc else ""),
        f"size_policy: {meta['size_policy']!r}; patches smaller than 50x50: "
        f"{meta['n_padded']} padded with white (bottom/right), {meta['n_resized']} "
        f"resized to 50x50, {meta['n_dropped']} dropped",
        f"on_error: {meta['on_error']!r}; bad files skipped: {len(meta['skipped'])}",
        "",
        "Labels come from the class folders, checked against the file names; coords are",
        "the (x, y) of each patch's top-left corner in its slide, from the file name.",
    ]
    return "\n".join(lines)


def _make_bunch(arrays: dict[str, np.ndarray], descr: str) -> Bunch:
    return Bunch(
        data=arrays["data"],
        target=arrays["target"],
        groups=arrays["groups"],
        coords=arrays["coords"],
        filenames=arrays["filenames"],
        original_shapes=arrays["original_shapes"],
        target_names=np.array(TARGET_NAMES),
        DESCR=descr,
    )


def _emit_warnings(root: Path, meta: dict[str, Any]) -> None:
    if meta["skipped"]:
        warnings.warn(_skip_warning(root, meta["skipped"]), UserWarning, stacklevel=3)
    if meta["n_dropped"]:
        warnings.warn(_drop_warning(root, meta["n_dropped"]), UserWarning, stacklevel=3)


def load_idc(
    path: str | os.PathLike[str],
    *,
    patients: Iterable[str | int] | str | int | None = None,
    max_per_class: int | None = None,
    size_policy: str = "pad",
    on_error: str = "raise",
    cache: bool = True,
    cache_check: str = "fast",
    memory_map: bool = False,
    data_home: str | os.PathLike[str] | None = None,
    n_jobs: int | None = None,
    random_state: int | np.random.Generator | np.random.RandomState | None = 0,
    return_X_y: bool = False,
) -> Bunch | tuple[np.ndarray, np.ndarray]:
    """Load IDC histopathology patches from a folder tree.

    The tree is laid out as in the public *Breast Histopathology Images* set::

        <path>/<patient>/<0|1>/<patient>_idx5_x<X>_y<Y>_class<C>.png

    where the class folder (0 = no IDC, 1 = IDC) is the label and must agree with
    ``class<C>`` in the file name, the patient folder must agree with the file name's
    patient, and ``X``, ``Y`` are the patch's top-left pixel coordinates in its slide.

    Parameters
    ----------
    path : str or path-like
        Root folder holding one folder per patient.
    patients : iterable of str or int, str, int or None, default=None
        Patient ids to load (``None``: all patient folders). Unknown ids raise
        ``ValueError`` naming them and listing the available ones.
    max_per_class : int or None, default=None
        Keep at most this many patches per class over the whole selection, picked at
        random with ``random_state``. The kept patches stay in the deterministic order.
        Files that turn out bad or dropped are replaced by further random picks, so a
        class has fewer only if it has fewer usable patches.
    size_policy : {"pad", "resize", "drop"}, default="pad"
        What to do with patches smaller than 50x50 (cut at slide edges):

        - ``"pad"`` places the patch at the top-left and fills the bottom/right with
          white (255), the colour of slide background. It is the default because it
          keeps the magnification (1 px is still 1 px of tissue, as in every other
          patch) and the meaning of ``coords`` (the top-left corner), and the missing
          area really is outside the slide.
        - ``"resize"`` stretches the patch to 50x50 with bilinear interpolation (this
          changes the scale; a 50x1 strip becomes 50 copies of one row).
        - ``"drop"`` leaves them out, with a ``UserWarning`` giving the count.

        Patches larger than 50 px in either dimension are bad files (see ``on_error``).
    on_error : {"raise", "skip"}, default="raise"
        What to do with bad files: a corrupt, truncated or empty PNG, non-PNG content
        named ``.png``, a ``.png`` whose name does not fit the pattern, a name whose
        class or patient disagrees with its folders, a ``.png`` in a class folder other
        than ``0``/``1`` or outside any class folder, a patch larger than 50x50.
        ``"raise"`` raises ``ValueError`` naming the first bad file and its reason;
        ``"skip"`` leaves them out and emits one ``UserWarning`` listing every skipped
        file with its reason. A file is never loaded with a label its name and
        folder disagree on. Content errors are found only in files that are decoded,
        so with ``max_per_class`` a bad file that is not picked goes unnoticed.
    cache : bool, default=True
        Cache the decoded arrays under ``data_home`` and reuse them while the tree
        and the options are unchanged (see Notes).
    cache_check : {"fast", "full"}, default="fast"
        How a cached result is checked against the tree before it is reused.

        - ``"fast"`` compares the relative path of every ``.png`` and the
          modification time of each class folder. That catches every file added,
          removed or renamed, and a file replaced by renaming a new one over it (as
          careful tools write files), and costs no per-file system call: about 20 ms
          for the 22,896 files of 22 patients. It does not notice a file rewritten
          in place under the same name (e.g. ``cp new.png old.png``); labels come
          from names and folders, so such an edit can leave stale pixels, never a
          wrong label. After editing files in place use ``"full"``.
        - ``"full"`` also compares every file's size and modification time (one
          ``stat`` per file: about 4x the time of ``"fast"``).

        The two checks keep separate caches.
    memory_map : bool, default=False
        Decode straight into the cache file and return ``data`` as a memory map of
        it, so that a tree larger than memory can be loaded: only the pages in use
        are in RAM. Needs ``cache=True``. Without it, ``load_idc`` estimates the
        memory a load needs before decoding and raises ``MemoryError`` (estimate vs
        available) instead of running into the out-of-memory killer; see Notes.
    data_home : str, path-like or None, default=None
        Cache folder. ``None``: the ``IDCCLF_DATA`` environment variable if set, else
        ``~/idcclf_data``.
    n_jobs : int or None, default=None
        Decoding workers. ``None``: all cores this process may use; negative values
        count back from all cores (``-1`` = all, ``-2`` = all but one); 1 decodes in
        the calling thread. Workers are forked processes on Linux (Pillow parses PNG
        chunks under the GIL, so threads barely help) and threads elsewhere.
    random_state : int, numpy Generator or RandomState, or None, default=0
        Seed for ``max_per_class``; unused otherwise. An int gives the same subset
        every time (and can be cached).
    return_X_y : bool, default=False
        Return ``(data, target)`` instead of a Bunch.

    Returns
    -------
    data : sklearn.utils.Bunch
        With fields

        - ``data``: uint8 array (n, 50, 50, 3), RGB, C-contiguous;
        - ``target``: int64 array (n,), 0 = no IDC, 1 = IDC;
        - ``groups``: str array (n,), patient id of each patch (for grouped CV);
        - ``coords``: int64 array (n, 2), ``(x, y)`` of the top-left corner;
        - ``filenames``: str array (n,), paths relative to ``path`` with ``/``;
        - ``original_shapes``: int64 array (n, 2), ``(height, width)`` as stored;
        - ``target_names``: ``np.array(["no IDC", "IDC"])``;
        - ``DESCR``: what was loaded (root, patients, counts per class and patient,
          size policy and how many patches were padded/resized/dropped/skipped).

        Rows are sorted by patient, then class, then file name, whatever order the
        file system lists them in.
    (data, target) : tuple of ndarray
        If ``return_X_y`` is True.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    NotADirectoryError
        If ``path`` is not a folder.
    PermissionError
        If ``path`` cannot be listed.
    MemoryError
        If the decoded patches would not fit in the memory available and
        ``memory_map`` is False.
    ValueError
        For invalid parameters (naming the parameter), unknown patients, bad files
        under ``on_error="raise"``, or when no patches are found or left.

    Notes
    -----
    Only ``<path>/<patient>/<class>/*.png`` files are read. Files not ending in
    ``.png`` (README, .DS_Store, thumbnails, ...), hidden entries (names starting
    with ``.``, e.g. macOS ``._*.png`` metadata), ``__MACOSX`` folders and sub-folders
    of class folders are ignored silently. No folder is read deeper than that, so
    symbolic-link cycles between folders cannot make a load loop. A ``.png`` that is
    a broken or looping symbolic link, and a patient or class folder that cannot be
    listed (permissions, a link loop), are bad files in the sense of ``on_error``.

    Memory: a load holds about 7,600 bytes per patch (the 7,500 bytes of pixels plus
    labels, names and coordinates). Before decoding, that estimate is compared with
    the memory available: the smallest of the kernel's ``MemAvailable``, the room
    left under a cgroup (container) limit, and the ``IDCCLF_MAX_MEMORY``
    environment variable (bytes, or a number with ``K``, ``M``, ``G``: a cap you can
    set). With ``max_per_class`` at most ``2 * max_per_class`` patches are decoded,
    in memory, even with ``memory_map``. A cached load maps the cache files and needs
    no such room.

    Grayscale, palette, bilevel and CMYK PNGs are converted to RGB; images with alpha
    (or a transparency chunk) are composited onto white. 16-bit PNGs are reduced to
    8 bits by keeping the most significant byte of each sample (``v >> 8``: 0 -> 0,
    65535 -> 255), which scales the full range instead of clipping it.

    The cache lives in ``<data_home>/idc_cache/<hash>/`` as ``.npy`` files plus a
    ``manifest.json``. The hash covers the resolved root, the relative path of every
    ``.png`` of the selected patients with its folder's modification time (or, with
    ``cache_check="full"``, the file's own size and modification time), and every
    option that changes the result (patients, max_per_class, size_policy, on_error
    and, with max_per_class, random_state), so adding, removing or replacing a file
    gives a new cache. The cache is written to a temporary folder and renamed into place,
    with the manifest written last and checked on read: an interrupted write is never
    read as valid; a damaged cache is rebuilt. On a cache hit (and with
    ``memory_map``) the arrays are copy-on-write memory maps of the cache files
    (writable; writes stay in memory and never reach the cache). If
    the cache cannot be written a ``UserWarning`` is emitted and the data returned.
    With ``max_per_class`` and a non-int ``random_state`` nothing is cached.
    Warnings about skipped or dropped files are emitted again on a cache hit.

    Examples
    --------
    >>> from idcclf.datasets import load_idc, sample_path
    >>> bunch = load_idc(sample_path(), patients=["8863"], cache=False)
    >>> bunch.data.shape[1:], bunch.data.dtype
    ((50, 50, 3), dtype('uint8'))
    """
    n_workers = _check_params(
        size_policy, on_error, max_per_class, n_jobs, random_state, cache_check
    )
    patient_list = _normalize_patients(patients)
    cacheable = cache and (max_per_class is None or isinstance(random_state, numbers.Integral))
    if memory_map and not cacheable:
        raise ValueError(
            "memory_map=True keeps the decoded patches in the cache under data_home, so it "
            "needs cache=True (and, with max_per_class, an int random_state)"
        )

    root = Path(path)
    if not root.exists():
        raise FileNotFoundError(f"IDC data folder not found: {root}")
    if not root.is_dir():
        raise NotADirectoryError(f"IDC data path is not a folder: {root}")
    root = root.resolve()

    tree = _Tree(root, patient_list, stat_files=cacheable and cache_check == "full")
    if tree.available and set(tree.available) <= {"0", "1"} and not tree.folders:
        # Its .png files would otherwise all be reported as misplaced, one by one.
        raise ValueError(
            f"{root} looks like a single patient's folder (its sub-folders are the class "
            f"folders 0/1): pass its parent folder, e.g. "
            f"load_idc({str(root.parent)!r}, patients=[{root.name!r}])"
        )
    if tree.is_empty():
        raise ValueError(
            f"no IDC patches found under {root} (expected {root}/<patient>/<0|1>/<name>.png)"
        )

    options = {
        "patients": None if patient_list is None else tree.patients,
        "max_per_class": None if max_per_class is None else int(max_per_class),
        "size_policy": size_policy,
        "on_error": on_error,
        # Only matters (and so only invalidates) when a random subset is drawn.
        "random_state": int(random_state) if max_per_class is not None and cacheable else None,
        "cache_check": cache_check,
    }
    cache_dir = key = None
    if cacheable:
        key = _cache_key(root, tree, options)
        cache_dir = _default_data_home(data_home) / _CACHE_SUBDIR / key
        hit = _read_cache(cache_dir, key)
        if hit is not None:
            try:
                descr = _describe(root, hit["meta"])
                _emit_warnings(root, hit["meta"])
            except (KeyError, TypeError, ValueError, AttributeError):
                hit = None  # a damaged manifest: rebuild like any other damage
        if hit is not None:
            bunch = _make_bunch(hit["arrays"], descr)
            return (bunch.data, bunch.target) if return_X_y else bunch

    cands, bad = _collect_candidates(tree)
    if bad and on_error == "raise":
        _raise_bad(root, bad)

    tmp = None
    try:
        if memory_map and cache_dir is not None and key is not None:
            tmp = _new_cache_tmp(cache_dir, key)
        return _load_uncached(
            root, tree, cands, bad, options,
            max_per_class=max_per_class, random_state=random_state,
            n_jobs=n_workers, cache_dir=cache_dir, key=key, tmp=tmp,
            return_X_y=return_X_y,
        )  # fmt: skip
    finally:
        if tmp is not None and tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _load_uncached(
    root: Path,
    tree: _Tree,
    cands: list[tuple[str, int, str, int, int]],
    bad: list[tuple[str, str]],
    options: dict[str, Any],
    *,
    max_per_class: int | None,
    random_state: Any,
    n_jobs: int,
    cache_dir: Path | None,
    key: str | None,
    tmp: Path | None,
    return_X_y: bool,
) -> Bunch | tuple[np.ndarray, np.ndarray]:
    """Decode, check, cache and return; ``tmp`` is set for the memory-mapped mode."""
    size_policy, on_error = options["size_policy"], options["on_error"]
    n_rows = len(cands) if max_per_class is None else min(len(cands), 2 * max_per_class)
    out = None
    if tmp is not None and max_per_class is None:
        out = _RowFile(tmp / "data.npy", n_rows)
    else:
        # A capped subset is decoded in memory even when memory-mapped: at most
        # 2 * max_per_class patches (twice: decoded in rounds, then sorted).
        _check_memory(root, cands, n_rows if max_per_class is None else 2 * n_rows)

    idx, data, shapes, status = _decode_selection(
        root,
        cands,
        size_policy=size_policy,
        max_per_class=max_per_class,
        random_state=random_state,
        n_jobs=n_jobs,
        out=out,
    )
    if out is not None:
        out.close()
        data = np.load(out.path, mmap_mode="r+")
    codes = np.array([c for c, _ in status], dtype=np.int8)
    decode_bad = [
        (f"{cands[i][0]}/{cands[i][1]}/{cands[i][2]}", reason)
        for i, (code, reason) in zip(idx, status, strict=True)
        if code == _BAD
    ]
    if decode_bad and on_error == "raise":
        _raise_bad(root, decode_bad)
    bad = sorted(bad + decode_bad)

    keep = np.flatnonzero(np.isin(codes, (_OK, _PADDED, _RESIZED)))
    if keep.size != len(codes):
        data = _take_rows(data, keep, None if tmp is None else tmp / "data.npy")
        shapes = shapes[keep]
    elif tmp is not None and not isinstance(data, np.memmap):
        data = _take_rows(data, keep, tmp / "data.npy")
    kept = [cands[idx[k]] for k in keep]
    if not kept:
        _emit_warnings(root, {"skipped": bad, "n_dropped": 0})
        raise ValueError(
            f"no usable IDC patches under {root}: {len(bad)} bad file(s) skipped, "
            f"{int((codes == _DROPPED).sum())} dropped by size_policy='drop'"
        )

    arrays = {
        "data": data if isinstance(data, np.memmap) else np.ascontiguousarray(data),
        "target": np.array([c[1] for c in kept], dtype=np.int64),
        "groups": np.array([c[0] for c in kept], dtype=str),
        "coords": np.array([(c[3], c[4]) for c in kept], dtype=np.int64).reshape(-1, 2),
        "filenames": np.array([f"{c[0]}/{c[1]}/{c[2]}" for c in kept], dtype=str),
        "original_shapes": np.ascontiguousarray(shapes, dtype=np.int64),
    }
    per_patient: dict[str, list[int]] = {p: [0, 0] for p in tree.patients}
    for p, lab, *_ in kept:
        per_patient[p][lab] += 1
    meta = {
        "per_patient": {p: c for p, c in per_patient.items() if c[0] or c[1]},
        "max_per_class": options["max_per_class"],
        "random_state": options["random_state"],
        "size_policy": size_policy,
        "on_error": on_error,
        "n_padded": int((codes == _PADDED).sum()),
        "n_resized": int((codes == _RESIZED).sum()),
        "n_dropped": int((codes == _DROPPED).sum()),
        "skipped": [list(b) for b in bad],
    }
    if max_per_class is not None:
        # Recorded for DESCR even when it is not part of the cache key.
        rs = random_state
        meta["random_state"] = int(rs) if isinstance(rs, numbers.Integral) else repr(rs)

    if tmp is not None and cache_dir is not None and key is not None:
        # Memory-mapped: the cache is where the data lives, so failing to write it fails.
        _write_cache(cache_dir, key, arrays, meta, tmp)
        del arrays, data
        hit = _read_cache(cache_dir, key)
        if hit is None:
            raise OSError(f"load_idc could not read back the cache it wrote to {cache_dir}")
        arrays = hit["arrays"]
    elif cache_dir is not None and key is not None:
        try:
            _write_cache(cache_dir, key, arrays, meta)
        except OSError as exc:
            warnings.warn(
                f"load_idc could not write its cache to {cache_dir} ({exc}); "
                "the data is returned uncached",
                UserWarning,
                stacklevel=2,
            )

    _emit_warnings(root, meta)
    bunch = _make_bunch(arrays, _describe(root, meta))
    return (bunch.data, bunch.target) if return_X_y else bunch


def load_patches(
    paths: Iterable[str | os.PathLike[str]],
    *,
    size_policy: str = "pad",
    n_jobs: int | None = None,
) -> np.ndarray:
    """Decode individual patch files, e.g. to predict on them.

    Unlike :func:`load_idc` the files may have any name and location; no label is
    read. Decoding, colour conversion and the size policy are those of
    :func:`load_idc`, so patches look exactly as they did in training.

    Parameters
    ----------
    paths : iterable of str or path-like
        PNG files, in the order wanted.
    size_policy : {"pad", "resize"}, default="pad"
        For patches smaller than 50x50, as in :func:`load_idc` (``"drop"`` is not
        offered: the rows must stay aligned with ``paths``).
    n_jobs : int or None, default=None
        Decoding workers, as in :func:`load_idc`.

    Returns
    -------
    ndarray of shape (len(paths), 50, 50, 3), uint8

    Raises
    ------
    ValueError
        If ``paths`` is empty, or naming the first file that is missing, not a PNG,
        corrupt, truncated or larger than 50x50, with the reason.
    """
    if size_policy not in ("pad", "resize"):
        raise ValueError(f"size_policy must be 'pad' or 'resize', got {size_policy!r}")
    n_workers = _check_params(size_policy, "raise", None, n_jobs, None)
    files = [os.fspath(p) for p in paths]
    if not files:
        raise ValueError("load_patches: no files given")
    data, _, status = _decode_many(files, size_policy, n_workers)
    for f, (code, reason) in zip(files, status, strict=True):
        if code == _BAD:
            raise ValueError(f"bad patch file {f}: {reason}")
    return data


# --------------------------------------------------------------------------- sample


def sample_path() -> Path:
    """Return the root folder of the real IDC sample embedded in the package.

    Returns
    -------
    pathlib.Path
        Folder laid out as ``<patient>/<0|1>/<patient>_idx5_x<X>_y<Y>_class<C>.png``;
        pass it to :func:`load_idc` or to ``idcclf predict``.
    """
    return Path(__file__).resolve().parent / "_data" / "sample"


def load_sample(
    *, return_X_y: bool = False, **kwargs: Any
) -> Bunch | tuple[np.ndarray, np.ndarray]:
    """Load the real IDC sample embedded in the package.

    About 2,500 real patches of 12 patients of the public *Breast Histopathology
    Images* set (IDC_regular_ps50_idx5), including every smaller-than-50x50 edge
    patch of those patients; see ``idcclf/_data/sample/README.md``.

    Parameters
    ----------
    return_X_y : bool, default=False
        Return ``(data, target)`` instead of a Bunch.
    **kwargs
        Passed to :func:`load_idc` (``patients``, ``max_per_class``, ``size_policy``,
        ``on_error``, ``cache``, ``cache_check``, ``memory_map``, ``data_home``,
        ``n_jobs``, ``random_state``).

    Returns
    -------
    data : sklearn.utils.Bunch or tuple of ndarray
        As :func:`load_idc`; ``DESCR`` starts with the sample's source.
    """
    if "path" in kwargs:
        raise TypeError("load_sample() reads the embedded sample; use load_idc(path) instead")
    bunch = load_idc(sample_path(), return_X_y=False, **kwargs)
    bunch.DESCR = _SAMPLE_SOURCE + "\n\n" + bunch.DESCR
    return (bunch.data, bunch.target) if return_X_y else bunch
