"""Colour standardization per patient."""

from __future__ import annotations

import numpy as np
import pytest

from idcclf import load_sample, normalize_stains, standardize_patients
from idcclf.standardize import (
    LIGHT_INTENSITY,
    REFERENCE_MAX_CONCENTRATIONS,
    REFERENCE_MEAN,
    REFERENCE_STAINS,
    measure_stains,
)


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


# ---- normalize_stains (Macenko's method) ----

REFERENCE = np.array(REFERENCE_STAINS) / np.linalg.norm(REFERENCE_STAINS, axis=0)
# A bluer haematoxylin and a more orange eosin than the reference: another lab's stains.
OTHER = np.array([[0.75, 0.12], [0.55, 0.90], [0.37, 0.43]])
OTHER /= np.linalg.norm(OTHER, axis=0)


def _amounts(n_patches, tumour_share, seed):
    """Stain amounts per pixel (n_patches, 50, 50, 2): most pixels a mix, 5 % pure
    haematoxylin and 5 % pure eosin (dense enough to count as tissue), and
    ``tumour_share`` of the patches richer in haematoxylin."""
    rng = np.random.default_rng(seed)
    amounts = rng.uniform(0.2, 1.0, (n_patches, 50, 50, 2)) * [1.2, 0.8]
    amounts[rng.random(n_patches) < tumour_share, ..., 0] += 0.4
    kind = rng.random((n_patches, 50, 50))
    haematoxylin, eosin = kind < 0.05, (kind >= 0.05) & (kind < 0.10)
    amounts[haematoxylin] = np.column_stack(
        [rng.uniform(0.8, 1.6, haematoxylin.sum()), 0 * kind[haematoxylin]]
    )
    amounts[eosin] = np.column_stack([0 * kind[eosin], rng.uniform(1.2, 2.0, eosin.sum())])
    return amounts


def _stained(amounts, stains):
    """uint8 RGB patches drawn from stain amounts (Beer-Lambert)."""
    density = amounts @ np.asarray(stains).T
    return np.clip(np.rint(LIGHT_INTENSITY * np.exp(-density)), 0, 255).astype(np.uint8)


def _degrees_from(measured, stains):
    return np.degrees(np.arccos(np.clip((measured * stains).sum(axis=0), -1, 1)))


def test_measure_stains_finds_the_stains_whatever_the_share_of_tumour():
    for stains in (REFERENCE, OTHER):
        for share in (0.1, 0.5, 0.9):
            measured, _ = measure_stains(_stained(_amounts(12, share, 0), stains))
            # Haematoxylin first, each within a degree of the truth.
            np.testing.assert_array_less(_degrees_from(measured, stains), 1.0)


def test_the_same_tissue_stained_two_ways_comes_out_alike():
    amounts = _amounts(12, 0.5, 1)
    X = np.concatenate([_stained(amounts, REFERENCE), _stained(amounts, OTHER)])
    groups = np.array(["lab_a"] * 12 + ["lab_b"] * 12)

    def gap(Y):
        return np.abs(Y[:12].astype(int) - Y[12:].astype(int)).mean()

    Z = normalize_stains(X, groups)
    assert Z.dtype == np.uint8 and Z.shape == X.shape
    assert gap(X) > 10 and gap(Z) < 0.05 * gap(X)
    # Matching RGB statistics closes less than half of the gap here.
    assert gap(standardize_patients(X, groups)) > 0.4 * gap(X)


def test_normalized_stains_are_the_reference():
    Z = normalize_stains(_stained(_amounts(12, 0.7, 2), OTHER), ["p"] * 12)
    measured, max_concentrations = measure_stains(Z)
    np.testing.assert_array_less(_degrees_from(measured, REFERENCE), 1.0)
    np.testing.assert_allclose(max_concentrations, REFERENCE_MAX_CONCENTRATIONS, rtol=0.02)


def test_background_stays_white_and_patients_do_not_interact():
    X = np.concatenate(
        [_stained(_amounts(6, 0.5, 3), OTHER), _stained(_amounts(6, 0.2, 4), REFERENCE)]
    )
    X[0, :10] = 255
    groups = np.array(["a"] * 6 + ["b"] * 6)
    Z = normalize_stains(X, groups)
    assert Z[0, :10].min() >= 235
    np.testing.assert_array_equal(Z[6:], normalize_stains(X[6:], groups[6:]))


def test_other_dtypes_give_the_same_pixels():
    X = _stained(_amounts(4, 0.5, 5), OTHER)
    Z = normalize_stains(X, ["p"] * 4)
    np.testing.assert_array_equal(normalize_stains(X.astype(np.int64), ["p"] * 4), Z)
    as_float = normalize_stains(X.astype(np.float32), ["p"] * 4)
    assert as_float.dtype == np.float32
    np.testing.assert_allclose(as_float, Z, atol=0.5)


def test_a_patient_without_tissue_is_left_unchanged_and_named():
    X = np.concatenate(
        [_stained(_amounts(4, 0.5, 6), OTHER), np.full((2, 50, 50, 3), 250, np.uint8)]
    )
    groups = np.array(["stained"] * 4 + ["blank"] * 2)
    with pytest.warns(UserWarning, match=r"1 patient\(s\) left unchanged.*: blank$"):
        Z = normalize_stains(X, groups)
    np.testing.assert_array_equal(Z[4:], X[4:])
    assert not np.array_equal(Z[:4], X[:4])


def test_real_patients_come_out_with_the_reference_stains():
    bunch = load_sample()
    groups = np.asarray(bunch.groups)
    Z = normalize_stains(bunch.data, groups)
    before, after = [], []
    for patient in np.unique(groups):
        before.append(_degrees_from(measure_stains(bunch.data[groups == patient])[0], REFERENCE))
        after.append(_degrees_from(measure_stains(Z[groups == patient])[0], REFERENCE))
    assert np.mean(before) > 4.0
    assert np.mean(after) < 1.5 and np.max(after) < 7.0


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"stains": [[0.5, 0.2], [0.7, 0.8]]}, "stains must be 3 x 2"),
        ({"stains": [[0.5, -0.2], [0.7, 0.8], [0.4, 0.5]]}, "stains must be 3 x 2"),
        ({"max_concentrations": [1.0, 0.0]}, "max_concentrations 2 positive"),
    ],
)
def test_normalize_stains_refuses_bad_references(kwargs, message):
    X, groups = _casts()
    with pytest.raises(ValueError, match=message):
        normalize_stains(X, groups, **kwargs)


def test_normalize_stains_refuses_bad_patches():
    X, groups = _casts()
    with pytest.raises(ValueError, match="groups must hold one patient per patch"):
        normalize_stains(X, groups[:-1])
    with pytest.raises(ValueError, match="looks scaled to"):
        normalize_stains(X / 255.0, groups)
    with pytest.raises(ValueError, match=r"shape \(n, height, width, 3\)"):
        normalize_stains(X[..., 0], groups)
