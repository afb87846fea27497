"""Patch-level metrics: sensitivity, specificity, scorers, an evaluation report and
the choice of a decision threshold.

To predict with a threshold other than 0.5, wrap a fitted classifier in scikit-learn's
``FixedThresholdClassifier(clf, threshold=t, response_method="predict_proba")``, or
tune it with ``TunedThresholdClassifierCV`` and one of the scorers below (or
``"balanced_accuracy"``); see ``docs/evaluation.md``.
"""

from __future__ import annotations

import json
import math

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
    roc_curve,
)

from ._format import format_value


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
    positive, proba = _binary_inputs(y_true, proba, pos_label)
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
    """Render :func:`evaluation_report` output as readable text (undefined metrics: n/a)."""
    names = (*HEADLINE, "precision", "pr_auc")
    lines = [f"{name:<18} {format_value(report[name], 4)}" for name in names]
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
    """Serialize :func:`evaluation_report` output (NaN becomes null).

    Nested dicts and lists (e.g. the rows of :func:`idcclf.slides.patient_table`)
    and NumPy scalars are converted too, so the result is always strict JSON.
    """
    return json.dumps(_json_clean(report), indent=2, allow_nan=False)


def _json_clean(value):
    if isinstance(value, dict):
        return {key: _json_clean(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_clean(item) for item in value]
    if isinstance(value, np.ndarray):
        return _json_clean(value.tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def choose_threshold(
    y_true, proba, *, target_sensitivity: float | None = None, pos_label=1
) -> float:
    """Choose a decision threshold on validation data.

    A patch is called IDC when its probability is at least the threshold, as in
    :func:`evaluation_report` and scikit-learn's ``FixedThresholdClassifier``.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        True labels of validation patches; both classes must be present.
    proba : array-like of shape (n_samples,) or (n_samples, 2)
        Probability of the positive class, or ``predict_proba`` output whose last
        column is the positive class.
    target_sensitivity : float in (0, 1] or None, default=None
        With a value, return the highest threshold whose sensitivity on this data
        reaches it (the most specific operating point that still finds that share of
        the IDC patches). Without, return the threshold maximizing balanced accuracy
        (the mean of sensitivity and specificity); ties go to the highest threshold.
    pos_label : label, default=1
        The IDC (positive) label.

    Returns
    -------
    float
        One of the probabilities in ``proba``, so that the choice is exact on this
        data: any threshold between it and the next lower probability predicts the
        same.

    Raises
    ------
    ValueError
        If ``y_true`` lacks a class, the shapes disagree, or ``target_sensitivity``
        is outside (0, 1].

    Examples
    --------
    >>> choose_threshold([0, 0, 1, 1], [0.1, 0.6, 0.4, 0.9])
    0.9
    >>> choose_threshold([0, 0, 1, 1], [0.1, 0.6, 0.4, 0.9], target_sensitivity=1.0)
    0.4
    """
    positive, proba = _binary_inputs(y_true, proba, pos_label)
    if not 0 < positive.sum() < len(positive):
        raise ValueError(
            "choose_threshold needs validation data with both classes, got "
            f"{int(positive.sum())} positive of {len(positive)} samples"
        )
    if target_sensitivity is not None:
        if not 0.0 < target_sensitivity <= 1.0:
            raise ValueError(f"target_sensitivity must be in (0, 1], got {target_sensitivity!r}")
        scores = np.sort(proba[positive])[::-1]
        # The k-th highest positive score keeps k positives at or above it. The small
        # tolerance keeps e.g. 0.9 * 10 = 9.000000000000002 from demanding 10 of 10.
        k = max(1, math.ceil(target_sensitivity * len(scores) - 1e-9))
        return float(scores[k - 1])
    fpr, tpr, thresholds = roc_curve(positive, proba, drop_intermediate=False)
    # thresholds[0] is +inf (nothing predicted positive); its balanced accuracy is 0.5,
    # never more than that of the lowest score (everything positive), so skip it.
    balanced = (tpr[1:] + 1.0 - fpr[1:]) / 2.0
    return float(thresholds[1:][int(np.argmax(balanced))])


def _binary_inputs(y_true, proba, pos_label) -> tuple[np.ndarray, np.ndarray]:
    """Positive mask and 1-D positive-class probabilities, checked to match."""
    y_true = np.asarray(y_true)
    proba = np.asarray(proba, dtype=float)
    if proba.ndim == 2:
        proba = proba[:, -1]
    if proba.shape != y_true.shape:
        raise ValueError(f"proba has shape {proba.shape} but y_true has shape {y_true.shape}")
    return y_true == pos_label, proba
