"""What IDCClassifier.fit trains on: the validation split, weights and subsets."""

import numpy as np
import pytest

from idcclf._training import random_subset, training_weights, validation_split


def test_validation_split_is_grouped_by_patient(tiny_classifier, tiny_sample):
    X, y, groups = tiny_sample
    held_out = set(tiny_classifier.validation_groups_)
    assert 0 < len(held_out) < len(np.unique(groups))
    train, val = validation_split(y, groups, tiny_classifier.validation_fraction, 0)
    assert set(groups[train]).isdisjoint(groups[val])
    assert set(groups[val]) == held_out


def test_validation_split_without_groups_is_stratified(tiny_sample):
    _, y, _ = tiny_sample
    train, val = validation_split(y, None, 0.25, 0)
    assert len(val) == pytest.approx(0.25 * len(y), abs=1)
    assert y[val].mean() == pytest.approx(y.mean(), abs=0.02)
    assert len(np.intersect1d(train, val)) == 0


def test_class_weight_balanced_and_dict(tiny_sample):
    _, y, _ = tiny_sample
    classes = np.array([0, 1])
    weights = training_weights(classes, y.astype(float), None, "balanced")
    n, n_pos = len(y), y.sum()
    assert weights[y == 1][0] == pytest.approx(n / (2 * n_pos))
    assert weights[y == 0][0] == pytest.approx(n / (2 * (n - n_pos)))
    weights = training_weights(classes, y.astype(float), np.full(len(y), 2.0), {0: 1.0, 1: 3.0})
    assert set(np.unique(weights)) == {2.0, 6.0}


def test_validation_split_by_patient_needs_two_patients():
    y = np.array([0, 1] * 10)
    with pytest.raises(ValueError, match="at least 2 distinct groups"):
        validation_split(y, np.zeros(20), 0.2, 0)
    train, val = validation_split(y, None, 0.0, 0)
    assert val is None and len(train) == 20


def test_validation_split_too_small_says_so():
    with pytest.raises(ValueError, match="validation_fraction=0.1 of 4 samples"):
        validation_split(np.array([0, 0, 0, 1]), None, 0.1, 0)


def test_random_subset_keeps_order_and_is_seeded():
    X = np.arange(100)[:, None]
    subset = random_subset(X, 10, seed=3)
    assert len(subset) == 10 and np.all(np.diff(subset[:, 0]) > 0)
    np.testing.assert_array_equal(subset, random_subset(X, 10, seed=3))
    np.testing.assert_array_equal(random_subset(X, 1000, seed=3), X)
