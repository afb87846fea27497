"""The on-disk cache of decoded patches: ``<data_home>/idc_cache/<key>/``.

An entry is one ``.npy`` file per array plus ``manifest.json``, written into a
temporary folder that is renamed into place when complete; the manifest is written
last and checked on read. Why this store and not ``joblib.Memory``: see
``docs/loaders.md``.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ._scan import PatchTree

# Bump whenever decoding or the cache layout changes, so old caches are never reused.
CACHE_VERSION = 2
CACHE_SUBDIR = "idc_cache"
MANIFEST = "manifest.json"
ARRAYS = ("data", "target", "groups", "coords", "filenames", "original_shapes")
# Leftover temp dirs of killed writers are removed once they are this old (seconds);
# younger ones may belong to a writer that is still running.
_STALE_TMP_AGE = 24 * 3600


def default_data_home(data_home: str | os.PathLike[str] | None) -> Path:
    """``data_home``, else ``$IDCCLF_DATA``, else ``~/idcclf_data``."""
    if data_home is None:
        data_home = os.environ.get("IDCCLF_DATA") or os.path.join("~", "idcclf_data")
    return Path(data_home).expanduser()


def cache_key(trees: Sequence[PatchTree], options: dict[str, Any]) -> str:
    """A key that changes with the listed trees, the options and the format version."""
    h = hashlib.sha256()
    roots = [str(t.root) for t in trees]
    header = {"version": CACHE_VERSION, "root": roots[0] if len(roots) == 1 else roots}
    h.update(json.dumps({**header, "options": options}, sort_keys=True).encode())
    for tree in trees:
        tree.hash_into(h)
    return h.hexdigest()[:40]


def read_cache(cache_dir: Path, key: str) -> dict[str, Any] | None:
    """Return the cached arrays and metadata, or None if absent, partial or corrupt."""
    try:
        with open(cache_dir / MANIFEST, encoding="utf-8") as fh:
            manifest = json.load(fh)
        if manifest.get("version") != CACHE_VERSION or manifest.get("key") != key:
            return None
        arrays = {}
        for name in ARRAYS:
            meta = manifest["arrays"][name]
            fpath = cache_dir / f"{name}.npy"
            if os.stat(fpath).st_size != meta["file_size"]:
                return None
            # Copy-on-write maps: no copy and no memory until used; writable, and
            # writes never reach the cache files.
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


def new_cache_tmp(cache_dir: Path, key: str) -> Path:
    """A fresh temp folder beside ``cache_dir``, to be renamed into place when complete."""
    parent = cache_dir.parent
    parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_tmp(parent)
    return Path(tempfile.mkdtemp(prefix=f".tmp-{key[:12]}-", dir=parent))


def _write_array(arr: np.ndarray, fpath: Path) -> dict[str, Any]:
    """Write (or, for a map of ``fpath`` itself, flush) one array durably."""
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
    return {"shape": list(arr.shape), "dtype": arr.dtype.str, "file_size": os.stat(fpath).st_size}


def _move_into_place(tmp: Path, cache_dir: Path, key: str) -> None:
    if cache_dir.exists():
        # An invalid cache is in the way: move it aside first so the swap below
        # stays a single rename.
        old = Path(tempfile.mkdtemp(prefix=f".old-{key[:12]}-", dir=cache_dir.parent))
        os.replace(cache_dir, old / "x")
        shutil.rmtree(old, ignore_errors=True)
    try:
        os.rename(tmp, cache_dir)
    except OSError:
        # Another process finished the same cache first; theirs is equivalent.
        if not (cache_dir / MANIFEST).exists():
            raise


def write_cache(
    cache_dir: Path,
    key: str,
    arrays: dict[str, np.ndarray],
    meta: dict[str, Any],
    tmp: Path | None = None,
) -> None:
    """Write the cache atomically: everything goes to a temp dir that is renamed last.

    ``tmp`` is a folder from :func:`new_cache_tmp` that may already hold ``data.npy``
    (``arrays["data"]`` is then a memory map of that file); it is consumed.
    """
    if tmp is None:
        tmp = new_cache_tmp(cache_dir, key)
    try:
        manifest: dict[str, Any] = {
            "format": "idcclf load_idc cache",
            "version": CACHE_VERSION,
            "key": key,
            "arrays": {name: _write_array(arrays[name], tmp / f"{name}.npy") for name in ARRAYS},
            "meta": meta,
        }
        # Written last and checked on read: a folder that somehow got renamed into
        # place half-written is never taken as valid.
        with open(tmp / MANIFEST, "w", encoding="utf-8") as fh:
            json.dump(manifest, fh, indent=1)
            fh.flush()
            os.fsync(fh.fileno())
        _move_into_place(tmp, cache_dir, key)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
