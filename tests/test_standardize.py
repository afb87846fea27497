"""Colour standardization per patient."""

from __future__ import annotations

import numpy as np
import pytest

from idcclf import load_sample, standardize_patients
from idcclf.standardize import REFERENCE_MEAN


def _casts(seed=0):
    """Two patients of 3 patches each with different colour casts, away from 0 and 255."""
    rng = np.random.default_rng(seed)
    pale = rng.integers(150, 200, (3, 50, 50, 3))
    dark = rng.integers(60, 90, (3, 50, 50, 3)) + np.array([0, 20, 40])
    return np.concatenate([pale, dark]).astype(np.uint8), np.array(["pale"] * 3 + ["dark"] * 3)


def _stats(X):
    pixels = X.reshape(-1, 3).astype(np.float64)
    return pixels.mean(axis=0), pixels.std(axis=0)


def test_every_patient_gets_the_reference_statistics():
    X, groups = _casts()
    before = X.copy()
    # A reference far enough from 0 and 255 that nothing is clipped.
    reference = {"mean": (120, 130, 140), "std": (20, 25, 30)}
    Z = standardize_patients(X, groups, **reference)
    np.testing.assert_array_equal(X, before)
    assert Z.dtype == np.uint8 and Z.shape == X.shape
    for patient in ("pale", "dark"):
        mean, std = _stats(Z[groups == patient])
        # Rounding to integers moves the statistics by well under one unit.
        np.testing.assert_allclose(mean, reference["mean"], atol=0.1)
        np.testing.assert_allclose(std, reference["std"], rtol=0.01)


def test_without_std_only_the_means_move():
    X, groups = _casts(3)
    Z = standardize_patients(X, groups, mean=(120, 130, 140), std=None)
    for patient in ("pale", "dark"):
        mean, std = _stats(Z[groups == patient])
        np.testing.assert_allclose(mean, (120, 130, 140), atol=0.6)
        np.testing.assert_allclose(std, _stats(X[groups == patient])[1], atol=0.3)


def test_within_a_patient_pixel_order_is_kept_and_patients_do_not_interact():
    X, groups = _casts(1)
    together = standardize_patients(X, groups)
    alone = standardize_patients(X[groups == "dark"], groups[groups == "dark"])
    np.testing.assert_array_equal(together[groups == "dark"], alone)
    for channel in range(3):
        x = X[groups == "pale"][..., channel].ravel()
        z = together[groups == "pale"][..., channel].ravel()
        order = np.argsort(x, kind="stable")
        assert np.all(np.diff(z[order].astype(int)) >= 0)


def test_float_input_in_0_255_and_a_custom_reference():
    X, groups = _casts(2)
    Z = standardize_patients(X.astype(np.float32), groups, mean=(100, 110, 120), std=(10, 10, 10))
    assert Z.dtype == np.float32
    mean, std = _stats(Z[groups == "dark"])
    np.testing.assert_allclose(mean, (100, 110, 120), atol=1e-3)
    np.testing.assert_allclose(std, 10, rtol=1e-4)


def test_uint8_lookup_tables_match_the_direct_computation():
    bunch = load_sample()
    X, groups = bunch.data[:600], np.asarray(bunch.groups)[:600]
    fast = standardize_patients(X, groups)
    # int32 pixels take the direct float64 path.
    direct = standardize_patients(X.astype(np.int32), groups)
    assert direct.dtype == np.int32
    np.testing.assert_array_equal(fast, direct)


def test_a_uniform_patient_is_shifted_not_blown_up():
    X = np.full((2, 50, 50, 3), 90, dtype=np.uint8)
    Z = standardize_patients(X, ["blank", "blank"])
    expected = np.broadcast_to(np.rint(REFERENCE_MEAN).astype(np.uint8), X.shape)
    np.testing.assert_array_equal(Z, expected)


def test_real_patients_come_closer_in_colour():
    bunch = load_sample()
    groups = np.asarray(bunch.groups)
    Z = standardize_patients(bunch.data, groups)
    patients = np.unique(groups)
    before = np.array([_stats(bunch.data[groups == p])[0] for p in patients])
    after = np.array([_stats(Z[groups == p])[0] for p in patients])
    # Clipping at 0 and 255 keeps the means a few units off the reference.
    np.testing.assert_allclose(after, np.broadcast_to(REFERENCE_MEAN, after.shape), atol=5.0)
    assert np.all(after.std(axis=0) < before.std(axis=0) / 3)


@pytest.mark.parametrize(
    "X, groups, kwargs, message",
    [
        (np.zeros((2, 50, 50)), [0, 0], {}, r"shape \(n, height, width, 3\), got \(2, 50, 50\)"),
        (np.zeros((2, 50, 50, 3)), [0, 0, 1], {}, r"2 patches, groups of shape \(3,\)"),
        (np.full((1, 5, 5, 3), 0.5), [0], {}, r"scaled to \[0, 1\]"),
        (np.full((1, 5, 5, 3), np.nan), [0], {}, "NaN or infinite"),
        (np.full((1, 5, 5, 3), 300, np.int32), [0], {}, "values from 300 to 300"),
        (np.full((1, 5, 5, 3), -1.0), [0], {}, r"values from -1.0 to -1.0"),
        (np.zeros((1, 5, 5, 3)), [0], {"std": (1, 0, 1)}, "std positive or None"),
        (np.zeros((1, 5, 5, 3)), [0], {"std": (1, 1)}, "std positive or None"),
    ],
)
def test_bad_input_is_named(X, groups, kwargs, message):
    with pytest.raises(ValueError, match=message):
        standardize_patients(X, groups, **kwargs)
