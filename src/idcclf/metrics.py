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
import numbers
import warnings

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
from ._resample import patient_draw_weights, weighted_metrics


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


def evaluation_report(
    y_true,
    proba,
    *,
    threshold: float = 0.5,
    pos_label=1,
    groups=None,
    training_groups=None,
) -> dict:
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
    groups : array-like of shape (n_samples,) or None, default=None
        Patient of each patch; used with ``training_groups`` only.
    training_groups : array-like or None, default=None
        Patients the model was trained on (e.g. the groups of its training patches,
        repeats allowed). With ``groups``, a patient on both sides is a leak:
        a ``UserWarning`` names them, and the report also holds the figures without
        them. Patients are compared as text, so ``8863`` matches ``'8863'``.

    Returns
    -------
    dict
        ``accuracy``, ``balanced_accuracy``, ``sensitivity``, ``specificity``,
        ``precision``, ``f1``, ``roc_auc``, ``pr_auc`` (floats), ``confusion_matrix``
        (2x2 list, rows true negative/positive), ``n_samples``, ``threshold`` and
        ``classification_report`` (text). Metrics undefined on the data are NaN
        (``n/a`` in :func:`format_report`, null in :func:`report_to_json`):
        sensitivity without IDC patches, specificity without non-IDC patches, and
        balanced accuracy and both AUCs when one class is missing.

        With both ``groups`` and ``training_groups``, also
        ``training_patients_in_test`` (sorted list of the patients on both sides,
        often empty) and, when it is not empty, ``without_training_patients``: the
        same figures on the other patients' patches plus ``n_patients``, or None
        when no patient is left.
    """
    positive, proba = _binary_inputs(y_true, proba, pos_label)
    report = _report(positive, proba, threshold)
    if groups is not None and training_groups is not None:
        report.update(_leakage_check(positive, proba, threshold, groups, training_groups))
    return report


def _report(positive: np.ndarray, proba: np.ndarray, threshold: float) -> dict:
    """The figures of :func:`evaluation_report` for a positive mask and probabilities."""
    predicted = proba >= threshold
    has_pos, has_neg = bool(positive.any()), bool((~positive).any())
    both_classes = has_pos and has_neg
    nan = float("nan")
    return {
        "n_samples": int(len(positive)),
        "threshold": float(threshold),
        "accuracy": float(accuracy_score(positive, predicted)),
        "balanced_accuracy": float(balanced_accuracy_score(positive, predicted))
        if both_classes
        else nan,
        "sensitivity": sensitivity(positive, predicted, pos_label=True) if has_pos else nan,
        "specificity": specificity(positive, predicted, pos_label=True) if has_neg else nan,
        "precision": float(precision_score(positive, predicted, zero_division=0.0)),
        "f1": float(f1_score(positive, predicted, zero_division=0.0)),
        "roc_auc": float(roc_auc_score(positive, proba)) if both_classes else nan,
        "pr_auc": float(average_precision_score(positive, proba)) if both_classes else nan,
        "confusion_matrix": confusion_matrix(positive, predicted, labels=[False, True]).tolist(),
        "classification_report": classification_report(
            positive,
            predicted,
            labels=[False, True],
            target_names=["no IDC", "IDC"],
            zero_division=0.0,
        ),
    }


def _leakage_check(positive, proba, threshold, groups, training_groups) -> dict:
    """Patients both evaluated and trained on: a warning, and the figures without them."""
    groups = _check_group_shape(groups, len(positive)).astype(str)
    overlap = np.intersect1d(groups, np.asarray(training_groups).astype(str).ravel())
    found = {"training_patients_in_test": overlap.tolist()}
    if not overlap.size:
        return found
    n_patients = np.unique(groups).size
    named = ", ".join(overlap[:10]) + (", ..." if overlap.size > 10 else "")
    warnings.warn(
        f"{overlap.size} of the {n_patients} evaluated patients were also training "
        f"patients ({named}); scores on their patches overstate how the model does on new "
        "patients. report['without_training_patients'] holds the figures without them.",
        UserWarning,
        stacklevel=3,
    )
    keep = ~np.isin(groups, overlap)
    clean = None
    if keep.any():
        clean = _report(positive[keep], proba[keep], threshold)
        clean["n_patients"] = int(np.unique(groups[keep]).size)
    return {**found, "without_training_patients": clean}


def _check_group_shape(groups, n_samples: int) -> np.ndarray:
    """``groups`` as an array of one patient id per sample, else a ValueError."""
    groups = np.asarray(groups)
    if groups.shape != (n_samples,):
        raise ValueError(
            f"groups has shape {groups.shape}, but there are {n_samples} samples; pass one "
            "patient id per sample"
        )
    return groups


#: Metrics :func:`patient_bootstrap` can put an interval on.
BOOTSTRAP_METRICS = (
    "accuracy",
    "balanced_accuracy",
    "sensitivity",
    "specificity",
    "precision",
    "f1",
    "roc_auc",
    "pr_auc",
)


def patient_bootstrap(
    y_true,
    proba,
    groups,
    *,
    metrics=("balanced_accuracy", "roc_auc"),
    n_resamples: int = 1000,
    confidence: float = 0.95,
    random_state: int | None = 0,
    threshold: float = 0.5,
    pos_label=1,
) -> dict:
    """Percentile confidence intervals of metrics, resampling patients rather than patches.

    Patches of one patient are alike, so resampling patches would treat thousands of
    correlated patches as independent and give intervals far too narrow. Each
    resample draws as many patients as there are, with replacement, and keeps all the
    patches of every patient drawn (a patient drawn twice counts twice).

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        True labels.
    proba : array-like of shape (n_samples,) or (n_samples, 2)
        Probability of IDC, or ``predict_proba`` output (last column is IDC).
    groups : array-like of shape (n_samples,)
        Patient of each patch.
    metrics : sequence of str, default=('balanced_accuracy', 'roc_auc')
        Any of :data:`BOOTSTRAP_METRICS`, defined as in :func:`evaluation_report`.
    n_resamples : int, default=1000
        Resamples of the patients.
    confidence : float in (0, 1), default=0.95
        The interval runs from the ``(1 - confidence) / 2`` to the
        ``(1 + confidence) / 2`` quantile of the resampled values.
    random_state : int or None, default=0
        Seed of the resampling.
    threshold : float, default=0.5
        Decision threshold of the threshold metrics (all but the AUCs), as in
        :func:`evaluation_report`.
    pos_label : label, default=1
        The IDC (positive) label.

    Returns
    -------
    dict
        Per metric a dict: ``estimate`` (on the data as given), ``low`` and ``high``
        (the interval; NaN when no resample defines the metric), ``n_valid`` and
        ``n_skipped`` (resamples where the metric is undefined, e.g. ROC AUC when the
        patients drawn have one class only; they are left out). Also ``n_patients``,
        ``n_resamples``, ``confidence`` and ``threshold``.

    Raises
    ------
    ValueError
        For an unknown metric (naming the known ones), ``n_resamples`` below 1,
        ``confidence`` outside (0, 1), or shapes that disagree.

    Notes
    -----
    With few patients the interval is rough: with one patient every resample is that
    patient, and the interval has no width (or is NaN when the patient has one class).

    Examples
    --------
    >>> ci = patient_bootstrap([0, 1, 0, 1], [0.2, 0.9, 0.4, 0.6], ["a", "a", "b", "b"],
    ...                        n_resamples=200)
    >>> ci["n_patients"], ci["roc_auc"]["estimate"], ci["roc_auc"]["low"]
    (2, 1.0, 1.0)
    """
    unknown = [m for m in metrics if m not in BOOTSTRAP_METRICS]
    if unknown or isinstance(metrics, str):
        raise ValueError(
            f"metrics must be a sequence of {', '.join(BOOTSTRAP_METRICS)}; got {metrics!r}"
        )
    integral = isinstance(n_resamples, numbers.Integral) and not isinstance(n_resamples, bool)
    if not integral or n_resamples < 1:
        raise ValueError(f"n_resamples must be an integer of at least 1, got {n_resamples!r}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")
    positive, proba = _binary_inputs(y_true, proba, pos_label)
    patients, patient_of = np.unique(_check_group_shape(groups, len(positive)), return_inverse=True)
    weights = patient_draw_weights(len(patients), n_resamples, random_state)
    values = weighted_metrics(metrics, positive, proba >= threshold, proba, patient_of, weights)
    tail = 50.0 * (1.0 - confidence)
    result: dict = {}
    for name, column in values.items():
        resampled = column[1:][~np.isnan(column[1:])]
        low, high = (np.nan, np.nan)
        if resampled.size:
            low, high = np.percentile(resampled, [tail, 100.0 - tail])
        result[name] = {
            "estimate": float(column[0]),
            "low": float(low),
            "high": float(high),
            "n_valid": int(resampled.size),
            "n_skipped": int(n_resamples - resampled.size),
        }
    return {
        **result,
        "n_patients": int(len(patients)),
        "n_resamples": int(n_resamples),
        "confidence": float(confidence),
        "threshold": float(threshold),
    }


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
