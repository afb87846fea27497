"""idcclf._resample: metrics weighted by patient equal the metrics of repeated patients."""

import numpy as np
import pytest

from idcclf._resample import weighted_metrics
from idcclf.metrics import BOOTSTRAP_METRICS, evaluation_report


def test_weights_count_as_repeated_patients():
    rng = np.random.default_rng(3)
    patient_of = rng.integers(0, 6, 120)
    positive = rng.random(120) < 0.4
    # Rounded: many patches share a score, so ties are handled as scikit-learn does.
    proba = np.round(np.clip(0.3 * positive + rng.random(120) * 0.7, 0, 1), 1)
    weights = np.array([[1, 1, 1, 1, 1, 1], [2, 0, 1, 0, 3, 1], [0, 0, 0, 4, 0, 1]])
    values = weighted_metrics(BOOTSTRAP_METRICS, positive, proba >= 0.5, proba, patient_of, weights)
    for row, counts in enumerate(weights):
        # The resample written out: every patch of a patient drawn k times, k times.
        index = np.concatenate(
            [np.flatnonzero(patient_of == p).repeat(k) for p, k in enumerate(counts)]
        )
        report = evaluation_report(positive[index].astype(int), proba[index])
        for name in BOOTSTRAP_METRICS:
            assert values[name][row] == pytest.approx(report[name], nan_ok=True), (row, name)


def test_a_row_with_one_class_is_nan_for_the_ranking_metrics():
    positive = np.array([False, False, True, True])
    proba = np.array([0.1, 0.6, 0.4, 0.9])
    patient_of = np.array([0, 0, 1, 1])
    values = weighted_metrics(
        ("roc_auc", "pr_auc", "sensitivity", "specificity"),
        positive,
        proba >= 0.5,
        proba,
        patient_of,
        np.array([[2, 0], [1, 1]]),
    )
    assert np.isnan(values["roc_auc"][0]) and np.isnan(values["pr_auc"][0])
    assert np.isnan(values["sensitivity"][0]) and values["specificity"][0] == 0.5
    assert values["roc_auc"][1] == 0.75
