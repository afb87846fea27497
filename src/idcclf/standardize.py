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

:func:`normalize_stains` does the same in the space of the stains rather than of the RGB
channels (Macenko et al. 2009, "A method for normalizing histology slides for
quantitative analysis"): it measures each patient's haematoxylin and eosin colours and
amounts, and redraws the patches with reference stains. The mean colour of a patient
depends on its tissue as well as on its stain (a slide that is mostly tumour is darker
and more purple than one that is mostly stroma), so matching means shifts such a
patient's tumour towards the colour of stroma; the stain colours Macenko's method
measures depend much less on how much of each tissue a slide holds.

A model trained on standardized patches must be given standardized patches: all of a
patient's patches, or a representative share of them, are needed to measure that
patient's colour.
"""

from __future__ import annotations

import math
import warnings

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
    mean = np.asarray(mean, dtype=np.float64)
    std = None if std is None else np.asarray(std, dtype=np.float64)
    if mean.shape != (3,) or (std is not None and (std.shape != (3,) or not np.all(std > 0))):
        raise ValueError(f"mean and std must be 3 values, std positive or None; got {mean}, {std}")
    X, groups = _checked_patches(X, groups)
    standardized = _standardized_uint8 if X.dtype == np.uint8 else _standardized_any
    out = np.empty_like(X)
    for _, rows in _patient_rows(groups):
        out[rows] = standardized(X[rows], mean, std)
    return out


def normalizes_stains(model) -> bool:
    """Whether ``model`` normalizes each patient's stains itself, and so needs the patients.

    True for an ``IDCClassifier(normalize_stains=True)``; False for any other model.
    """
    return bool(getattr(model, "normalize_stains", False))


def check_patients_given(groups, method: str) -> None:
    """The ValueError a stain-normalizing model raises when ``method`` gets no groups."""
    if groups is not None:
        return
    if method == "fit":
        raise ValueError(
            "normalize_stains=True: pass groups (the patient of each patch) to fit, so "
            "that each patient's stains are measured and normalized"
        )
    # scikit-learn's scorers call predict_proba(X) alone, so searches end up here.
    raise ValueError(
        f"normalize_stains=True: pass groups (the patient of each patch) to {method}, so "
        "that each patient's stains are normalized as in training. scikit-learn's "
        "scorers cannot: to cross-validate, normalize X once with "
        "idcclf.normalize_stains(X, groups) and keep normalize_stains=False"
    )


def _checked_patches(X, groups) -> tuple[np.ndarray, np.ndarray]:
    """X and groups as arrays, refused with a message unless they are RGB patches in
    0-255 with one patient per patch."""
    X = np.asarray(X)
    if X.ndim != 4 or X.shape[-1] != 3:
        raise ValueError(f"X must be RGB patches of shape (n, height, width, 3), got {X.shape}")
    groups = np.asarray(groups)
    if groups.shape != (len(X),):
        raise ValueError(
            f"groups must hold one patient per patch: {len(X)} patches, groups of shape "
            f"{groups.shape}"
        )
    if len(X) and X.dtype != np.uint8:
        _check_pixel_range(X)
    return X, groups


def _patient_rows(groups: np.ndarray):
    """``(patient, row indices)`` for every patient, in sorted order."""
    # Rows of each patient from one sort, not one scan of groups per patient.
    order = np.argsort(groups, kind="stable")
    patients, starts = np.unique(groups[order], return_index=True)
    return zip(patients, np.split(order, starts[1:]), strict=True)


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


#: Reference stain colours of :func:`normalize_stains`, as optical density per unit of
#: stain (rows R, G, B; columns haematoxylin, eosin), and the 99th percentile of each
#: stain's amount per pixel. Both are those of the reference implementation that
#: accompanies Macenko et al. (2009), widely used as they are.
REFERENCE_STAINS = ((0.5626, 0.2159), (0.7201, 0.8012), (0.4062, 0.5581))
REFERENCE_MAX_CONCENTRATIONS = (1.9705, 1.0308)

#: Intensity of the light through glass without tissue, as in the reference
#: implementation: brighter pixels have a negative optical density and come back
#: white.
LIGHT_INTENSITY = 240.0
#: Optical density, in every channel, from which a pixel counts as stained tissue
#: rather than background when the stains are measured.
TISSUE_DENSITY = 0.15
#: Percentile of the pixels' hue angles, from each end, taken as the pure stains; not
#: the extremes themselves, so that a few odd pixels (ink, dust) do not decide.
HUE_PERCENTILE = 1.0
#: Pixels of a patient that the stains are measured on, at most (evenly spaced);
#: a million measure them to well within a degree, and bound the memory.
MAX_MEASURED_PIXELS = 1_000_000
#: Stained pixels a patient needs for its stains to be measured at all.
MIN_TISSUE_PIXELS = 1_000
#: Patches redrawn at a time, which bounds the memory whatever a patient's size.
CHUNK_PATCHES = 256

# Optical density of each uint8 value: -ln((value + 1) / LIGHT_INTENSITY).
_DENSITY_OF_UINT8 = -np.log((np.arange(256, dtype=np.float64) + 1.0) / LIGHT_INTENSITY)


def normalize_stains(
    X: np.ndarray,
    groups,
    *,
    stains=REFERENCE_STAINS,
    max_concentrations=REFERENCE_MAX_CONCENTRATIONS,
) -> np.ndarray:
    """Each patient's patches redrawn with reference H&E stains (Macenko's method).

    For every patient, the pixels are turned into optical density (Beer-Lambert:
    ``-ln((x + 1) / 240)`` per channel). On its stained pixels (density at least 0.15
    in every channel) the plane of the two main directions of density is found, and
    the 1st and 99th percentiles of the pixels' angles in that plane are taken as the
    patient's haematoxylin and eosin colours. Every pixel is then split into amounts
    of the two stains, the amounts are scaled so that their 99th percentiles over the
    patient become ``max_concentrations``, and the pixel is redrawn with ``stains``.
    Background stays white. The measure uses extremes of the stains, not averages, so
    it depends far less than :func:`standardize_patients` on how much of each tissue
    (tumour, stroma, fat) a patient's patches hold.

    Parameters
    ----------
    X : ndarray of shape (n_patches, height, width, 3)
        RGB patches with pixel values in 0-255 (``load_idc``'s ``data``); any dtype.
        It is not modified.
    groups : array-like of shape (n_patches,)
        Patient of each patch. The stains are measured per patient, so pass all of a
        patient's patches (or a representative share) in one call.
    stains : array-like of shape (3, 2), default=REFERENCE_STAINS
        Optical density per unit of haematoxylin (first column) and eosin (second) in
        R, G and B: the stains every patient is redrawn with.
    max_concentrations : sequence of 2 floats, default=REFERENCE_MAX_CONCENTRATIONS
        99th percentile of the amount of each stain per pixel after normalization.

    Returns
    -------
    ndarray of the same shape and dtype as X
        The normalized patches (uint8 input gives uint8 output). A patient with fewer
        than ``MIN_TISSUE_PIXELS`` stained pixels, or whose two stains cannot be told
        apart, is returned unchanged, and a ``UserWarning`` names it.

    Raises
    ------
    ValueError
        If X is not a stack of RGB images, holds values outside 0-255 (or NaN), looks
        scaled to [0, 1], ``groups`` does not have one entry per patch, or ``stains``
        or ``max_concentrations`` are not positive and of shape (3, 2) and (2,).

    Examples
    --------
    >>> from idcclf import load_sample
    >>> from idcclf.standardize import normalize_stains
    >>> bunch = load_sample()
    >>> Z = normalize_stains(bunch.data, bunch.groups)
    >>> Z.shape == bunch.data.shape, Z.dtype
    (True, dtype('uint8'))
    """
    stains = np.asarray(stains, dtype=np.float64)
    max_concentrations = np.asarray(max_concentrations, dtype=np.float64)
    if (
        stains.shape != (3, 2)
        or max_concentrations.shape != (2,)
        or not np.all(stains >= 0)
        or not np.all(stains.sum(axis=0) > 0)
        or not np.all(max_concentrations > 0)
    ):
        raise ValueError(
            "stains must be 3 x 2 non-negative optical densities (one non-zero column per "
            "stain) and max_concentrations 2 positive amounts; got "
            f"{stains.tolist()} and {max_concentrations.tolist()}"
        )
    X, groups = _checked_patches(X, groups)
    out = np.empty_like(X)
    unchanged = []
    for patient, rows in _patient_rows(groups):
        # One copy of the patient's patches, measured and then redrawn in slices of it.
        patient_patches = X[rows]
        measured = measure_stains(patient_patches)
        if measured is None:
            out[rows] = patient_patches
            unchanged.append(str(patient))
            continue
        patient_stains, patient_max = measured
        # Amounts from densities: the least-squares inverse of the patient's stains,
        # scaled per stain to the reference amounts.
        unmix = np.linalg.pinv(patient_stains).T * (max_concentrations / patient_max)
        for start in range(0, len(rows), CHUNK_PATCHES):
            patches = patient_patches[start : start + CHUNK_PATCHES]
            redrawn = LIGHT_INTENSITY * np.exp(-(_optical_density(patches) @ unmix @ stains.T))
            if not np.issubdtype(X.dtype, np.floating):
                redrawn = np.rint(redrawn)
            out[rows[start : start + CHUNK_PATCHES]] = (
                np.clip(redrawn, 0, 255).astype(X.dtype).reshape(patches.shape)
            )
    if unchanged:
        warnings.warn(
            f"normalize_stains: {len(unchanged)} patient(s) left unchanged, with too little "
            f"stained tissue to measure their stains: {', '.join(unchanged)}",
            UserWarning,
            stacklevel=2,
        )
    return out


def measure_stains(patches: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """One patient's stain colours and their 99th-percentile amounts (Macenko's method).

    Parameters
    ----------
    patches : ndarray of shape (n_patches, height, width, 3)
        All of one patient's patches, pixels in 0-255.

    Returns
    -------
    (stains, max_concentrations) or None
        ``stains`` of shape (3, 2): unit optical-density vectors of haematoxylin (the
        one denser in red) and eosin; ``max_concentrations`` of shape (2,). None when
        the patches hold fewer than ``MIN_TISSUE_PIXELS`` stained pixels or the two
        stains cannot be told apart.
    """
    pixels = np.asarray(patches).reshape(-1, 3)
    step = max(1, math.ceil(len(pixels) / MAX_MEASURED_PIXELS))
    density = _optical_density(pixels[::step])
    tissue = density[np.all(density >= TISSUE_DENSITY, axis=1)]
    if len(tissue) < MIN_TISSUE_PIXELS:
        return None
    # eigh sorts ascending: the last two eigenvectors span the plane of most variance.
    plane = np.linalg.eigh(np.cov(tissue.T))[1][:, 1:]
    in_plane = tissue @ plane
    angles = np.arctan2(in_plane[:, 1], in_plane[:, 0])
    low, high = np.percentile(angles, [HUE_PERCENTILE, 100 - HUE_PERCENTILE])
    first, second = (plane @ np.array([np.cos(a), np.sin(a)]) for a in (low, high))
    if first[0] < second[0]:
        first, second = second, first
    stains = np.column_stack([first, second])
    stains *= np.sign(stains.sum(axis=0))
    if abs(first @ second) > 0.999 or not np.all(stains.sum(axis=0) > 0):
        return None
    amounts = density @ np.linalg.pinv(stains).T
    max_concentrations = np.percentile(amounts, 99, axis=0)
    if not np.all(max_concentrations > 0):
        return None
    return stains, max_concentrations


def _optical_density(patches: np.ndarray) -> np.ndarray:
    """Pixels as optical density, one row of 3 per pixel, in float64."""
    pixels = patches.reshape(-1, 3)
    if pixels.dtype == np.uint8:
        return _DENSITY_OF_UINT8[pixels]
    return -np.log((pixels.astype(np.float64) + 1.0) / LIGHT_INTENSITY)
