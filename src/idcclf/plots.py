"""Plots written as PNG files; no display is needed.

Every function writes its file atomically (:mod:`idcclf._io`) and returns its path.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import matplotlib
import numpy as np

matplotlib.use("Agg")  # write files on headless machines; never open a window
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

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
    epochs = np.arange(1, len(history["loss"]) + 1)
    fig, ax = plt.subplots(figsize=(8, 4.5), layout="constrained")
    # Markers show every epoch (a 1-epoch run is single points); many epochs read as lines.
    marker = "o" if len(epochs) <= 50 else None
    for key, label in [
        ("loss", "train loss"),
        ("val_loss", "validation loss"),
        ("accuracy", "train accuracy"),
        ("val_accuracy", "validation accuracy"),
    ]:
        if key in history:
            ax.plot(
                epochs,
                history[key],
                label=label,
                linestyle="--" if "val" in key else "-",
                marker=marker,
                markersize=4,
            )
    if len(epochs) <= 10:
        ax.set_xticks(epochs)
        ax.set_xlim(0.5, len(epochs) + 0.5)
    else:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True, steps=[1, 2, 5, 10]))
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss / accuracy")
    ax.set_title(title)
    # Outside the axes, so that it never hides a curve.
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0)
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


_CURVE_PARAMETERS = """y_true : array-like of shape (n_samples,)
        True labels; both classes must be present.
    proba : array-like of shape (n_samples,) or (n_samples, 2)
        Probability of IDC, or ``predict_proba`` output (last column is IDC).
    path : str or Path
        PNG file to write (atomically).
    threshold : float or None, default=0.5
        Mark the operating point of this threshold; None marks nothing.
    pos_label : label, default=1
        The IDC (positive) label."""


def _curve_doc(func):
    # The two curves share their parameters; write them once.
    func.__doc__ = func.__doc__.replace("{curve_parameters}", _CURVE_PARAMETERS)
    return func


@_curve_doc
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
    {curve_parameters}
    title : str, default='ROC curve'
        Figure title.

    Returns
    -------
    Path
        The file written.
    """
    return _plot_curve("roc", y_true, proba, path, threshold, pos_label, title)


@_curve_doc
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
    {curve_parameters}
    title : str, default='Precision-recall curve'
        Figure title.

    Returns
    -------
    Path
        The file written.
    """
    return _plot_curve("pr", y_true, proba, path, threshold, pos_label, title)


def _roc_points(positive: np.ndarray, proba: np.ndarray) -> tuple:
    from sklearn.metrics import roc_auc_score, roc_curve

    fpr, tpr, _ = roc_curve(positive, proba)
    return fpr, tpr, f"model (AUC {roc_auc_score(positive, proba):.3f})"


def _pr_points(positive: np.ndarray, proba: np.ndarray) -> tuple:
    from sklearn.metrics import average_precision_score, precision_recall_curve

    precision, recall, _ = precision_recall_curve(positive, proba)
    return recall, precision, f"model (AP {average_precision_score(positive, proba):.3f})"


def _roc_operating_point(positive: np.ndarray, predicted: np.ndarray) -> tuple | None:
    return predicted[~positive].mean(), predicted[positive].mean()


def _pr_operating_point(positive: np.ndarray, predicted: np.ndarray) -> tuple | None:
    # Precision is undefined when nothing is predicted IDC: no point then.
    return (predicted[positive].mean(), positive[predicted].mean()) if predicted.any() else None


#: Per curve: what it is called, its points, its operating point, its axis labels.
_CURVES = {
    "roc": (
        "ROC curve",
        _roc_points,
        _roc_operating_point,
        ("1 - specificity (false positive rate)", "sensitivity (true positive rate)"),
    ),
    "pr": (
        "precision-recall curve",
        _pr_points,
        _pr_operating_point,
        ("recall (sensitivity)", "precision"),
    ),
}


def _plot_curve(kind: str, y_true, proba, path, threshold, pos_label, title: str) -> Path:
    what, points, operating_point, (xlabel, ylabel) = _CURVES[kind]
    positive, proba = _curve_inputs(y_true, proba, pos_label, what)
    x, y, label = points(positive, proba)
    fig, ax = plt.subplots(figsize=(5, 5.6), layout="constrained")
    if kind == "roc":
        ax.plot(x, y, label=label)
        ax.plot([0, 1], [0, 1], linestyle=":", color="grey", label="chance")
    else:
        ax.step(x, y, where="post", label=label)
        # A classifier without skill has the precision of the IDC share at every recall.
        ax.axhline(positive.mean(), linestyle=":", color="grey", label="chance (IDC share)")
    point = None if threshold is None else operating_point(positive, proba >= threshold)
    if point is not None:
        ax.plot(*point, "o", color="black", label=f"threshold {threshold:.3g}")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    _finish(ax, title)
    return _save(fig, path)


def plot_study(result, path: str | Path) -> Path:
    """Plot every metric per setting of a study (mean ± std over folds) and fit times.

    The metrics panel spans the width, one colour per setting; below it, the fit time
    of each setting in the same colour, labelled with the setting's name, which makes
    it the legend of both panels.

    Parameters
    ----------
    result : idcclf.studies.StudyResult
        The outcome of :func:`idcclf.studies.run_study`.
    path : str or Path
        PNG file to write (atomically).

    Returns
    -------
    Path
        The file written.
    """
    from ._format import plural

    metrics = result.metrics
    table = result.table
    colors = [f"C{j % 10}" for j in range(len(table))]
    # Height grows with the settings, so that their labels never crowd each other.
    time_height = 0.6 + 0.32 * len(table)
    fig = plt.figure(figsize=(9, 3.6 + time_height), layout="constrained")
    top, bottom = fig.subfigures(2, 1, height_ratios=[3.6, time_height])
    ax = top.subplots()
    ax.set_label("metrics")
    width = 0.8 / len(table)
    x = np.arange(len(metrics))
    for j, row in enumerate(table):
        ax.bar(
            x + (j - (len(table) - 1) / 2) * width,
            [row[f"{m}_mean"] for m in metrics],
            width,
            yerr=[row[f"{m}_std"] for m in metrics],
            capsize=2,
            color=colors[j],
        )
    ax.set_xticks(x, [_METRIC_LABELS.get(m, m) for m in metrics])
    ax.set_ylim(0, 1.05)
    ax.set_ylabel(f"mean over {result.search.n_splits_} folds\n(bar: ± std)")
    ax.set_title(f"study {result.study.name!r}: {plural(result.epochs, 'epoch')} per fit")
    ax.grid(axis="y", alpha=0.3)

    ax_time = bottom.subplots()
    ax_time.set_label("fit time")
    y_pos = np.arange(len(table))
    ax_time.barh(
        y_pos,
        [row["fit_time_mean"] for row in table],
        xerr=[row["fit_time_std"] for row in table],
        capsize=2,
        color=colors,
    )
    ax_time.set_yticks(y_pos, [row["setting"] for row in table])
    ax_time.invert_yaxis()
    ax_time.set_title("settings, in the colours above, and their fit times", fontsize="medium")
    ax_time.set_xlabel("fit time (s), mean ± std over folds")
    ax_time.grid(axis="x", alpha=0.3)
    return _save(fig, path)


#: Axis labels of metrics: short enough that five fit side by side.
_METRIC_LABELS = {
    "balanced_accuracy": "balanced\naccuracy",
    "roc_auc": "ROC AUC",
    "f1": "F1",
}


def _curve_inputs(y_true, proba, pos_label, what: str) -> tuple[np.ndarray, np.ndarray]:
    from .metrics import _binary_inputs

    positive, proba = _binary_inputs(y_true, proba, pos_label)
    if not 0 < positive.sum() < len(positive):
        raise ValueError(
            f"a {what} needs both classes in y_true, got {int(positive.sum())} IDC of "
            f"{len(positive)} patches"
        )
    return positive, proba


def _finish(ax, title: str) -> None:
    ax.set_xlim(-0.01, 1.01)
    ax.set_ylim(-0.01, 1.01)
    ax.set_aspect("equal")
    ax.set_title(title)
    # Below the axes: inside, it would hide a poor model's curve or a low chance line.
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.11), ncol=2, frameon=False)
    ax.grid(alpha=0.3)


def _save(fig, path: str | Path) -> Path:
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    return path
