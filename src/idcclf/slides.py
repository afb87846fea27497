"""Per-patient results: a patient table, slide images rebuilt from patches, heatmaps.

Each patch of the IDC data set was cut from a whole-slide image of one patient; its
file name gives the ``(x, y)`` pixel coordinates of its top-left corner in that slide
(``coords`` in :func:`idcclf.load_idc`'s Bunch). Placing patches at their coordinates
rebuilds the tissue, and placing per-patch values on the same grid gives maps of the
predicted and the true IDC regions. See ``docs/evaluation.md``.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ._format import format_value
from ._slide_grid import (
    PATCH_SIZE,
    check_coords,
    coords_and_values,
    grid_origin,
    grid_sums,
    smooth_probabilities,
)

__all__ = [
    "PATIENT_COLUMNS",
    "patient_table",
    "plot_heatmap",
    "probability_map",
    "slide_image",
    "smooth_probabilities",
    "to_csv",
    "to_markdown",
]


#: Columns of :func:`patient_table`, in order.
PATIENT_COLUMNS = (
    "patient",
    "n_patches",
    "n_idc_true",
    "n_idc_pred",
    "idc_share_true",
    "idc_share_pred",
    "mean_proba",
    "accuracy",
    "sensitivity",
    "specificity",
)


# ------------------------------------------------------------------------ table


def patient_table(
    groups, y_true, proba, threshold: float = 0.5, *, pos_label=1
) -> list[dict[str, object]]:
    """Summarize predictions patient by patient.

    Parameters
    ----------
    groups : array-like of shape (n_samples,)
        Patient of each patch.
    y_true : array-like of shape (n_samples,)
        True labels.
    proba : array-like of shape (n_samples,) or (n_samples, 2)
        Probability of IDC, or ``predict_proba`` output (last column is IDC).
    threshold : float, default=0.5
        A patch is predicted IDC when its probability is at least this.
    pos_label : label, default=1
        The IDC (positive) label.

    Returns
    -------
    list of dict
        One row per patient, sorted by patient, with the keys of
        :data:`PATIENT_COLUMNS`:

        - ``patient`` (str), ``n_patches``, ``n_idc_true``, ``n_idc_pred`` (int);
        - ``idc_share_true``: share of the patient's tissue patches that are IDC;
        - ``idc_share_pred``: share predicted IDC;
        - ``mean_proba``: mean predicted IDC probability;
        - ``accuracy``: share of patches predicted right;
        - ``sensitivity`` / ``specificity``: None when the patient has no IDC / no
          non-IDC patch, since they are undefined then.

    Examples
    --------
    >>> rows = patient_table(["a", "a", "b"], [1, 0, 0], [0.9, 0.7, 0.2])
    >>> rows[0]["sensitivity"], rows[0]["specificity"], rows[1]["sensitivity"]
    (1.0, 0.0, None)
    """
    groups = np.asarray(groups)
    y_true = np.asarray(y_true)
    proba = np.asarray(proba, dtype=float)
    if proba.ndim == 2:
        proba = proba[:, -1]
    if not groups.shape == y_true.shape == proba.shape or groups.ndim != 1:
        raise ValueError(
            f"groups, y_true and proba must have one value per patch, got shapes "
            f"{groups.shape}, {y_true.shape} and {proba.shape}"
        )
    positive = y_true == pos_label
    predicted = proba >= threshold
    rows = []
    for patient in np.unique(groups):
        mine = groups == patient
        pos, pred = positive[mine], predicted[mine]
        n, n_pos = int(mine.sum()), int(pos.sum())
        rows.append(
            {
                "patient": str(patient),
                "n_patches": n,
                "n_idc_true": n_pos,
                "n_idc_pred": int(pred.sum()),
                "idc_share_true": n_pos / n,
                "idc_share_pred": float(pred.mean()),
                "mean_proba": float(proba[mine].mean()),
                "accuracy": float((pos == pred).mean()),
                "sensitivity": float(pred[pos].mean()) if n_pos else None,
                "specificity": float((~pred[~pos]).mean()) if n_pos < n else None,
            }
        )
    return rows


def to_csv(rows: Sequence[dict], path: str | Path | None = None) -> str:
    """Render table rows (e.g. from :func:`patient_table`) as CSV.

    Parameters
    ----------
    rows : sequence of dict
        Rows sharing the keys of the first one; None and NaN are written as empty
        fields.
    path : str, Path or None, default=None
        Also write the text to this file (atomically).

    Returns
    -------
    str
        The CSV text, header first.
    """
    columns = _columns(rows)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([format_value(row[c], 6, missing="") for c in columns])
    return _maybe_write(buffer.getvalue(), path)


def to_markdown(rows: Sequence[dict], path: str | Path | None = None) -> str:
    """Render table rows (e.g. from :func:`patient_table`) as a Markdown table.

    Parameters
    ----------
    rows : sequence of dict
        Rows sharing the keys of the first one; None and NaN are shown as ``n/a``.
    path : str, Path or None, default=None
        Also write the text to this file (atomically).

    Returns
    -------
    str
        The Markdown text; numbers right-aligned, floats with 3 decimals.
    """
    columns = _columns(rows)
    lines = [
        "| " + " | ".join(columns) + " |",
        "| " + " | ".join("---" if c == "patient" else "---:" for c in columns) + " |",
    ]
    for row in rows:
        cells = [format_value(row[c], 3) for c in columns]
        lines.append("| " + " | ".join(cells) + " |")
    return _maybe_write("\n".join(lines) + "\n", path)


def _columns(rows: Sequence[dict]) -> list[str]:
    if not rows:
        return list(PATIENT_COLUMNS)
    return list(rows[0])


def _maybe_write(text: str, path: str | Path | None) -> str:
    if path is not None:
        from ._io import atomic_write_text

        atomic_write_text(path, text)
    return text


# ------------------------------------------------------------------------ slides


def slide_image(
    data, coords, *, origin: tuple[int, int] | None = None, background: int = 255
) -> np.ndarray:
    """Rebuild a patient's tissue image by placing each patch at its coordinates.

    Parameters
    ----------
    data : array-like of shape (n_patches, 50, 50, 3)
        Patches of one patient (``load_idc(...).data``).
    coords : array-like of int, shape (n_patches, 2)
        ``(x, y)`` of each patch's top-left corner in the slide, as given by the
        file names.
    origin : (int, int) or None, default=None
        Slide pixel ``(x, y)`` shown at the canvas's top-left corner. None: the
        smallest x and the smallest y of ``coords``, so the canvas is as small as the
        patches allow.
    background : int, default=255
        Value of canvas pixels no patch covers (white, like the slide's glass).

    Returns
    -------
    ndarray of shape (height, width, channels), dtype of ``data``
        The patch at ``(x, y)`` fills rows ``y - y0`` to ``y - y0 + 49`` and columns
        ``x - x0`` to ``x - x0 + 49``, with ``(x0, y0)`` the origin. Where patches
        overlap, the later one wins.
    """
    data = np.asarray(data)
    if data.ndim != 4:
        raise ValueError(f"data must be patches (n, height, width, channels), got {data.shape}")
    coords = check_coords(coords, len(data))
    x0, y0 = grid_origin(coords, origin)
    height, width = data.shape[1:3]
    offsets = coords - (x0, y0)
    canvas_w, canvas_h = offsets.max(axis=0) + (width, height)
    canvas = np.full((canvas_h, canvas_w, data.shape[3]), background, dtype=data.dtype)
    for patch, (x, y) in zip(data, offsets, strict=True):
        canvas[y : y + height, x : x + width] = patch
    return canvas


def probability_map(
    coords,
    values,
    *,
    patch_size: int = PATCH_SIZE,
    origin: tuple[int, int] | None = None,
) -> np.ndarray:
    """Place one value per patch on the slide's patch grid.

    Parameters
    ----------
    coords : array-like of int, shape (n_patches, 2)
        ``(x, y)`` of each patch's top-left corner in the slide.
    values : array-like of shape (n_patches,) or (n_patches, 2)
        A value per patch, e.g. the predicted IDC probability or the true label
        (``predict_proba`` output: its last column is used).
    patch_size : int, default=50
        Side of a patch in slide pixels: one grid cell per patch.
    origin : (int, int) or None, default=None
        Slide pixel ``(x, y)`` of the top-left cell's corner; None as in
        :func:`slide_image`, so the map lines up with the tissue image.

    Returns
    -------
    ndarray of float, shape (n_rows, n_cols)
        Cell ``[i, j]`` covers slide pixels ``x0 + j * patch_size`` and
        ``y0 + i * patch_size`` onward; NaN where there is no patch (background).
        Patches falling in one cell are averaged.
    """
    coords, values = coords_and_values(coords, values, "values", patch_size)
    _, total, count = grid_sums(coords - grid_origin(coords, origin), values, patch_size)
    with np.errstate(invalid="ignore", divide="ignore"):
        return total / count  # 0 / 0 leaves NaN on empty cells


def plot_heatmap(
    data,
    coords,
    proba,
    y_true,
    path: str | Path,
    *,
    threshold: float | None = 0.5,
    title: str | None = None,
    pos_label=1,
) -> Path:
    """Draw a patient's tissue, its predicted IDC probability map and its true IDC map.

    Parameters
    ----------
    data : array-like of shape (n_patches, 50, 50, 3)
        Patches of one patient.
    coords : array-like of int, shape (n_patches, 2)
        ``(x, y)`` of each patch's top-left corner.
    proba : array-like of shape (n_patches,) or (n_patches, 2)
        Predicted IDC probability of each patch.
    y_true : array-like of shape (n_patches,) or None
        True labels; None leaves out the ground-truth panel.
    path : str or Path
        PNG file to write (atomically).
    threshold : float or None, default=0.5
        Outline the cells predicted IDC (probability at least this) on the
        probability map; None draws no outline.
    title : str or None, default=None
        Figure title.
    pos_label : label, default=1
        The IDC label in ``y_true``.

    Returns
    -------
    Path
        The file written.
    """
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap

    from .plots import _save

    data = np.asarray(data)
    coords = check_coords(coords, len(data))
    patch_size = data.shape[1]
    x0, y0 = coords.min(axis=0)
    tissue = slide_image(data, coords)
    prob_map = probability_map(coords, proba, patch_size=patch_size)
    # Every panel is drawn in slide pixel coordinates, so the axes match the
    # x and y of the patch file names and the three panels line up.
    grid_extent = (
        x0,
        x0 + prob_map.shape[1] * patch_size,
        y0 + prob_map.shape[0] * patch_size,
        y0,
    )
    image_extent = (x0, x0 + tissue.shape[1], y0 + tissue.shape[0], y0)

    panels = 2 if y_true is None else 3
    aspect = tissue.shape[0] / tissue.shape[1]
    fig, axes = plt.subplots(
        1, panels, figsize=(5 * panels, max(3.0, 5 * aspect) + 0.8), squeeze=False
    )
    axes = axes[0]
    axes[0].imshow(tissue, extent=image_extent, interpolation="nearest")
    axes[0].set_title("tissue")

    prob_cmap = plt.get_cmap("inferno").with_extremes(bad="white")
    shown = axes[1].imshow(
        prob_map, extent=grid_extent, cmap=prob_cmap, vmin=0.0, vmax=1.0, interpolation="nearest"
    )
    if threshold is not None:
        called = np.nan_to_num(prob_map, nan=-1.0) >= threshold
        if called.any() and not called.all():
            cols = x0 + (np.arange(prob_map.shape[1]) + 0.5) * patch_size
            rows = y0 + (np.arange(prob_map.shape[0]) + 0.5) * patch_size
            axes[1].contour(cols, rows, called.astype(float), levels=[0.5], colors="cyan")
    axes[1].set_title(
        "predicted IDC probability"
        + ("" if threshold is None else f"\n(outline: at least {threshold:.3g})")
    )
    fig.colorbar(shown, ax=axes[1], fraction=0.046, pad=0.04)

    if y_true is not None:
        truth = (np.asarray(y_true) == pos_label).astype(float)
        truth_map = probability_map(coords, truth, patch_size=patch_size)
        truth_cmap = ListedColormap(["#4c72b0", "#dd8452"]).with_extremes(bad="white")
        axes[2].imshow(
            truth_map,
            extent=grid_extent,
            cmap=truth_cmap,
            vmin=0.0,
            vmax=1.0,
            interpolation="nearest",
        )
        axes[2].set_title("ground truth\n(orange: IDC, blue: no IDC)")

    for ax in axes:
        ax.set_xlim(image_extent[0], image_extent[1])
        ax.set_ylim(image_extent[2], image_extent[3])
        ax.set_xlabel("x (slide pixels)")
        ax.set_aspect("equal")
    axes[0].set_ylabel("y (slide pixels)")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return _save(fig, path)
