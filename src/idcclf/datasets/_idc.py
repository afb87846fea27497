"""``load_idc``: list, check, decode, cache and return an IDC tree, in steps."""

from __future__ import annotations

import dataclasses
import numbers
import os
import shutil
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.utils import Bunch

from . import _assemble, _cache
from ._base import CACHE_CHECKS, ON_ERROR, SIZE_POLICIES, USABLE, Patch, Status
from ._decode import DecodePool, n_workers
from ._memory import RowFile, check_memory, take_rows
from ._scan import Bad, PatchTree, scan_tree


def _check_params(
    size_policy: Any, on_error: Any, max_per_class: Any, random_state: Any, cache_check: Any
) -> None:
    """Validate the parameters, naming the first bad one."""
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


@dataclasses.dataclass
class _Job:
    """One call of load_idc: what to load, how, and where its cache entry lives."""

    tree: PatchTree
    options: dict[str, Any]
    max_per_class: int | None
    random_state: Any
    pool: DecodePool
    cache_dir: Path | None = None
    key: str | None = None
    tmp: Path | None = None  # set in memory-mapped mode: the entry being written

    @property
    def root(self) -> Path:
        return self.tree.root


def _options(tree: PatchTree, patients: list[str] | None, **kw: Any) -> dict[str, Any]:
    """The options that change the result, as the cache key records them."""
    max_per_class, random_state, cacheable = kw["max_per_class"], kw["random_state"], kw["cache"]
    return {
        "patients": None if patients is None else tree.patients,
        "max_per_class": None if max_per_class is None else int(max_per_class),
        "size_policy": kw["size_policy"],
        "on_error": kw["on_error"],
        # Only matters (and so only invalidates) when a random subset is drawn.
        "random_state": int(random_state) if max_per_class is not None and cacheable else None,
        "cache_check": kw["cache_check"],
    }


def _from_cache(job: _Job) -> Bunch | None:
    """The cached result, or None when there is none (or it is damaged)."""
    assert job.cache_dir is not None and job.key is not None
    hit = _cache.read_cache(job.cache_dir, job.key)
    if hit is None:
        return None
    try:
        descr = _assemble.describe(job.root, hit["meta"])
        _assemble.emit_warnings(job.root, hit["meta"])
    except (KeyError, TypeError, ValueError, AttributeError):
        return None  # a damaged manifest: rebuild like any other damage
    return _assemble.make_bunch(hit["arrays"], descr)


def _decode(job: _Job, cands: list[Patch]) -> tuple[list[int], Any, np.ndarray, Any]:
    """Decode the candidates (or the capped subset); rows go to disk when memory-mapped."""
    paths = [os.path.join(job.root, c.folder, c.name) for c in cands]
    size_policy = job.options["size_policy"]
    if job.max_per_class is not None:
        # A capped subset is decoded in memory even when memory-mapped: at most
        # 2 * max_per_class patches (twice: decoded in rounds, then sorted).
        n_rows = min(len(cands), 2 * job.max_per_class)
        check_memory(str(job.root), cands, 2 * n_rows)
        labels = np.array([c.label for c in cands], dtype=np.int64)
        return _assemble.decode_capped(
            paths,
            labels,
            size_policy=size_policy,
            max_per_class=job.max_per_class,
            random_state=job.random_state,
            pool=job.pool,
        )
    out = None
    if job.tmp is not None:
        out = RowFile(job.tmp / "data.npy", len(cands))
    else:
        check_memory(str(job.root), cands, len(cands))
    data, shapes, status = job.pool.decode(paths, size_policy, out)
    if out is not None:
        out.close()
        data = np.load(out.path, mmap_mode="r+")
    return list(range(len(cands))), data, shapes, status


def _keep_usable(
    job: _Job, cands: list[Patch], bad: list[Bad]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Decode, leave out bad and dropped patches; return the arrays and metadata."""
    idx, data, shapes, status = _decode(job, cands)
    codes = np.array([c for c, _ in status], dtype=np.int8)
    decode_bad = [
        (cands[i].relpath, reason)
        for i, (code, reason) in zip(idx, status, strict=True)
        if code == Status.BAD
    ]
    if decode_bad and job.options["on_error"] == "raise":
        _assemble.raise_bad(job.root, decode_bad)
    bad = sorted(bad + decode_bad)

    keep = np.flatnonzero(np.isin(codes, USABLE))
    data_file = None if job.tmp is None else job.tmp / "data.npy"
    if keep.size != len(codes) or (data_file is not None and not isinstance(data, np.memmap)):
        data = take_rows(data, keep, data_file)
        shapes = shapes[keep]
    kept = [cands[idx[k]] for k in keep]
    counts = _assemble.count_statuses(codes)
    if not kept:
        _assemble.emit_warnings(job.root, {"skipped": bad, "n_dropped": 0})
        raise ValueError(
            f"no usable IDC patches under {job.root}: {len(bad)} bad file(s) skipped, "
            f"{counts['n_dropped']} dropped by size_policy='drop'"
        )
    return _assemble.row_arrays(kept, data, shapes), _meta(job, kept, bad, counts)


def _meta(job: _Job, kept: list[Patch], bad: list[Bad], counts: dict[str, int]) -> dict[str, Any]:
    per_patient: dict[str, list[int]] = {p: [0, 0] for p in job.tree.patients}
    for c in kept:
        per_patient[c.patient][c.label] += 1
    meta = {
        "per_patient": {p: c for p, c in per_patient.items() if c[0] or c[1]},
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


def _store(job: _Job, arrays: dict[str, Any], meta: dict[str, Any]) -> dict[str, Any]:
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
    # Memory-mapped: the cache is where the data lives, so failing to write it fails.
    _cache.write_cache(job.cache_dir, job.key, arrays, meta, job.tmp)
    del arrays
    hit = _cache.read_cache(job.cache_dir, job.key)
    if hit is None:
        raise OSError(f"load_idc could not read back the cache it wrote to {job.cache_dir}")
    return hit["arrays"]


def _load_uncached(job: _Job) -> Bunch:
    """Check names, decode, keep the usable patches, write the cache."""
    cands, bad = job.tree.candidates()
    if bad and job.options["on_error"] == "raise":
        _assemble.raise_bad(job.root, bad)
    arrays, meta = _keep_usable(job, cands, bad)
    arrays = _store(job, arrays, meta)
    _assemble.emit_warnings(job.root, meta)
    return _assemble.make_bunch(arrays, _assemble.describe(job.root, meta))


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


def _run(job: _Job, memory_map: bool) -> Bunch:
    """Return the cached result, or load it (decoding into the cache when memory-mapped)."""
    if job.cache_dir is not None and job.key is not None:
        hit = _from_cache(job)
        if hit is not None:
            return hit
        if memory_map:
            job.tmp = _memory_map_tmp(job.cache_dir, job.key)
    try:
        return _load_uncached(job)
    finally:
        if job.tmp is not None and job.tmp.exists():
            shutil.rmtree(job.tmp, ignore_errors=True)


def load_idc(
    path: str | os.PathLike[str],
    *,
    patients: Iterable[str | int] | str | int | None = None,
    max_per_class: int | None = None,
    size_policy: str = "pad",
    on_error: str = "raise",
    cache: bool = True,
    cache_check: str = "full",
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
        than ``0``/``1`` or outside any class folder, a patch larger than 50x50, the
        same patch (patient, x, y) under both labels (every copy is bad; each
        reason names the other file). ``"raise"`` raises ``ValueError`` naming the
        first bad file and its reason; ``"skip"`` leaves them out and emits one
        ``UserWarning`` listing every skipped file with its reason. A file is never
        loaded with a label its name and folder disagree on. Content errors are found
        only in files that are decoded, so with ``max_per_class`` a bad file that is
        not picked goes unnoticed.
    cache : bool, default=True
        Cache the decoded arrays under ``data_home`` and reuse them while the tree
        and the options are unchanged (see Notes).
    cache_check : {"full", "fast"}, default="full"
        How a cached result is checked against the tree before it is reused.

        - ``"full"`` compares the relative path, size and modification time of every
          ``.png`` (one ``stat`` per file), so any file added, removed, renamed or
          rewritten is noticed. Its limit: a file rewritten with the same size and
          given back the same modification time (``touch -r``, ``cp -p``, a copy
          from a backup) is taken as unchanged.
        - ``"fast"`` compares the paths and only the modification time of each
          class folder, with no per-file system call. It does not notice a file
          rewritten in place (``cp new.png old.png``), which can then leave stale
          pixels (never a wrong label: labels come from names and folders).

        The two checks keep separate caches.
    memory_map : bool, default=False
        Decode straight into the cache file and return ``data`` as a memory map of
        it, so that a tree larger than memory can be loaded: only the pages in use
        are in RAM. Needs ``cache=True`` and a writable ``data_home`` (else an
        ``OSError`` says to pass ``data_home=`` or set ``IDCCLF_DATA``). Without it,
        ``load_idc`` estimates the memory a load needs before decoding and raises
        ``MemoryError`` (estimate vs available) instead of running into the
        out-of-memory killer; see Notes.
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
    Only ``<path>/<patient>/<class>/*.png`` files are read; other files, hidden
    entries and ``__MACOSX`` folders are ignored, and no folder is read deeper, so
    symbolic-link cycles cannot make a load loop. A broken or looping ``.png`` link
    and a folder that cannot be listed are bad files in the sense of ``on_error``.

    Memory: a load holds about 7,600 bytes per patch. Before decoding, that estimate
    is compared with the memory available (the kernel's ``MemAvailable``, a cgroup
    limit, and the ``IDCCLF_MAX_MEMORY`` environment variable: bytes, or a number
    with ``K``, ``M``, ``G``). With ``max_per_class`` at most ``2 * max_per_class``
    patches are decoded, in memory, even with ``memory_map``.

    Colour: grayscale, palette, bilevel and CMYK PNGs become RGB; alpha is
    composited onto white; 16-bit samples keep their most significant byte.

    The cache lives in ``<data_home>/idc_cache/<hash>/``; the hash covers the
    resolved root, the listing checked by ``cache_check`` and every option that
    changes the result. It is written to a temporary folder renamed into place, so
    an interrupted write is never read; a damaged cache is rebuilt. A cache hit
    returns copy-on-write memory maps of the cache files. If the cache cannot be
    written a ``UserWarning`` is emitted and the data returned. With
    ``max_per_class`` and a non-int ``random_state`` nothing is cached. Warnings
    about skipped or dropped files are emitted again on a cache hit.

    See ``docs/loaders.md`` for the details and the measurements behind them.

    Examples
    --------
    >>> from idcclf.datasets import load_idc, sample_path
    >>> bunch = load_idc(sample_path(), patients=["8863"], cache=False)
    >>> bunch.data.shape[1:], bunch.data.dtype
    ((50, 50, 3), dtype('uint8'))
    """
    _check_params(size_policy, on_error, max_per_class, random_state, cache_check)
    workers = n_workers(n_jobs)
    patient_list = _normalize_patients(patients)
    cacheable = cache and (max_per_class is None or isinstance(random_state, numbers.Integral))
    if memory_map and not cacheable:
        raise ValueError(
            "memory_map=True keeps the decoded patches in the cache under data_home, so it "
            "needs cache=True (and, with max_per_class, an int random_state)"
        )
    tree = scan_tree(path, patient_list, stat_files=cacheable and cache_check == "full")
    options = _options(
        tree,
        patient_list,
        max_per_class=max_per_class,
        size_policy=size_policy,
        on_error=on_error,
        random_state=random_state,
        cache=cacheable,
        cache_check=cache_check,
    )
    with DecodePool(workers) as pool:
        job = _Job(tree, options, max_per_class, random_state, pool)
        if cacheable:
            job.key = _cache.cache_key([tree], options)
            job.cache_dir = _cache.default_data_home(data_home) / _cache.CACHE_SUBDIR / job.key
        bunch = _run(job, memory_map)
    return (bunch.data, bunch.target) if return_X_y else bunch
