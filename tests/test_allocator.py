"""glibc's thresholds: tensor buffers reused from the heap, not mapped afresh."""

import resource

import numpy as np
import pytest

from idcclf import _allocator, build_cancernet
from idcclf._ops import predict_in_batches

glibc_only = pytest.mark.skipif(
    not _allocator.on_glibc(), reason="the thresholds are glibc's; elsewhere nothing is changed"
)


def minor_faults_of_predictions(model, X, allocator_setting) -> int:
    """Page faults of a third prediction after ``allocator_setting()`` (two warm up)."""
    allocator_setting()
    for _ in range(2):
        predict_in_batches(model, X)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    predict_in_batches(model, X)
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before


@glibc_only
def test_buffers_are_reused_once_the_thresholds_are_raised(monkeypatch):
    model = build_cancernet()
    X = np.random.default_rng(0).integers(0, 256, (256, 50, 50, 3), dtype=np.uint8)
    # predict_in_batches raises the thresholds itself; keep them as the test sets them.
    with monkeypatch.context() as patch:
        patch.setattr("idcclf._ops.keep_tensor_buffers", lambda: None)
        as_tensorflow = minor_faults_of_predictions(model, X, _allocator.as_tensorflow_sets_it)
        raised = minor_faults_of_predictions(model, X, _allocator.keep_tensor_buffers)
    # 64 patches' first-block activations alone are 20 MB, about 5,000 pages a batch.
    assert as_tensorflow > 10_000
    assert raised < as_tensorflow / 10


@glibc_only
def test_thresholds_are_raised_unless_switched_off(monkeypatch):
    assert _allocator.keep_tensor_buffers() is True
    monkeypatch.setenv(_allocator.SWITCH, "0")
    assert _allocator.keep_tensor_buffers() is False


def test_nothing_is_changed_without_glibc(monkeypatch):
    monkeypatch.setattr(_allocator.platform, "libc_ver", lambda: ("", ""))
    assert _allocator.keep_tensor_buffers() is False
    assert _allocator.as_tensorflow_sets_it() is False
