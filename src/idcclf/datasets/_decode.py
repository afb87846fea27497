"""Decoding patch files: PNG checks, colour conversion, size policy, parallel pool.

The pool is a :class:`DecodePool` passed to whatever decodes; which kind of workers it
uses comes from its ``kind`` argument, or else from :func:`decode_executor`, a context
manager in the manner of ``joblib.parallel_config``. See ``docs/loaders.md`` for the
measurements behind the defaults.
"""

from __future__ import annotations

import contextlib
import contextvars
import io
import itertools
import math
import mmap
import multiprocessing as mp
import numbers
import os
import struct
import sys
import warnings
import zlib
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from typing import Any

import numpy as np
from PIL import Image

from .._threads import cpu_count
from ._base import PATCH_SIZE, BadPatch, Status, os_reason

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_CHUNK_HEAD = struct.Struct(">I4s")

#: Kinds of decoding pool: "auto" is processes (fork) on Linux, threads elsewhere.
EXECUTOR_KINDS = ("auto", "thread", "process")
_EXECUTOR_KIND: contextvars.ContextVar[str] = contextvars.ContextVar(
    "idcclf_decode_executor", default="auto"
)

#: Per decoded file: its status and, for a bad file, the reason.
Statuses = list[tuple[Status, str]]


def _to_rgb8(im: Image.Image) -> np.ndarray:
    """Return a decoded PNG as an (h, w, 3) uint8 array."""
    mode = im.mode
    if mode == "RGB" and "transparency" not in im.info:
        return np.asarray(im)
    if mode.startswith("I"):
        # 16-bit grayscale. Pillow's convert("L") clips values above 255 to white, so
        # keep the most significant byte instead (v >> 8, as libpng's strip_16).
        a = np.asarray(im).astype(np.int64, copy=False)
        a8 = (np.clip(a, 0, 65535) >> 8).astype(np.uint8)
        return np.repeat(a8[..., None], 3, axis=2)
    if "A" in mode or "a" in mode or "transparency" in im.info:
        # Composite on white, the colour of slide background, rather than dropping alpha.
        rgba = np.asarray(im.convert("RGBA")).astype(np.uint16)
        alpha = rgba[..., 3:4]
        rgb = (rgba[..., :3] * alpha + 255 * (255 - alpha) + 127) // 255
        return rgb.astype(np.uint8)
    # L, 1, P (palette) and CMYK.
    return np.asarray(im.convert("RGB"))


def _check_chunks(raw: bytes) -> None:
    """Check that every PNG chunk is complete and has the right CRC, up to IEND."""
    # Pillow checks no CRC of image data and may be told to pad truncated images.
    view = memoryview(raw)
    pos, n = len(_PNG_SIGNATURE), len(raw)
    while True:
        if pos + 8 > n:
            raise BadPatch("truncated PNG (the file ends before the IEND chunk)")
        length, ctype = _CHUNK_HEAD.unpack_from(raw, pos)
        end = pos + 8 + length + 4
        name = ctype.decode("latin-1")
        if end > n:
            raise BadPatch(f"truncated PNG (the {name!r} chunk runs past the end of the file)")
        if zlib.crc32(view[pos + 4 : end - 4]) != int.from_bytes(view[end - 4 : end], "big"):
            raise BadPatch(f"corrupt PNG (CRC mismatch in the {name!r} chunk)")
        if ctype == b"IEND":
            return
        pos = end


def _decode_patch(path: str) -> np.ndarray:
    """Decode one patch file into an (h, w, 3) uint8 array or raise ``BadPatch``."""
    try:
        with open(path, "rb") as fh:
            raw = fh.read()
    except OSError as exc:
        raise BadPatch(os_reason(exc, "cannot read file")) from None
    if not raw:
        raise BadPatch("empty file (0 bytes)")
    if not raw.startswith(_PNG_SIGNATURE):
        raise BadPatch("not a PNG file (content does not start with the PNG signature)")
    _check_chunks(raw)
    try:
        with Image.open(io.BytesIO(raw), formats=["PNG"]) as im:
            w, h = im.size
            if w > PATCH_SIZE or h > PATCH_SIZE:
                # Checked before decoding so a huge image is never decompressed.
                raise BadPatch(
                    f"patch is {w}x{h} px (width x height), larger than {PATCH_SIZE}x{PATCH_SIZE}"
                )
            im.load()
            return _to_rgb8(im)
    except BadPatch:
        raise
    except Exception as exc:  # Pillow raises many types (OSError, SyntaxError, ...)
        raise BadPatch(f"corrupt PNG ({type(exc).__name__}: {exc})") from None


def _decode_chunk(
    paths: list[str], size_policy: str, block: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, Statuses]:
    """Decode a list of files and apply the size policy.

    Returns the (k, 50, 50, 3) block (``block`` if given, filled in place; rows of
    dropped/bad files are left unfilled), their stored (height, width) and one
    ``(status, reason)`` per file.
    """
    s = PATCH_SIZE
    if block is None:
        block = np.empty((len(paths), s, s, 3), dtype=np.uint8)
    shapes = np.zeros((len(paths), 2), dtype=np.int64)
    status: Statuses = []
    for i, path in enumerate(paths):
        try:
            rgb = _decode_patch(path)
        except BadPatch as exc:
            status.append((Status.BAD, str(exc)))
            continue
        h, w = rgb.shape[:2]
        shapes[i] = h, w
        if h == s and w == s:
            block[i] = rgb
            status.append((Status.OK, ""))
        elif size_policy == "pad":
            block[i] = 255
            block[i, :h, :w] = rgb
            status.append((Status.PADDED, ""))
        elif size_policy == "resize":
            resized = Image.fromarray(rgb).resize((s, s), Image.Resampling.BILINEAR)
            block[i] = np.asarray(resized)
            status.append((Status.RESIZED, ""))
        else:
            status.append((Status.DROPPED, ""))
    return block, shapes, status


def shared_rows(n: int) -> np.ndarray:
    """(n, 50, 50, 3) uint8 rows in memory that processes forked later write into.

    An anonymous shared map, not ``/dev/shm``, so no size limit of that folder (64 MB
    in a default Docker container) applies.
    """
    buffer = mmap.mmap(-1, n * PATCH_SIZE * PATCH_SIZE * 3)
    return np.frombuffer(buffer, dtype=np.uint8).reshape(n, PATCH_SIZE, PATCH_SIZE, 3)


#: In a worker forked by :meth:`DecodePool.decode`: the shared rows it decodes into.
_worker_rows: np.ndarray | None = None


def _attach_rows(rows: np.ndarray) -> None:
    global _worker_rows
    _worker_rows = rows


def _decode_into_rows(
    start: int, paths: list[str], size_policy: str
) -> tuple[None, np.ndarray, Statuses]:
    """Decode into the worker's shared rows from ``start``; return no pixels."""
    return _decode_in_place(_worker_rows[start : start + len(paths)], paths, size_policy)


def _decode_in_place(
    block: np.ndarray, paths: list[str], size_policy: str
) -> tuple[None, np.ndarray, Statuses]:
    """Decode into ``block``; return no pixels, only the shapes and statuses."""
    _, shapes, status = _decode_chunk(paths, size_policy, block)
    return None, shapes, status


@contextlib.contextmanager
def decode_executor(kind: str) -> Iterator[str]:
    """Make the loads started inside the block decode with ``kind`` of workers.

    ``kind`` is ``"auto"`` (processes forked on Linux, threads elsewhere),
    ``"thread"`` or ``"process"``. The choice is scoped to the block (and to the
    thread or task that entered it), like ``joblib.parallel_config``.
    """
    if kind not in EXECUTOR_KINDS:
        raise ValueError(f"decode executor must be one of {EXECUTOR_KINDS}, got {kind!r}")
    token = _EXECUTOR_KIND.set(kind)
    try:
        yield kind
    finally:
        _EXECUTOR_KIND.reset(token)


def _resolve_kind(kind: str) -> str:
    if kind not in EXECUTOR_KINDS:
        raise ValueError(f"decode executor must be one of {EXECUTOR_KINDS}, got {kind!r}")
    if kind != "auto":
        return kind
    # fork is only cheap and safe enough on Linux, and spawn/forkserver would
    # re-import the caller's __main__ (see docs/loaders.md).
    if sys.platform.startswith("linux") and "fork" in mp.get_all_start_methods():
        return "process"
    return "thread"


def n_workers(n_jobs: Any) -> int:
    """The number of decoding workers for ``n_jobs`` (joblib's convention)."""
    if n_jobs is None:
        return cpu_count()
    if isinstance(n_jobs, bool) or not isinstance(n_jobs, numbers.Integral) or n_jobs == 0:
        raise ValueError(f"n_jobs must be None or a non-zero int, got {n_jobs!r}")
    if n_jobs < 0:  # -1 = all cores, -2 = all but one, ...
        return max(1, cpu_count() + 1 + int(n_jobs))
    return int(n_jobs)


class DecodePool:
    """Decodes lists of patch files in chunks, with up to ``n_jobs`` workers.

    Parameters
    ----------
    n_jobs : int
        Workers (at least 1; 1 decodes in the calling thread).
    kind : {"auto", "thread", "process"} or None, default=None
        Kind of workers; None takes the one set by :func:`decode_executor`.

    The executor starts on first use and serves every :meth:`decode` call until
    :meth:`close` (or the end of a ``with`` block), except the calls that decode in
    place with processes: those fork a pool of their own onto their output.
    """

    def __init__(self, n_jobs: int, kind: str | None = None) -> None:
        self.n_jobs = max(1, int(n_jobs))
        self.kind = _resolve_kind(_EXECUTOR_KIND.get() if kind is None else kind)
        self._executor: Executor | None = None

    def __enter__(self) -> DecodePool:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown()
            self._executor = None

    def _get_executor(self) -> Executor:
        if self._executor is None:
            if self.kind == "process":
                ctx = mp.get_context("fork")
                self._executor = ProcessPoolExecutor(self.n_jobs, mp_context=ctx)
            else:
                self._executor = ThreadPoolExecutor(self.n_jobs, thread_name_prefix="idcclf-decode")
        return self._executor

    def _forked_onto(self, rows: np.ndarray) -> Executor:
        """A process pool of its own whose workers decode into ``rows``."""
        ctx = mp.get_context("fork")
        return ProcessPoolExecutor(
            self.n_jobs, mp_context=ctx, initializer=_attach_rows, initargs=(rows,)
        )

    @staticmethod
    def _submit(executor: Executor, *task: Any) -> Future:
        with warnings.catch_warnings():
            # Python >= 3.12 warns that fork() in a multi-threaded process may deadlock
            # the child; the workers only run Pillow and numpy and take no lock another
            # thread could hold (as PyTorch's fork-based DataLoader workers).
            warnings.filterwarnings(
                "ignore", message=r".*multi-threaded, use of fork\(\)", category=DeprecationWarning
            )
            return executor.submit(*task)

    def describe(self) -> str:
        """How the pool decodes, for progress lines."""
        if self.n_jobs == 1:
            return "in this thread"
        return f"{self.n_jobs} {'processes' if self.kind == 'process' else 'threads'}"

    def decode(
        self, paths: list[str], size_policy: str, out: Any = None, progress: Any = None
    ) -> tuple[Any, np.ndarray, Statuses]:
        """Decode ``paths``; results are in the order of ``paths``.

        ``out``, if given, is the (n, 50, 50, 3) destination, e.g. a file of rows;
        ``progress``, if given, has its ``advance(k)`` called as chunks finish.
        """
        n = len(paths)
        # Several chunks per worker balance the load; each still amortises the
        # per-task cost (pickling, ~ms) over hundreds of ~0.15 ms decodes.
        chunk = max(64, min(1024, math.ceil(n / (4 * self.n_jobs)))) if n else 1
        starts = list(range(0, n, chunk))
        parallel = self.n_jobs > 1 and len(starts) > 1
        # Where this call allocates the output, it is decoded into in place: by
        # processes into rows shared with this one, so that no pixel is pickled and
        # this process copies nothing (docs/loaders.md measures the gain).
        in_place = out is None
        forked = in_place and parallel and self.kind == "process"
        if out is None:
            out = shared_rows(n) if forked else np.empty((n, PATCH_SIZE, PATCH_SIZE, 3), np.uint8)
        shapes = np.zeros((n, 2), dtype=np.int64)
        status: Statuses = [(Status.OK, "")] * n

        def store(i: int, result: tuple[np.ndarray | None, np.ndarray, Statuses]) -> None:
            block, shp, st = result
            if block is not None:
                out[i : i + len(st)] = block
            shapes[i : i + len(st)] = shp
            status[i : i + len(st)] = st
            if progress is not None:
                progress.advance(len(st))

        def task(i: int) -> tuple:
            part = paths[i : i + chunk]
            if forked:
                return _decode_into_rows, i, part, size_policy
            if in_place:
                return _decode_in_place, out[i : i + chunk], part, size_policy
            return _decode_chunk, part, size_policy

        if not parallel:
            for i in starts:
                function, *arguments = task(i)
                store(i, function(*arguments))
            return out, shapes, status
        executor = self._forked_onto(out) if forked else self._get_executor()

        def submit(i: int) -> Future:
            return self._submit(executor, *task(i))

        # A bounded window of chunks in flight: each finished block is in the one
        # output or copied there and released, so the peak memory stays near 1x the data.
        pending: deque[tuple[int, Future]] = deque()
        next_start = iter(starts)
        try:
            for i in itertools.islice(next_start, 2 * self.n_jobs):
                pending.append((i, submit(i)))
            while pending:
                i, fut = pending.popleft()
                store(i, fut.result())
                del fut
                for j in itertools.islice(next_start, 1):
                    pending.append((j, submit(j)))
        finally:
            if forked:
                executor.shutdown(cancel_futures=True)
        return out, shapes, status


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
    workers = n_workers(n_jobs)
    files = [os.fspath(p) for p in paths]
    if not files:
        raise ValueError("load_patches: no files given")
    with DecodePool(workers) as pool:
        data, _, status = pool.decode(files, size_policy)
    for f, (code, reason) in zip(files, status, strict=True):
        if code == Status.BAD:
            raise ValueError(f"bad patch file {f}: {reason}")
    return data
