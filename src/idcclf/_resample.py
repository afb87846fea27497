"""Metrics of patches weighted by how often their patient was drawn: the arithmetic of
:func:`idcclf.metrics.patient_bootstrap`, one resample per row of weights.

A patient drawn k times counts as k copies of its patches; ``tests/test_resample.py``
checks every metric against :func:`idcclf.metrics.evaluation_report` on the copies.
"""

from __future__ import annotations

import numpy as np


def patient_draw_weights(n_patients: int, n_resamples: int, random_state) -> np.ndarray:
    """How often each patient is drawn: row 0 the data as given, then one row per resample."""
    rng = np.random.default_rng(random_state)
    draws = rng.integers(0, n_patients, size=(n_resamples, n_patients))
    offsets = (np.arange(n_resamples) * n_patients)[:, None]
    counts = np.bincount((draws + offsets).ravel(), minlength=n_resamples * n_patients)
    return np.vstack([np.ones(n_patients), counts.reshape(n_resamples, n_patients)])


def weighted_metrics(names, positive, predicted, proba, patient_of, weights) -> dict:
    """Each metric for each row of per-patient ``weights``; NaN where it is undefined."""
    n_patients = weights.shape[1]
    # Per patient: true positives, false negatives, false positives, true negatives.
    per_patient = np.stack(
        [
            np.bincount(patient_of, weights=mask, minlength=n_patients)
            for mask in (
                positive & predicted,
                positive & ~predicted,
                ~positive & predicted,
                ~positive & ~predicted,
            )
        ],
        axis=1,
    )
    tp, fn, fp, tn = (weights @ per_patient).T
    with np.errstate(invalid="ignore", divide="ignore"):
        sens = np.where(tp + fn > 0, tp / (tp + fn), np.nan)
        spec = np.where(tn + fp > 0, tn / (tn + fp), np.nan)
        table = {
            "accuracy": (tp + tn) / (tp + fn + fp + tn),
            "balanced_accuracy": (sens + spec) / 2.0,
            "sensitivity": sens,
            "specificity": spec,
            # Zero when nothing is predicted IDC / nothing is IDC, as in evaluation_report.
            "precision": np.where(tp + fp > 0, tp / (tp + fp), 0.0),
            "f1": np.where(2 * tp + fp + fn > 0, 2 * tp / (2 * tp + fp + fn), 0.0),
        }
    ranking = [name for name in ("roc_auc", "pr_auc") if name in names]
    if ranking:
        table.update(_ranking_metrics(positive, proba, patient_of, weights))
    return {name: table[name] for name in names}


def _ranking_metrics(positive, proba, patient_of, weights) -> dict[str, np.ndarray]:
    """ROC AUC and average precision per row of patient weights; NaN without both classes.

    Both depend only on the weight of each class at each distinct score, so a row costs
    two ``bincount`` calls instead of a sort (as ``roc_auc_score`` would do).
    """
    distinct, score_of = np.unique(proba, return_inverse=True)
    auc = np.full(len(weights), np.nan)
    ap = np.full(len(weights), np.nan)
    for i, row in enumerate(weights):
        weight = row[patient_of]
        pos = np.bincount(score_of, weights=weight * positive, minlength=distinct.size)
        neg = np.bincount(score_of, weights=weight * ~positive, minlength=distinct.size)
        n_pos, n_neg = pos.sum(), neg.sum()
        if n_pos == 0 or n_neg == 0:
            continue
        # A positive beats the negatives below its score and ties with half of its own.
        auc[i] = (pos * (np.cumsum(neg) - neg / 2)).sum() / (n_pos * n_neg)
        # Average precision: precision at each score, weighted by the recall it adds.
        tp, fp = np.cumsum(pos[::-1]), np.cumsum(neg[::-1])
        called = tp + fp
        precision = np.divide(tp, called, out=np.zeros_like(tp), where=called > 0)
        ap[i] = (pos[::-1] * precision).sum() / n_pos
    return {"roc_auc": auc, "pr_auc": ap}
