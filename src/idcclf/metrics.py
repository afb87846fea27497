"""Patch-level metrics: sensitivity, specificity, scorers and an evaluation report."""

from __future__ import annotations

import json

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    balanced_accuracy_score,
    classification_report,
    confusion_matrix,
    f1_score,
    make_scorer,
    precision_score,
    recall_score,
    roc_auc_score,
)


def sensitivity(y_true, y_pred, *, pos_label=1) -> float:
    """True positive rate: the share of IDC patches predicted IDC.

    Parameters
    ----------
    y_true, y_pred : array-like of shape (n_samples,)
        True and predicted labels.
    pos_label : label, default=1
        The IDC (positive) label.
    """
    return float(recall_score(y_true, y_pred, pos_label=pos_label, zero_division=0.0))


def specificity(y_true, y_pred, *, pos_label=1) -> float:
    """True negative rate: the share of non-IDC patches predicted non-IDC.

    Parameters
    ----------
    y_true, y_pred : array-like of shape (n_samples,)
        True and predicted labels.
    pos_label : label, default=1
        The IDC (positive) label; every other label counts as negative.
    """
    negatives = np.asarray(y_true) != pos_label
    if not negatives.any():
        return 0.0
    return float(np.mean(np.asarray(y_pred)[negatives] != pos_label))


#: Scorers for any scikit-learn search, e.g. ``scoring={"sens": sensitivity_scorer}``.
sensitivity_scorer = make_scorer(sensitivity)
specificity_scorer = make_scorer(specificity)


def evaluation_report(y_true, proba, *, threshold: float = 0.5, pos_label=1) -> dict:
    """Every headline metric of a binary IDC classifier.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        True labels.
    proba : array-like of shape (n_samples,) or (n_samples, 2)
        Probability of the positive class, or ``predict_proba`` output whose last
        column is the positive class.
    threshold : float, default=0.5
        A patch is predicted positive when its probability is at least this.
    pos_label : label, default=1
        The IDC (positive) label.

    Returns
    -------
    dict
        ``accuracy``, ``balanced_accuracy``, ``sensitivity``, ``specificity``,
        ``precision``, ``f1``, ``roc_auc``, ``pr_auc`` (floats; the AUCs are NaN when
        ``y_true`` has one class), ``confusion_matrix`` (2x2 list, rows true
        negative/positive), ``n_samples``, ``threshold`` and ``classification_report``
        (text).
    """
    y_true = np.asarray(y_true)
    proba = np.asarray(proba, dtype=float)
    if proba.ndim == 2:
        proba = proba[:, -1]
    if proba.shape != y_true.shape:
        raise ValueError(f"proba has shape {proba.shape} but y_true has shape {y_true.shape}")
    positive = y_true == pos_label
    predicted = proba >= threshold
    both_classes = 0 < positive.sum() < len(positive)
    report = {
        "n_samples": int(len(y_true)),
        "threshold": float(threshold),
        "accuracy": float(accuracy_score(positive, predicted)),
        "balanced_accuracy": float(balanced_accuracy_score(positive, predicted))
        if both_classes
        else float("nan"),
        "sensitivity": sensitivity(positive, predicted, pos_label=True),
        "specificity": specificity(positive, predicted, pos_label=True),
        "precision": float(precision_score(positive, predicted, zero_division=0.0)),
        "f1": float(f1_score(positive, predicted, zero_division=0.0)),
        "roc_auc": float(roc_auc_score(positive, proba)) if both_classes else float("nan"),
        "pr_auc": float(average_precision_score(positive, proba)) if both_classes else float("nan"),
        "confusion_matrix": confusion_matrix(positive, predicted, labels=[False, True]).tolist(),
        "classification_report": classification_report(
            positive,
            predicted,
            labels=[False, True],
            target_names=["no IDC", "IDC"],
            zero_division=0.0,
        ),
    }
    return report


HEADLINE = ("accuracy", "balanced_accuracy", "sensitivity", "specificity", "f1", "roc_auc")


def format_report(report: dict) -> str:
    """Render :func:`evaluation_report` output as readable text."""
    lines = [f"{name:<18} {report[name]:.4f}" for name in (*HEADLINE, "precision", "pr_auc")]
    (tn, fp), (fn, tp) = report["confusion_matrix"]
    lines += [
        f"{'threshold':<18} {report['threshold']:.4f}",
        f"{'patches':<18} {report['n_samples']}",
        "",
        "confusion matrix (rows: true, columns: predicted)",
        f"{'':>10}{'no IDC':>10}{'IDC':>10}",
        f"{'no IDC':>10}{tn:>10}{fp:>10}",
        f"{'IDC':>10}{fn:>10}{tp:>10}",
        "",
        report["classification_report"],
    ]
    return "\n".join(lines)


def report_to_json(report: dict) -> str:
    """Serialize :func:`evaluation_report` output (NaN becomes null)."""
    clean = {
        key: (None if isinstance(value, float) and np.isnan(value) else value)
        for key, value in report.items()
    }
    return json.dumps(clean, indent=2)
