"""Keep TensorFlow's tensor buffers in the C heap rather than in fresh memory maps.

The first time a process iterates a generator dataset (every ``IDCClassifier.fit``
reads its training batches through one, as Keras reads a ``keras.utils.PyDataset``), TensorFlow
calls glibc's ``mallopt(M_TRIM_THRESHOLD, 128 KiB)``. That also freezes glibc's
``mmap`` threshold at its 128 KiB default, so from then on every tensor buffer above
128 KiB (most of CancerNet's activations and gradients) is a fresh memory map,
unmapped when freed: each training step maps, zero-fills page by page and unmaps
hundreds of megabytes. On the 2-vCPU machines of ``docs/benchmarks.md`` that kernel
work took about 40 % of a fit's CPU time, and half of ``predict_proba``'s after a fit.

:func:`keep_tensor_buffers` lets TensorFlow make its call, then raises both thresholds,
so buffers up to 32 MiB are reused from the heap; the peak memory grew by 84-122 MB
where it was measured (``docs/benchmarks_training.md``, change 5). Setting the
environment variable ``IDCCLF_KEEP_TENSOR_BUFFERS=0`` leaves the allocator as
TensorFlow sets it. Elsewhere than glibc (macOS, Windows, musl) nothing is changed.
"""

from __future__ import annotations

import ctypes
import os
import platform
import threading

#: Opt-out switch: "0" leaves glibc's settings as TensorFlow makes them.
SWITCH = "IDCCLF_KEEP_TENSOR_BUFFERS"

# mallopt parameters, from glibc's <malloc.h>.
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3

#: Largest glibc accepts on 64-bit systems (half its per-thread heap size).
MMAP_THRESHOLD = 32 * 2**20
#: Free memory a heap keeps at its top before giving it back to the system.
TRIM_THRESHOLD = 128 * 2**20
#: What TensorFlow's call leaves in a fresh process (glibc's defaults, frozen).
TENSORFLOW_THRESHOLD = 128 * 2**10

_lock = threading.Lock()
_tensorflow_has_set_it = False


def on_glibc() -> bool:
    """Whether this process runs on Linux with glibc, the only C library changed here."""
    return platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"


def _mallopt():
    """glibc's ``mallopt``, or None where the C library is not glibc."""
    if not on_glibc():
        return None
    return getattr(ctypes.CDLL(None), "mallopt", None)


def _let_tensorflow_set_it() -> None:
    """Iterate a one-element generator dataset, where TensorFlow makes its one call."""
    global _tensorflow_has_set_it
    if not _tensorflow_has_set_it:
        import tensorflow as tf

        dataset = tf.data.Dataset.from_generator(
            lambda: iter((0,)), output_signature=tf.TensorSpec((), tf.int32)
        )
        next(iter(dataset))
        _tensorflow_has_set_it = True


def keep_tensor_buffers() -> bool:
    """Raise glibc's mmap and trim thresholds, after TensorFlow's own setting.

    Called before every fit and prediction (it is cheap after the first call, and
    undoes a reset made in between). Returns whether the thresholds are now raised:
    False under ``IDCCLF_KEEP_TENSOR_BUFFERS=0`` or without glibc.
    """
    if os.environ.get(SWITCH, "1").strip() == "0":
        return False
    return _set_thresholds(MMAP_THRESHOLD, TRIM_THRESHOLD)


def as_tensorflow_sets_it() -> bool:
    """Put back the thresholds TensorFlow leaves in a fresh process (128 KiB each).

    For measuring TensorFlow's setting against ours in one process
    (``tests/test_allocator.py``). It does not undo what a fit under our setting left
    behind (grown heaps), so the benchmarks run each pipeline in a process of its own
    instead. Returns False without glibc.
    """
    return _set_thresholds(TENSORFLOW_THRESHOLD, TENSORFLOW_THRESHOLD)


def _set_thresholds(mmap_threshold: int, trim_threshold: int) -> bool:
    """Both thresholds, set after TensorFlow's call; False without glibc."""
    mallopt = _mallopt()
    if mallopt is None:
        return False
    with _lock:
        _let_tensorflow_set_it()
        return bool(mallopt(M_MMAP_THRESHOLD, mmap_threshold)) & bool(
            mallopt(M_TRIM_THRESHOLD, trim_threshold)
        )
