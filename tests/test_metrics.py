"""Metrics: the evaluation report, threshold choice and thresholds at predict time."""

import json
import math

import numpy as np
import pytest
from sklearn.metrics import balanced_accuracy_score
from sklearn.model_selection import FixedThresholdClassifier, TunedThresholdClassifierCV

from idcclf.metrics import (
    choose_threshold,
    evaluation_report,
    format_report,
    report_to_json,
    sensitivity,
    sensitivity_scorer,
    specificity,
)

# 4 negatives, 4 positives; worked by hand in the tests below.
Y = np.array([0, 0, 0, 0, 1, 1, 1, 1])
P = np.array([0.10, 0.20, 0.30, 0.65, 0.40, 0.70, 0.80, 0.90])


def test_sensitivity_and_specificity_by_hand():
    y_pred = (P >= 0.5).astype(int)  # [0 0 0 1 | 0 1 1 1]
    assert sensitivity(Y, y_pred) == pytest.approx(3 / 4)
    assert specificity(Y, y_pred) == pytest.approx(3 / 4)


def test_report_numbers_and_json():
    report = evaluation_report(Y, P, threshold=0.5)
    assert report["confusion_matrix"] == [[3, 1], [1, 3]]
    assert report["balanced_accuracy"] == pytest.approx(0.75)
    # 15 of the 16 (positive, negative) pairs are ranked right: only 0.40 < 0.65.
    assert report["roc_auc"] == pytest.approx(15 / 16)
    assert "balanced_accuracy" in format_report(report)
    one_class = evaluation_report([1, 1], [0.2, 0.9])
    parsed = json.loads(report_to_json({**one_class, "nested": [{"x": float("nan")}]}))
    assert parsed["roc_auc"] is None and parsed["nested"] == [{"x": None}]


def test_choose_threshold_maximizes_balanced_accuracy():
    # Candidate thresholds and their balanced accuracy (sens, spec):
    # 0.9 (.25, 1) .625; 0.8 (.5, 1) .75; 0.7 (.75, 1) .875; 0.65 (.75, .75) .75;
    # 0.4 (1, .75) .875; 0.3 (1, .5) .75 ... ties go to the highest: 0.7.
    assert choose_threshold(Y, P) == pytest.approx(0.70)
    # Without the tie: the lowest positive moves below a second negative.
    p = P.copy()
    p[4] = 0.25
    assert choose_threshold(Y, p) == pytest.approx(0.70)
    p = P.copy()
    p[5] = 0.35  # 0.7 is gone; 0.35 keeps 4/4 positives and 3/4 negatives: .875
    assert choose_threshold(Y, p) == pytest.approx(0.35)
    best = choose_threshold(Y, p)
    for t in np.unique(p):
        assert balanced_accuracy_score(Y, p >= t) <= balanced_accuracy_score(Y, p >= best)


@pytest.mark.parametrize(
    ("target", "expected"),
    [(1.0, 0.40), (0.75, 0.70), (0.6, 0.70), (0.5, 0.80), (0.25, 0.90), (0.01, 0.90)],
)
def test_choose_threshold_for_a_target_sensitivity(target, expected):
    threshold = choose_threshold(Y, P, target_sensitivity=target)
    assert threshold == pytest.approx(expected)
    assert sensitivity(Y, P >= threshold, pos_label=True) >= target
    # Any higher threshold misses the target: this is the highest that reaches it.
    above = P[P > threshold]
    if above.size:
        assert sensitivity(Y, P >= above.min(), pos_label=True) < target


def test_target_sensitivity_is_not_fooled_by_rounding():
    # 0.9 * 10 is 9.000000000000002 in floating point: 9 of 10 positives must suffice.
    y = np.r_[np.zeros(5), np.ones(10)]
    p = np.r_[np.full(5, 0.05), np.linspace(0.1, 1.0, 10)]
    assert choose_threshold(y, p, target_sensitivity=0.9) == pytest.approx(0.2)


def test_choose_threshold_accepts_predict_proba_and_labels():
    proba = np.c_[1 - P, P]
    labels = np.where(Y == 1, "IDC", "no IDC")
    assert choose_threshold(labels, proba, pos_label="IDC") == pytest.approx(0.70)


@pytest.mark.parametrize(
    ("y", "p", "kwargs", "match"),
    [
        ([1, 1], [0.2, 0.3], {}, "both classes"),
        ([0, 1], [0.2], {}, "shape"),
        ([0, 1], [0.2, 0.3], {"target_sensitivity": 0.0}, "target_sensitivity"),
        ([0, 1], [0.2, 0.3], {"target_sensitivity": 1.5}, "target_sensitivity"),
    ],
)
def test_choose_threshold_bad_input(y, p, kwargs, match):
    with pytest.raises(ValueError, match=match):
        choose_threshold(y, p, **kwargs)


# ------------------------------------------------- thresholds with scikit-learn


@pytest.fixture(scope="module")
def fitted():
    from idcclf import IDCClassifier, load_sample

    bunch = load_sample(patients=["8863"])
    clf = IDCClassifier(
        filters=(4, 8, 8),
        dense_units=8,
        epochs=1,
        augment=False,
        validation_fraction=0,
        random_state=0,
    ).fit(bunch.data, bunch.target)
    return clf, bunch.data, bunch.target


def test_fixed_threshold_classifier_uses_the_threshold(fitted):
    clf, X, y = fitted
    proba = clf.predict_proba(X)[:, 1]
    threshold = float(np.median(proba))
    wrapped = FixedThresholdClassifier(clf, threshold=threshold, response_method="predict_proba")
    # A fitted classifier needs no refit: the wrapper predicts with it at once.
    np.testing.assert_array_equal(wrapped.predict(X), (proba >= threshold).astype(int))
    np.testing.assert_array_equal(
        FixedThresholdClassifier(clf, threshold=0.5, response_method="predict_proba").predict(X),
        clf.predict(X),
    )


def test_tuned_threshold_never_beats_choose_threshold_on_the_same_data(fitted):
    clf, X, y = fitted
    tuned = TunedThresholdClassifierCV(
        clf, scoring="balanced_accuracy", cv="prefit", refit=False
    ).fit(X, y)
    proba = clf.predict_proba(X)[:, 1]
    ours = choose_threshold(y, proba)
    # choose_threshold searches every distinct score, the tuner a grid of 100.
    assert balanced_accuracy_score(y, proba >= ours) >= tuned.best_score_ - 1e-12
    assert math.isfinite(tuned.best_threshold_)
    tuned_sens = TunedThresholdClassifierCV(
        clf, scoring=sensitivity_scorer, cv="prefit", refit=False
    ).fit(X, y)
    assert tuned_sens.best_score_ == pytest.approx(1.0)
