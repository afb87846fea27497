"""Colour standardization per patient: every slide mapped to one reference colour.

Slides from different labs, scanners and staining batches differ in their overall
colour and contrast, and a patch classifier trained on some patients meets others whose
colours it has not seen. Stain jitter (:mod:`idcclf.stain`) teaches the model to
ignore such differences; standardization removes them before the model sees the
patches, using what is known at prediction time anyway: which slide a patch comes
from. Each patient's pixels are shifted and scaled, per RGB channel, so that their
mean and standard deviation over all of the patient's patches become those of a
fixed reference (a per-slide form of Reinhard et al. 2001, "Color transfer between
images", in RGB). Within a patient, the differences between patches (darker,
nuclei-rich tumour against pale stroma) are kept.

A model trained on standardized patches must be given standardized patches: all of a
patient's patches, or a representative share of them, are needed to measure that
patient's colour.
"""

from __future__ import annotations

import numpy as np

#: Per-channel (R, G, B) mean and standard deviation of the pixels of the 151 real
#: patients (40,100 patches) of the project's development data, rounded: the colour
#: every patient is mapped to.
REFERENCE_MEAN = (206.5, 162.1, 187.5)
REFERENCE_STD = (36.5, 54.0, 39.1)

#: Smallest channel standard deviation divided by, so that a patient of uniform colour
#: (a single blank patch) is shifted but not blown up.
MIN_STD = 1.0


def standardize_patients(
    X: np.ndarray,
    groups,
    *,
    mean=REFERENCE_MEAN,
    std=REFERENCE_STD,
) -> np.ndarray:
    """Each patient's patches, shifted and scaled to the reference colour statistics.

    For every patient ``p`` and channel ``c``, with ``m`` and ``s`` the mean and
    standard deviation of channel ``c`` over all pixels of ``p``'s patches in ``X``:
    ``x' = (x - m) / max(s, 1) * std[c] + mean[c]``, rounded and clipped to 0-255.
    With ``std=None`` the means alone are matched: ``x' = x - m + mean[c]``.

    Parameters
    ----------
    X : ndarray of shape (n_patches, height, width, 3)
        RGB patches with pixel values in 0-255 (``load_idc``'s ``data``); any dtype.
        It is not modified.
    groups : array-like of shape (n_patches,)
        Patient of each patch. Standardization is per patient, so pass all of a
        patient's patches (or a representative share) in one call.
    mean, std : sequences of 3 floats, default=REFERENCE_MEAN, REFERENCE_STD
        The colour statistics every patient is mapped to. ``std=None`` keeps each
        patient's contrast and shifts its mean colour only: a patient's spread of
        colours depends on its tissue (mostly tumour is more uniform than tumour
        mixed with stroma and fat) as well as on its stain.

    Returns
    -------
    ndarray of the same shape and dtype as X
        The standardized patches (uint8 input gives uint8 output).

    Raises
    ------
    ValueError
        If X is not a stack of RGB images, holds values outside 0-255 (or NaN), looks
        scaled to [0, 1], ``groups`` does not have one entry per patch, or ``std`` is
        not positive.

    Examples
    --------
    >>> import numpy as np
    >>> from idcclf.standardize import standardize_patients
    >>> rng = np.random.default_rng(0)
    >>> X = rng.integers(0, 256, size=(4, 50, 50, 3), dtype=np.uint8)
    >>> Z = standardize_patients(X, groups=["a", "a", "b", "b"])
    >>> Z.shape, Z.dtype
    ((4, 50, 50, 3), dtype('uint8'))
    """
    X = np.asarray(X)
    if X.ndim != 4 or X.shape[-1] != 3:
        raise ValueError(f"X must be RGB patches of shape (n, height, width, 3), got {X.shape}")
    groups = np.asarray(groups)
    if groups.shape != (len(X),):
        raise ValueError(
            f"groups must hold one patient per patch: {len(X)} patches, groups of shape "
            f"{groups.shape}"
        )
    mean = np.asarray(mean, dtype=np.float64)
    std = None if std is None else np.asarray(std, dtype=np.float64)
    if mean.shape != (3,) or (std is not None and (std.shape != (3,) or not np.all(std > 0))):
        raise ValueError(f"mean and std must be 3 values, std positive or None; got {mean}, {std}")
    if len(X) and X.dtype != np.uint8:
        _check_pixel_range(X)
    standardized = _standardized_uint8 if X.dtype == np.uint8 else _standardized_any
    out = np.empty_like(X)
    # Rows of each patient from one sort, not one scan of groups per patient.
    order = np.argsort(groups, kind="stable")
    _, starts = np.unique(groups[order], return_index=True)
    for rows in np.split(order, starts[1:]):
        out[rows] = standardized(X[rows], mean, std)
    return out


def _check_pixel_range(X: np.ndarray) -> None:
    """Refuse values that are not 0-255 pixels, naming what was found."""
    if not np.issubdtype(X.dtype, np.number) or np.issubdtype(X.dtype, np.complexfloating):
        raise ValueError(f"X has dtype {X.dtype}; pass pixels in 0-255")
    low, high = X.min(), X.max()
    if not (np.isfinite(low) and np.isfinite(high)):
        raise ValueError("X holds NaN or infinite values; pass pixels in 0-255")
    if low < 0 or high > 255:
        raise ValueError(f"X holds values from {low} to {high}; pass pixels in 0-255")
    if np.issubdtype(X.dtype, np.floating) and high <= 1.0:
        raise ValueError(
            "X looks scaled to [0, 1] (its maximum is at most 1); pass pixels in 0-255"
        )


def _standardized_uint8(
    patches: np.ndarray, mean: np.ndarray, std: np.ndarray | None
) -> np.ndarray:
    """uint8 patches of one patient, standardized through one lookup table per channel.

    Exact: the statistics come from each channel's histogram (integer counts) in
    float64, and the table holds the rounded, clipped affine map of all 256 values.
    """
    out = np.empty_like(patches)
    values = np.arange(256, dtype=np.float64)
    for channel in range(3):
        pixels = patches[..., channel]
        counts = np.bincount(pixels.ravel(), minlength=256).astype(np.float64)
        n = counts.sum()
        channel_mean = counts @ values / n
        channel_std = np.sqrt(counts @ (values - channel_mean) ** 2 / n)
        scale = 1.0 if std is None else std[channel] / max(channel_std, MIN_STD)
        table = np.clip(np.rint((values - channel_mean) * scale + mean[channel]), 0, 255)
        out[..., channel] = table.astype(np.uint8)[pixels]
    return out


def _standardized_any(patches: np.ndarray, mean: np.ndarray, std: np.ndarray | None) -> np.ndarray:
    """Patches of one patient of any other dtype, standardized in float64."""
    # float64: float32 sums over millions of pixels lose whole units.
    pixels = patches.reshape(-1, 3).astype(np.float64)
    scale = 1.0 if std is None else std / np.maximum(pixels.std(axis=0), MIN_STD)
    shifted = (pixels - pixels.mean(axis=0)) * scale + mean
    if np.issubdtype(patches.dtype, np.integer):
        shifted = np.rint(shifted)
    return np.clip(shifted, 0, 255).reshape(patches.shape).astype(patches.dtype)
