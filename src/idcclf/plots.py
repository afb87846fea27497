"""Plots written as PNG files; no display is needed."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # write files on headless machines; never open a window
import matplotlib.pyplot as plt  # noqa: E402

from ._io import atomic_path  # noqa: E402


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


def _save(fig, path: str | Path) -> Path:
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    return path
