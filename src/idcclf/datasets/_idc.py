"""``load_idc``: list one root or several, load each cache entry, put them together."""

from __future__ import annotations

import numbers
import os
from collections.abc import Iterable, Sequence

import numpy as np
from sklearn.utils import Bunch

from . import _assemble, _cache, _job
from ._decode import DecodePool, n_workers
from ._memory import check_memory, concatenate
from ._params import check_params, normalize_patients
from ._scan import PatchTree, scan_roots


def _groups(trees: list[PatchTree], shared: bool) -> list[list[PatchTree]]:
    """The roots loaded (and cached) together: each alone, unless ``shared``."""
    return [trees] if shared else [[tree] for tree in trees]


def _concatenate(parts: list[_job.Part]) -> _job.Part:
    """The rows of every part, one after the other, and their merged metadata."""
    if len(parts) == 1:
        return parts[0]
    arrays = [part[0] for part in parts]
    need = sum(a.nbytes for one in arrays for a in one.values())
    where = ", ".join(root for _, meta in parts for root, _ in meta["roots"])
    check_memory(where, sum(len(one["target"]) for one in arrays), need)
    joined = {name: concatenate([one[name] for one in arrays]) for name in _cache.ARRAYS}
    return joined, _assemble.merge(parts)


def load_idc(
    path: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
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
    verbose: int = 0,
) -> Bunch | tuple[np.ndarray, np.ndarray]:
    """Load IDC histopathology patches from a folder tree.

    The tree is laid out as in the public *Breast Histopathology Images* set::

        <path>/<patient>/<0|1>/<patient>_idx5_x<X>_y<Y>_class<C>.png

    where the class folder (0 = no IDC, 1 = IDC) is the label and must agree with
    ``class<C>`` in the file name, the patient folder must agree with the file name's
    patient, and ``X``, ``Y`` are the patch's top-left pixel coordinates in its slide.

    Parameters
    ----------
    path : str, path-like, or a sequence of them
        Root folder holding one folder per patient, or a list of such roots. A root
        whose only sub-folders are ``0`` and/or ``1`` (the parts ``idcclf split``
        writes: ``<root>/<0|1>/<patient>_idx5_...png``) is read with the patient
        taken from each file name. Several
        roots are loaded one after the other, each with its own cache entry, and
        their rows concatenated in the order given; a patient id may appear under
        one root only (else ``ValueError`` naming both folders).
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
    verbose : int, default=0
        0 prints nothing. 1 prints to stderr, while patches are decoded, how many are
        done, the rate and the time left (a few lines: at most one per 2 s and 10%),
        and a line for each cache entry read instead.

    Returns
    -------
    data : sklearn.utils.Bunch
        With fields

        - ``data``: uint8 array (n, 50, 50, 3), RGB, C-contiguous;
        - ``target``: int64 array (n,), 0 = no IDC, 1 = IDC;
        - ``groups``: str array (n,), patient id of each patch (for grouped CV);
        - ``coords``: int64 array (n, 2), ``(x, y)`` of the top-left corner;
        - ``filenames``: str array (n,), paths relative to the patch's root, with ``/``;
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
    Only ``<path>/<patient>/<class>/*.png`` (or ``<path>/<class>/*.png``) files are
    read; other files, hidden entries and ``__MACOSX`` folders are ignored, and no
    folder is read deeper, so symbolic-link cycles cannot make a load loop. A broken
    or looping ``.png`` link and a folder that cannot be listed are bad files in the
    sense of ``on_error``.

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
    check_params(size_policy, on_error, max_per_class, random_state, cache_check, verbose)
    workers = n_workers(n_jobs)
    patient_list = normalize_patients(patients)
    cacheable = cache and (max_per_class is None or isinstance(random_state, numbers.Integral))
    if memory_map and not cacheable:
        raise ValueError(
            "memory_map=True keeps the decoded patches in the cache under data_home, so it "
            "needs cache=True (and, with max_per_class, an int random_state)"
        )
    trees = scan_roots(path, patient_list, stat_files=cacheable and cache_check == "full")
    settings = {
        "max_per_class": max_per_class,
        "size_policy": size_policy,
        "on_error": on_error,
        "random_state": random_state,
        "cache": cacheable,
        "cache_check": cache_check,
    }
    home = _cache.default_data_home(data_home)
    parts = []
    # Several roots share one entry when a random subset is drawn over all of them,
    # when the result is one memory-mapped file, or when nothing is cached (decoded
    # into one buffer); else each root is cached alone, and the decoded arrays of
    # each are swapped for its cache files before the next root is decoded, so that
    # the rows are in memory once, when concatenated.
    shared = max_per_class is not None or memory_map or not cacheable
    with DecodePool(workers) as pool:
        for group in _groups(trees, shared):
            options = _job.options(group, patient_list, **settings)
            job = _job.Job(group, options, max_per_class, random_state, pool, verbose=verbose)
            job.from_file = len(trees) > 1 and not shared
            if cacheable:
                job.key = _cache.cache_key(group, options)
                job.cache_dir = home / _cache.CACHE_SUBDIR / job.key
            parts.append(_job.run(job, memory_map))
    arrays, meta = _concatenate(parts)
    _assemble.emit_warnings(meta)
    bunch = _assemble.make_bunch(arrays, _assemble.describe(meta))
    return (bunch.data, bunch.target) if return_X_y else bunch
