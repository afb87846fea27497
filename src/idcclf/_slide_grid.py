"""The patch grid of a slide: coordinates checked, values summed per cell, smoothing.

Shared by :mod:`idcclf.slides` (maps and heatmaps) and its ``smooth_probabilities``,
which is public there.
"""

from __future__ import annotations

import numpy as np

PATCH_SIZE = 50


def check_coords(coords, n: int | None = None) -> np.ndarray:
    coords = np.asarray(coords)
    if coords.ndim != 2 or coords.shape[1] != 2:
        raise ValueError(f"coords must be an (n, 2) array of (x, y), got shape {coords.shape}")
    if n is not None and len(coords) != n:
        raise ValueError(f"coords has {len(coords)} rows but there are {n} patches")
    if len(coords) == 0:
        raise ValueError("no patches to place: coords is empty")
    if coords.dtype.kind not in "iu":
        raise ValueError(f"coords must be integer pixel positions, got dtype {coords.dtype}")
    return coords.astype(np.int64)


def grid_origin(coords: np.ndarray, origin: tuple[int, int] | None) -> np.ndarray:
    if origin is None:
        return coords.min(axis=0)
    origin = np.asarray(origin, dtype=np.int64)
    if origin.shape != (2,) or (coords < origin).any():
        raise ValueError(f"origin {tuple(origin)} must be (x, y) at or before every patch")
    return origin


def coords_and_values(coords, values, name: str, patch_size: int):
    """Checked coordinates and one float per patch (the last column of a 2-D ``values``)."""
    coords = check_coords(coords)
    values = np.asarray(values, dtype=float)
    if values.ndim == 2:
        values = values[:, -1]
    if values.shape != (len(coords),):
        raise ValueError(f"{name} has shape {values.shape} but there are {len(coords)} patches")
    if patch_size < 1:
        raise ValueError(f"patch_size must be at least 1, got {patch_size}")
    return coords, values


def grid_sums(offsets: np.ndarray, values: np.ndarray, patch_size: int):
    """Each patch's grid cell ``(rows, cols)``, and the sum and count of values per cell."""
    cols, rows = (offsets // patch_size).T
    shape = (rows.max() + 1, cols.max() + 1)
    total = np.zeros(shape)
    count = np.zeros(shape)
    np.add.at(total, (rows, cols), values)
    np.add.at(count, (rows, cols), 1)
    return (rows, cols), total, count


def smooth_probabilities(
    proba,
    coords,
    groups=None,
    *,
    radius: int = 1,
    patch_size: int = PATCH_SIZE,
) -> np.ndarray:
    """Average each patch's IDC probability with those of its neighbours on the slide.

    IDC grows in regions that span many patches, so a patch whose neighbours look like
    IDC is more likely IDC than its own image alone says, and an isolated high
    probability among clear tissue is more likely a false alarm. This uses only the
    predictions, never labels, of the other patches of the **same patient**; it needs
    the patches' slide coordinates and helps only where the neighbours were scored
    too (whole slides, not sparse samples of them).

    Parameters
    ----------
    proba : array-like of shape (n_patches,) or (n_patches, 2)
        Predicted IDC probability of each patch (``predict_proba`` output: its last
        column is used).
    coords : array-like of int, shape (n_patches, 2)
        ``(x, y)`` of each patch's top-left corner in its slide
        (``load_idc(...).coords``).
    groups : array-like of shape (n_patches,) or None, default=None
        The patient of each patch; patches of different patients are never
        neighbours. None: all patches are of one patient.
    radius : int, default=1
        Neighbourhood in grid cells: the patches whose cell is at most ``radius``
        cells away in x and in y (``radius=1``: the 3 x 3 block around the patch).
        0 returns the probabilities unchanged.
    patch_size : int, default=50
        Side of a patch in slide pixels, the step of the grid.

    Returns
    -------
    ndarray of float, shape (n_patches,)
        For each patch, the mean probability of the patches in its neighbourhood,
        itself included (cells without a patch are left out of the mean, not
        counted as 0), in the order of ``proba``.
    """
    coords, values = coords_and_values(coords, proba, "proba", patch_size)
    if isinstance(radius, bool) or not isinstance(radius, (int, np.integer)) or radius < 0:
        raise ValueError(f"radius must be a whole number of grid cells >= 0, got {radius!r}")
    from .metrics import _check_group_shape

    groups = np.zeros(len(coords)) if groups is None else _check_group_shape(groups, len(coords))
    smoothed = values.copy()
    if radius == 0:
        return smoothed
    # One pass to sort the patches by patient, not one comparison of all per patient.
    _, patient_of = np.unique(groups, return_inverse=True)
    order = np.argsort(patient_of, kind="stable")
    starts = np.flatnonzero(np.diff(patient_of[order], prepend=-1))
    for mine in np.split(order, starts[1:]):
        offsets = coords[mine] - coords[mine].min(axis=0)
        cells, total, count = grid_sums(offsets, values[mine], patch_size)
        smoothed[mine] = box_sums(total, cells, radius) / box_sums(count, cells, radius)
    return smoothed


def box_sums(grid: np.ndarray, cells: tuple[np.ndarray, np.ndarray], radius: int) -> np.ndarray:
    """The sum of ``grid`` over the square of ``radius`` cells around each of ``cells``.

    From a summed-area table, so the cost does not grow with the radius (a
    convolution's kernel would, and a radius wider than the slide is allowed).
    """
    table = np.zeros((grid.shape[0] + 1, grid.shape[1] + 1))
    table[1:, 1:] = grid.cumsum(axis=0).cumsum(axis=1)
    rows, cols = cells
    top, bottom = np.clip(rows - radius, 0, None), np.minimum(rows + radius + 1, grid.shape[0])
    left, right = np.clip(cols - radius, 0, None), np.minimum(cols + radius + 1, grid.shape[1])
    return table[bottom, right] - table[top, right] - table[bottom, left] + table[top, left]
