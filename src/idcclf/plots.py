"""Plots written as PNG files; no display is needed."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import matplotlib
import numpy as np

matplotlib.use("Agg")  # write files on headless machines; never open a window
import matplotlib.pyplot as plt  # noqa: E402

from ._io import atomic_path  # noqa: E402

CLASS_NAMES = ("no IDC", "IDC")


def plot_training_curves(history: dict, path: str | Path, *, title: str = "Training") -> Path:
    """Plot loss and accuracy per epoch, training vs validation, as the tutorial does.

    Parameters
    ----------
    history : dict of str to list of float
        ``IDCClassifier.history_``: ``loss``, ``accuracy`` and optionally
        ``val_loss``, ``val_accuracy``.
    path : str or Path
        PNG file to write (atomically).
    title : str, default='Training'
        Figure title.

    Returns
    -------
    Path
        The file written.
    """
    if not history.get("loss"):
        raise ValueError("history has no 'loss' values to plot; was the model fitted?")
    epochs = range(1, len(history["loss"]) + 1)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for key, label in [
        ("loss", "train loss"),
        ("val_loss", "validation loss"),
        ("accuracy", "train accuracy"),
        ("val_accuracy", "validation accuracy"),
    ]:
        if key in history:
            ax.plot(epochs, history[key], label=label, linestyle="--" if "val" in key else "-")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss / accuracy")
    ax.set_title(title)
    ax.legend(loc="best")
    ax.grid(alpha=0.3)
    return _save(fig, path)


def plot_confusion_matrix(
    y_true,
    y_pred=None,
    path: str | Path | None = None,
    *,
    pos_label=1,
    title: str = "Confusion matrix",
) -> Path:
    """Plot the 2x2 confusion matrix with counts and shares of each true class.

    Call it with labels, ``plot_confusion_matrix(y_true, y_pred, path)``, or with a
    report, ``plot_confusion_matrix(report, path)``.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,) or dict
        True labels, or the output of :func:`idcclf.metrics.evaluation_report`
        (its ``confusion_matrix`` and ``threshold`` are used).
    y_pred : array-like of shape (n_samples,), str or Path
        Predicted labels; with a report, the PNG path instead.
    path : str or Path
        PNG file to write (atomically), unless given as ``y_pred``.
    pos_label : label, default=1
        The IDC (positive) label; every other label counts as no IDC.
    title : str, default='Confusion matrix'
        Figure title; with a report, the threshold is appended.

    Returns
    -------
    Path
        The file written.
    """
    if isinstance(y_true, Mapping):
        if path is None and isinstance(y_pred, (str, Path)):
            y_pred, path = None, y_pred
        if y_pred is not None:
            raise TypeError("with a report, call plot_confusion_matrix(report, path)")
        matrix = np.asarray(y_true["confusion_matrix"], dtype=np.int64)
        if "threshold" in y_true:
            title = f"{title} (threshold {y_true['threshold']:.3g})"
    else:
        if y_pred is None:
            raise TypeError("plot_confusion_matrix needs y_pred, or a report as first argument")
        y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
        if y_true.shape != y_pred.shape:
            raise ValueError(f"y_pred has shape {y_pred.shape} but y_true has shape {y_true.shape}")
        truth, predicted = (y_true == pos_label).astype(int), (y_pred == pos_label).astype(int)
        matrix = np.zeros((2, 2), dtype=np.int64)
        np.add.at(matrix, (truth, predicted), 1)
    if path is None:
        raise TypeError("plot_confusion_matrix needs the path of the PNG file to write")
    if matrix.shape != (2, 2):
        raise ValueError(f"expected a 2x2 confusion matrix, got shape {matrix.shape}")

    row_totals = matrix.sum(axis=1, keepdims=True)
    shares = np.divide(matrix, row_totals, out=np.zeros((2, 2)), where=row_totals > 0)
    fig, ax = plt.subplots(figsize=(4.8, 4.2))
    # Colour by share of the true class, so a rare class's errors are as visible as
    # the common class's.
    image = ax.imshow(shares, cmap="Blues", vmin=0.0, vmax=1.0)
    for (i, j), count in np.ndenumerate(matrix):
        ax.text(
            j,
            i,
            f"{count}\n{shares[i, j]:.1%}",
            ha="center",
            va="center",
            color="white" if shares[i, j] > 0.5 else "black",
        )
    ax.set_xticks([0, 1], CLASS_NAMES)
    ax.set_yticks([0, 1], CLASS_NAMES)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    fig.colorbar(image, ax=ax, label="share of the true class")
    return _save(fig, path)


def plot_roc_curve(
    y_true,
    proba,
    path: str | Path,
    *,
    threshold: float | None = 0.5,
    pos_label=1,
    title: str = "ROC curve",
) -> Path:
    """Plot the ROC curve (sensitivity against 1 - specificity) with its AUC.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        True labels; both classes must be present.
    proba : array-like of shape (n_samples,) or (n_samples, 2)
        Probability of IDC, or ``predict_proba`` output (last column is IDC).
    path : str or Path
        PNG file to write (atomically).
    threshold : float or None, default=0.5
        Mark the operating point of this threshold; None marks nothing.
    pos_label : label, default=1
        The IDC (positive) label.
    title : str, default='ROC curve'
        Figure title.

    Returns
    -------
    Path
        The file written.
    """
    from sklearn.metrics import roc_auc_score, roc_curve

    positive, proba = _curve_inputs(y_true, proba, pos_label, "ROC curve")
    fpr, tpr, _ = roc_curve(positive, proba)
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot(fpr, tpr, label=f"model (AUC {roc_auc_score(positive, proba):.3f})")
    ax.plot([0, 1], [0, 1], linestyle=":", color="grey", label="chance")
    if threshold is not None:
        predicted = proba >= threshold
        ax.plot(
            predicted[~positive].mean(),
            predicted[positive].mean(),
            "o",
            color="black",
            label=f"threshold {threshold:.3g}",
        )
    ax.set_xlabel("1 - specificity (false positive rate)")
    ax.set_ylabel("sensitivity (true positive rate)")
    _finish(ax, title, legend_loc="lower right")
    return _save(fig, path)


def plot_pr_curve(
    y_true,
    proba,
    path: str | Path,
    *,
    threshold: float | None = 0.5,
    pos_label=1,
    title: str = "Precision-recall curve",
) -> Path:
    """Plot precision against recall (sensitivity) with the average precision.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        True labels; both classes must be present.
    proba : array-like of shape (n_samples,) or (n_samples, 2)
        Probability of IDC, or ``predict_proba`` output (last column is IDC).
    path : str or Path
        PNG file to write (atomically).
    threshold : float or None, default=0.5
        Mark the operating point of this threshold; None marks nothing.
    pos_label : label, default=1
        The IDC (positive) label.
    title : str, default='Precision-recall curve'
        Figure title.

    Returns
    -------
    Path
        The file written.
    """
    from sklearn.metrics import average_precision_score, precision_recall_curve

    positive, proba = _curve_inputs(y_true, proba, pos_label, "precision-recall curve")
    precision, recall, _ = precision_recall_curve(positive, proba)
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.step(
        recall,
        precision,
        where="post",
        label=f"model (AP {average_precision_score(positive, proba):.3f})",
    )
    # A classifier without skill has the precision of the IDC share at every recall.
    ax.axhline(positive.mean(), linestyle=":", color="grey", label="chance (IDC share)")
    if threshold is not None:
        predicted = proba >= threshold
        if predicted.any():
            ax.plot(
                predicted[positive].mean(),
                positive[predicted].mean(),
                "o",
                color="black",
                label=f"threshold {threshold:.3g}",
            )
    ax.set_xlabel("recall (sensitivity)")
    ax.set_ylabel("precision")
    _finish(ax, title, legend_loc="lower left")
    return _save(fig, path)


def _curve_inputs(y_true, proba, pos_label, what: str) -> tuple[np.ndarray, np.ndarray]:
    from .metrics import _binary_inputs

    positive, proba = _binary_inputs(y_true, proba, pos_label)
    if not 0 < positive.sum() < len(positive):
        raise ValueError(
            f"a {what} needs both classes in y_true, got {int(positive.sum())} IDC of "
            f"{len(positive)} patches"
        )
    return positive, proba


def _finish(ax, title: str, *, legend_loc: str) -> None:
    ax.set_xlim(-0.01, 1.01)
    ax.set_ylim(-0.01, 1.01)
    ax.set_aspect("equal")
    ax.set_title(title)
    ax.legend(loc=legend_loc)
    ax.grid(alpha=0.3)


def _save(fig, path: str | Path) -> Path:
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    return path
