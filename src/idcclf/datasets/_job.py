"""One cache entry of ``load_idc``: read it, or check, decode, keep and write it.

An entry covers one root, or several when they must be decoded together (a random
subset drawn over all of them, or one memory-mapped file for all of them).
"""

from __future__ import annotations

import dataclasses
import numbers
import shutil
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from . import _assemble, _cache
from ._base import USABLE, Patch, Status
from ._decode import DecodePool
from ._memory import RowFile, check_memory, estimate_bytes, take_rows
from ._progress import Progress, say
from ._scan import Bad, PatchTree

#: The arrays of a result and its metadata (what DESCR and the warnings are made of).
Part = tuple[dict[str, Any], dict[str, Any]]


@dataclasses.dataclass
class Job:
    """What to load, how, and where its cache entry lives (``cache_dir`` None: no cache)."""

    trees: list[PatchTree]
    options: dict[str, Any]
    max_per_class: int | None
    random_state: Any
    pool: DecodePool
    cache_dir: Path | None = None
    key: str | None = None
    tmp: Path | None = None  # set in memory-mapped mode: the entry being written
    verbose: int = 0
    #: Hand out the written cache entry rather than the decoded arrays, so that the
    #: memory of a root is freed before the next root is decoded.
    from_file: bool = False

    @property
    def where(self) -> str:
        return ", ".join(str(t.root) for t in self.trees)


def options(trees: list[PatchTree], patients: list[str] | None, **kw: Any) -> dict[str, Any]:
    """The options that change the result, as the cache key records them."""
    max_per_class, random_state, cacheable = kw["max_per_class"], kw["random_state"], kw["cache"]
    return {
        "patients": None if patients is None else [p for t in trees for p in t.patients],
        "max_per_class": None if max_per_class is None else int(max_per_class),
        "size_policy": kw["size_policy"],
        "on_error": kw["on_error"],
        # Only matters (and so only invalidates) when a random subset is drawn.
        "random_state": int(random_state) if max_per_class is not None and cacheable else None,
        "cache_check": kw["cache_check"],
    }


def _from_cache(job: Job) -> Part | None:
    """The cached arrays and metadata, or None when there are none (or they are damaged)."""
    assert job.cache_dir is not None and job.key is not None
    hit = _cache.read_cache(job.cache_dir, job.key)
    if hit is None:
        return None
    try:
        _assemble.describe(hit["meta"])
    except (KeyError, TypeError, ValueError, AttributeError):
        return None  # a damaged manifest: rebuild like any other damage
    return hit["arrays"], hit["meta"]


def _decode(job: Job, cands: list[Patch]) -> tuple[list[int], Any, np.ndarray, Any]:
    """Decode the candidates (or the capped subset); rows go to disk when memory-mapped."""
    paths = [c.path for c in cands]
    size_policy = job.options["size_policy"]
    n_rows = len(cands) if job.max_per_class is None else min(len(cands), 2 * job.max_per_class)
    progress = Progress(n_rows, job.where) if job.verbose else None
    if job.max_per_class is not None:
        # A capped subset is decoded in memory even when memory-mapped: at most
        # 2 * max_per_class patches (twice: decoded in rounds, then sorted).
        check_memory(job.where, 2 * n_rows, estimate_bytes(cands, 2 * n_rows))
        labels = np.array([c.label for c in cands], dtype=np.int64)
        if progress is not None:
            progress.start(job.pool.describe())
        result = _assemble.decode_capped(
            paths,
            labels,
            size_policy=size_policy,
            max_per_class=job.max_per_class,
            random_state=job.random_state,
            pool=job.pool,
            progress=progress,
        )
    else:
        out = None
        if job.tmp is not None:
            out = RowFile(job.tmp / "data.npy", len(cands))
        else:
            check_memory(job.where, len(cands), estimate_bytes(cands, len(cands)))
        if progress is not None:
            progress.start(job.pool.describe())
        data, shapes, status = job.pool.decode(paths, size_policy, out, progress)
        if out is not None:
            out.close()
            data = np.load(out.path, mmap_mode="r+")
        result = list(range(len(cands))), data, shapes, status
    if progress is not None:
        progress.finish()
    return result


def _keep_usable(job: Job, cands: list[Patch], bad: list[Bad]) -> Part:
    """Decode, leave out bad and dropped patches; return the arrays and metadata."""
    idx, data, shapes, status = _decode(job, cands)
    codes = np.array([c for c, _ in status], dtype=np.int8)
    decode_bad = [
        (cands[i].path, reason)
        for i, (code, reason) in zip(idx, status, strict=True)
        if code == Status.BAD
    ]
    if decode_bad and job.options["on_error"] == "raise":
        _assemble.raise_bad(decode_bad)
    bad = sorted(bad + decode_bad)

    keep = np.flatnonzero(np.isin(codes, USABLE))
    data_file = None if job.tmp is None else job.tmp / "data.npy"
    if keep.size != len(codes) or (data_file is not None and not isinstance(data, np.memmap)):
        data = take_rows(data, keep, data_file)
        shapes = shapes[keep]
    kept = [cands[idx[k]] for k in keep]
    meta = _meta(job, kept, bad, _assemble.count_statuses(codes))
    if not kept:
        _assemble.emit_warnings({**meta, "n_dropped": 0})
        raise ValueError(
            f"no usable IDC patches under {job.where}: {len(bad)} bad file(s) skipped, "
            f"{meta['n_dropped']} dropped by size_policy='drop'"
        )
    return _assemble.row_arrays(kept, data, shapes), meta


def _meta(job: Job, kept: list[Patch], bad: list[Bad], counts: dict[str, int]) -> dict[str, Any]:
    per_root: dict[str, dict[str, list[int]]] = {
        str(t.root): {p: [0, 0] for p in t.patients} for t in job.trees
    }
    for c in kept:
        per_root[c.root][c.patient][c.label] += 1
    meta = {
        "roots": [
            [root, {p: n for p, n in patients.items() if n[0] or n[1]}]
            for root, patients in per_root.items()
        ],
        "max_per_class": job.options["max_per_class"],
        "random_state": job.options["random_state"],
        "size_policy": job.options["size_policy"],
        "on_error": job.options["on_error"],
        **counts,
        "skipped": [list(b) for b in bad],
    }
    if job.max_per_class is not None:
        # Recorded for DESCR even when it is not part of the cache key.
        rs = job.random_state
        meta["random_state"] = int(rs) if isinstance(rs, numbers.Integral) else repr(rs)
    return meta


def _store(job: Job, arrays: dict[str, Any], meta: dict[str, Any]) -> dict[str, Any]:
    """Write the cache entry; return the arrays to hand out."""
    if job.cache_dir is None or job.key is None:
        return arrays
    if job.tmp is None:
        try:
            _cache.write_cache(job.cache_dir, job.key, arrays, meta)
        except OSError as exc:
            warnings.warn(
                f"load_idc could not write its cache to {job.cache_dir} ({exc}); "
                "the data is returned uncached",
                UserWarning,
                stacklevel=4,
            )
            return arrays
        if not job.from_file:
            return arrays
    else:
        # Memory-mapped: the cache is where the data lives, so failing to write it fails.
        _cache.write_cache(job.cache_dir, job.key, arrays, meta, job.tmp)
    del arrays
    hit = _cache.read_cache(job.cache_dir, job.key)
    if hit is None:
        raise OSError(f"load_idc could not read back the cache it wrote to {job.cache_dir}")
    return hit["arrays"]


def _memory_map_tmp(cache_dir: Path, key: str) -> Path:
    """The folder to decode into; an OSError that says how to fix an unwritable data_home."""
    try:
        return _cache.new_cache_tmp(cache_dir, key)
    except OSError as exc:
        data_home = cache_dir.parent.parent
        raise type(exc)(
            exc.errno,
            f"memory_map=True decodes into a file under data_home, but {data_home} cannot "
            f"be written to ({exc.strerror or exc}): pass data_home= a writable folder, or "
            "set the IDCCLF_DATA environment variable to one",
        ) from None


def run(job: Job, memory_map: bool) -> Part:
    """The cached entry, or a fresh load (decoded into the cache when memory-mapped)."""
    if job.cache_dir is not None and job.key is not None:
        hit = _from_cache(job)
        if hit is not None:
            if job.verbose:
                n = len(hit[0]["target"])
                say(f"read {n:,} patches under {job.where} from the cache {job.cache_dir}")
            return hit
        if memory_map:
            job.tmp = _memory_map_tmp(job.cache_dir, job.key)
    try:
        cands: list[Patch] = []
        bad: list[Bad] = []
        for tree in job.trees:
            good, wrong = tree.candidates()
            cands += good
            bad += wrong
        if bad and job.options["on_error"] == "raise":
            _assemble.raise_bad(bad)
        arrays, meta = _keep_usable(job, cands, bad)
        return _store(job, arrays, meta), meta
    finally:
        if job.tmp is not None and job.tmp.exists():
            shutil.rmtree(job.tmp, ignore_errors=True)
