"""glibc's thresholds: tensor buffers reused from the heap, not mapped afresh."""

import ctypes
import resource

import numpy as np
import pytest

from idcclf import _allocator, build_cancernet
from idcclf._ops import predict_in_batches

glibc_only = pytest.mark.skipif(
    not _allocator.on_glibc(), reason="the thresholds are glibc's; elsewhere nothing is changed"
)


def minor_faults_of_buffers(nbytes: int, allocator_setting) -> int:
    """Page faults of a third round of malloc, fill and free of ``nbytes``, after
    ``allocator_setting()`` (two rounds warm up), as TensorFlow's CPU allocator does
    with each tensor buffer."""
    libc = ctypes.CDLL(None)
    libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
    libc.free.argtypes = [ctypes.c_void_p]
    allocator_setting()

    def one_round():
        buffer = libc.malloc(nbytes)
        assert buffer, f"malloc({nbytes}) failed"
        ctypes.memset(buffer, 1, nbytes)
        libc.free(buffer)

    for _ in range(2):
        one_round()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    one_round()
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before


@glibc_only
def test_buffers_are_reused_once_the_thresholds_are_raised():
    # How many of TensorFlow's buffers go through malloc above 128 KiB depends on the
    # kernels oneDNN picks for the CPU (a 256-patch prediction faulted about 95,000
    # times under TensorFlow's setting on one VM, about 500 on another), so the
    # thresholds are tested on one buffer the size of 64 patches' first-block
    # activations (20 MB, about 5,000 pages).
    nbytes = 20 * 2**20
    as_tensorflow = minor_faults_of_buffers(nbytes, _allocator.as_tensorflow_sets_it)
    raised = minor_faults_of_buffers(nbytes, _allocator.keep_tensor_buffers)
    assert as_tensorflow > nbytes // resource.getpagesize() // 2  # a fresh map, faulted in
    assert raised < as_tensorflow / 10  # reused from the heap


@glibc_only
def test_a_prediction_faults_no_more_once_the_thresholds_are_raised(monkeypatch):
    model = build_cancernet()
    X = np.random.default_rng(0).integers(0, 256, (256, 50, 50, 3), dtype=np.uint8)
    # predict_in_batches raises the thresholds itself; keep them as the test sets them.
    monkeypatch.setattr("idcclf._ops.keep_tensor_buffers", lambda: None)
    faults = {}
    for name, setting in (
        ("tensorflow", _allocator.as_tensorflow_sets_it),
        ("raised", _allocator.keep_tensor_buffers),
    ):
        setting()
        for _ in range(2):
            predict_in_batches(model, X)
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        predict_in_batches(model, X)
        faults[name] = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
    assert faults["raised"] <= max(faults["tensorflow"], 100), faults


@glibc_only
def test_thresholds_are_raised_unless_switched_off(monkeypatch):
    assert _allocator.keep_tensor_buffers() is True
    monkeypatch.setenv(_allocator.SWITCH, "0")
    assert _allocator.keep_tensor_buffers() is False


def test_nothing_is_changed_without_glibc(monkeypatch):
    monkeypatch.setattr(_allocator.platform, "libc_ver", lambda: ("", ""))
    assert _allocator.keep_tensor_buffers() is False
    assert _allocator.as_tensorflow_sets_it() is False
