"""Metrics: the evaluation report, threshold choice and thresholds at predict time."""

import json
import math

import numpy as np
import pytest
from _tiny import TINY_FIT
from sklearn.metrics import balanced_accuracy_score
from sklearn.model_selection import FixedThresholdClassifier, TunedThresholdClassifierCV

from idcclf.metrics import (
    choose_threshold,
    evaluation_report,
    format_report,
    patient_bootstrap,
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
    clf = IDCClassifier(**TINY_FIT).fit(bunch.data, bunch.target)
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


# ------------------------------------------------------------- one-class data


def test_one_class_data_leaves_the_undefined_metrics_undefined():
    no_idc = evaluation_report([0, 0, 0], [0.1, 0.7, 0.2])
    assert math.isnan(no_idc["sensitivity"]) and no_idc["specificity"] == pytest.approx(2 / 3)
    only_idc = evaluation_report([1, 1], [0.2, 0.9])
    assert math.isnan(only_idc["specificity"]) and only_idc["sensitivity"] == 0.5
    for report, missing in ((no_idc, "sensitivity"), (only_idc, "specificity")):
        for name in (missing, "balanced_accuracy", "roc_auc", "pr_auc"):
            assert json.loads(report_to_json(report))[name] is None
            assert f"{name:<18} n/a" in format_report(report)
    assert f"{'accuracy':<18} 0.6667" in format_report(no_idc)


# ------------------------------------------------------------- patient bootstrap


def _patients(n_patients, per_patient=40, seed=0):
    """A decent model on patients who differ: each has its own IDC share and offset."""
    rng = np.random.default_rng(seed)
    groups = np.repeat([f"p{i}" for i in range(n_patients)], per_patient)
    share = rng.uniform(0.1, 0.6, n_patients).repeat(per_patient)
    y = (rng.random(len(groups)) < share).astype(int)
    offset = rng.normal(0, 0.15, n_patients).repeat(per_patient)
    proba = np.clip(0.3 + 0.35 * y + offset + rng.normal(0, 0.2, len(y)), 0, 1)
    return y, proba, groups


def test_bootstrap_interval_holds_the_estimate():
    y, proba, groups = _patients(30)
    ci = patient_bootstrap(y, proba, groups, n_resamples=300)
    report = evaluation_report(y, proba)
    assert ci["n_patients"] == 30 and ci["n_resamples"] == 300 and ci["confidence"] == 0.95
    for name in ("balanced_accuracy", "roc_auc"):
        entry = ci[name]
        assert entry["estimate"] == pytest.approx(report[name])
        assert entry["low"] < entry["estimate"] < entry["high"]
        assert entry["n_valid"] == 300 and entry["n_skipped"] == 0
    again = patient_bootstrap(y, proba, groups, n_resamples=300)
    assert again == ci  # seeded
    wider = patient_bootstrap(y, proba, groups, n_resamples=300, confidence=0.99)
    assert wider["roc_auc"]["low"] <= ci["roc_auc"]["low"]
    assert wider["roc_auc"]["high"] >= ci["roc_auc"]["high"]


def test_bootstrap_interval_narrows_with_more_patients():
    def width(n_patients):
        ci = patient_bootstrap(*_patients(n_patients, seed=1), n_resamples=300)
        return ci["balanced_accuracy"]["high"] - ci["balanced_accuracy"]["low"]

    assert width(100) < 0.7 * width(10)


def test_bootstrap_resamples_patients_not_patches():
    # Two patients, one wrong on every patch: resampling patches would give an interval
    # of width about 0.1; drawing whole patients gives 0, 0.5 or 1 of the patches right.
    y = np.r_[np.zeros(200, dtype=int), np.ones(200, dtype=int)]
    proba = np.r_[np.full(200, 0.2), np.full(200, 0.3)]  # first right, second wrong
    groups = np.repeat(["a", "b"], 200)
    ci = patient_bootstrap(y, proba, groups, metrics=("accuracy",), n_resamples=400)
    assert ci["accuracy"]["estimate"] == 0.5
    assert ci["accuracy"]["low"] == 0.0 and ci["accuracy"]["high"] == 1.0


def test_bootstrap_skips_and_counts_resamples_without_both_classes():
    # One patient without IDC, one with IDC only: a resample drawing the same patient
    # twice (half of them) has no ROC AUC and no balanced accuracy.
    y = np.r_[np.zeros(10, dtype=int), np.ones(10, dtype=int)]
    proba = np.r_[np.linspace(0, 0.6, 10), np.linspace(0.4, 1, 10)]
    groups = np.repeat([1, 2], 10)
    metrics = ("roc_auc", "balanced_accuracy", "sensitivity")
    ci = patient_bootstrap(y, proba, groups, metrics=metrics, n_resamples=1000)
    for name in ("roc_auc", "balanced_accuracy"):
        assert ci[name]["n_valid"] + ci[name]["n_skipped"] == 1000
        assert 400 < ci[name]["n_skipped"] < 600
    # Sensitivity needs IDC only: undefined when patient 1 is drawn twice (a quarter).
    assert 150 < ci["sensitivity"]["n_skipped"] < 350


def test_bootstrap_of_one_patient_is_clear():
    both = patient_bootstrap([0, 1, 1], [0.2, 0.7, 0.4], ["a"] * 3, n_resamples=50)
    assert both["n_patients"] == 1
    auc = both["roc_auc"]
    assert auc["low"] == auc["high"] == auc["estimate"] == 1.0 and auc["n_skipped"] == 0
    one_class = patient_bootstrap([0, 0], [0.2, 0.7], ["a", "a"], n_resamples=50)
    auc = one_class["roc_auc"]
    assert math.isnan(auc["estimate"]) and math.isnan(auc["low"]) and math.isnan(auc["high"])
    assert auc["n_valid"] == 0 and auc["n_skipped"] == 50
    assert json.loads(report_to_json(one_class))["roc_auc"]["low"] is None


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"metrics": ("auc",)}, "metrics must be a sequence of accuracy, balanced_accuracy"),
        ({"metrics": "roc_auc"}, "metrics must be a sequence"),
        ({"n_resamples": 0}, "n_resamples"),
        ({"n_resamples": 2.5}, "n_resamples"),
        ({"confidence": 1.0}, "confidence"),
        ({"groups": ["a"]}, r"groups has shape \(1,\), but there are 8 samples"),
    ],
)
def test_bootstrap_bad_input(kwargs, match):
    args = {"groups": ["a", "b"] * 4, **kwargs}
    with pytest.raises(ValueError, match=match):
        patient_bootstrap(Y, P, **args)


# ------------------------------------------------------------- leakage guard

GROUPS = np.array(["a", "a", "b", "b", "a", "b", "c", "c"])  # patient of each of Y, P


def test_report_without_groups_keeps_its_keys():
    plain = evaluation_report(Y, P)
    assert set(evaluation_report(Y, P, groups=GROUPS)) == set(plain)
    assert set(evaluation_report(Y, P, training_groups=["a"])) == set(plain)


def test_no_shared_patient_no_warning(recwarn):
    report = evaluation_report(Y, P, groups=GROUPS, training_groups=["d", "e", "e"])
    assert report["training_patients_in_test"] == []
    assert "without_training_patients" not in report
    assert not [w for w in recwarn if issubclass(w.category, UserWarning)]


def test_shared_patients_are_named_and_left_out_of_a_second_report():
    with pytest.warns(
        UserWarning,
        match=r"2 of the 3 evaluated patients were also training "
        r"patients \(a, c\)",
    ):
        report = evaluation_report(Y, P, groups=GROUPS, training_groups=["c", "x", "a"])
    assert report["training_patients_in_test"] == ["a", "c"]
    clean = report["without_training_patients"]
    only_b = GROUPS == "b"
    expected = evaluation_report(Y[only_b], P[only_b])
    assert clean["n_patients"] == 1 and clean["n_samples"] == 3
    assert clean["confusion_matrix"] == expected["confusion_matrix"]
    assert clean["accuracy"] == expected["accuracy"]
    # Every figure of the full report is there, for the full data still.
    assert report["accuracy"] == evaluation_report(Y, P)["accuracy"]


def test_patient_ids_match_as_text_and_none_may_be_left():
    groups = np.array([8863, 8863, 8864, 8864] * 2)
    with pytest.warns(UserWarning, match="2 of the 2 evaluated patients"):
        report = evaluation_report(Y, P, groups=groups, training_groups=["8863", "8864"])
    assert report["without_training_patients"] is None
    assert json.loads(report_to_json(report))["without_training_patients"] is None


def test_many_shared_patients_are_named_up_to_ten():
    groups = np.array([f"p{i:02d}" for i in range(8)])
    with pytest.warns(UserWarning) as caught:
        evaluation_report(Y, P, groups=np.r_[groups[:4], groups[:4]], training_groups=groups)
    assert "p00, p01, p02, p03)" in str(caught[0].message)
    many = np.array([f"p{i:02d}" for i in range(12)])
    y, p = np.tile(Y, 2)[:12], np.tile(P, 2)[:12]
    with pytest.warns(UserWarning) as caught:
        evaluation_report(y, p, groups=many, training_groups=many)
    message = str(caught[0].message)
    assert "12 of the 12" in message and "p09, ...)" in message and "p10" not in message
