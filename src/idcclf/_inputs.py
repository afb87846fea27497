"""Checks of the settings and patches given to ``IDCClassifier``, naming the culprit."""

from __future__ import annotations

import math
import numbers
import warnings
from collections.abc import Sequence

import numpy as np
from sklearn.utils.validation import _check_sample_weight, check_array

from ._training import LR_SCHEDULES, OPTIMIZERS

#: A training input counts as 0-255 pixels when its values are >= 0 and reach this: real
#: patches (white background near 255) always do; features of other scales rarely do.
PIXEL_SCALE_MIN = 16.0
#: A model trained on [0, 1] refuses input above this: twice its largest training value.
UNIT_SCALE_MAX = 2.0


def check_params(params: dict) -> None:
    """Refuse unknown or out-of-range settings of an ``IDCClassifier``, naming them."""
    if params["optimizer"] not in OPTIMIZERS:
        raise ValueError(
            f"optimizer must be one of {sorted(OPTIMIZERS)}, got {params['optimizer']!r}"
        )
    if params["lr_schedule"] not in LR_SCHEDULES:
        raise ValueError(
            f"lr_schedule must be one of {list(LR_SCHEDULES)}, got {params['lr_schedule']!r}"
        )
    batch_size, epochs = params["batch_size"], params["epochs"]
    checks = {
        "learning_rate": params["learning_rate"] > 0,
        "batch_size": isinstance(batch_size, numbers.Integral) and batch_size > 0,
        "epochs": isinstance(epochs, numbers.Integral) and epochs > 0,
        "validation_fraction": 0.0 <= params["validation_fraction"] < 1.0,
        "n_iter_no_change": params["n_iter_no_change"] >= 1,
        "stain_jitter": 0.0 <= params["stain_jitter"] < 1.0,
        "label_smoothing": _is_real(params["label_smoothing"], 0.0, 1.0),
        "weight_decay": _is_real(params["weight_decay"], 0.0, math.inf),
        "mixup": _is_real(params["mixup"], 0.0, math.inf),
        "weight_averaging": _is_real(params["weight_averaging"], 0.0, math.inf),
        "undersample": isinstance(params["undersample"], (bool, np.bool_)),
        "normalize_stains": isinstance(params["normalize_stains"], (bool, np.bool_)),
        "input_range_check": params["input_range_check"] in ("error", "warn"),
    }
    for param, ok in checks.items():
        if not ok:
            raise ValueError(f"{param}={params[param]!r} is out of range")
    if params["early_stopping"] and params["validation_fraction"] == 0:
        raise ValueError(
            "early_stopping=True needs a validation split: set validation_fraction > 0"
        )
    _check_class_weight(params["class_weight"], params["undersample"])


def _is_real(value, low: float, high: float) -> bool:
    """Whether ``value`` is a real number in ``[low, high)``."""
    return isinstance(value, numbers.Real) and low <= value < high


def _check_class_weight(class_weight, undersample: bool) -> None:
    """Refuse a class_weight that is not None, 'balanced' or a dict of weights >= 0."""
    if not (class_weight is None or class_weight == "balanced" or isinstance(class_weight, dict)):
        raise ValueError(f"class_weight must be None, 'balanced' or a dict, got {class_weight!r}")
    if isinstance(class_weight, dict):
        for label, weight in class_weight.items():
            if not _is_real(weight, 0.0, math.inf):
                raise ValueError(
                    f"class_weight[{label!r}]={weight!r}: class weights must be finite "
                    "non-negative numbers"
                )
    if undersample and isinstance(class_weight, dict):
        raise ValueError(
            f"undersample=True balances the classes in every epoch already; "
            f"class_weight={class_weight!r} would weight them twice: set class_weight=None "
            "(or 'balanced', which is then equal weights)"
        )


def check_pixel_dtype(X):
    """Reject dtypes that cannot be pixel values instead of silently casting them."""
    dtype = getattr(X, "dtype", None)
    if dtype is not None and np.dtype(dtype).kind in "bmMV":
        raise ValueError(f"X has dtype {np.dtype(dtype)}; pass pixels as uint8 (0-255) or floats")
    return X


def check_pixels(X) -> np.ndarray:
    """``X`` as an array the network can take: uint8 as it is, floats as float32.

    NaN, infinity, text and non-pixel dtypes are refused, as are float64 values beyond
    float32's range (they would silently become infinite).
    """
    X = check_array(check_pixel_dtype(X), allow_nd=True, dtype="numeric")
    if X.dtype.kind == "f" and X.dtype != np.float32:
        if X.dtype.itemsize > 4 and X.size:
            largest = max(float(X.max()), -float(X.min()))
            if largest > float(np.finfo(np.float32).max):
                raise ValueError(
                    f"X has values up to {largest:.3g} in magnitude, beyond float32 "
                    "(the network's precision); pass pixel values"
                )
        X = X.astype(np.float32)  # Keras computes in float32; float64 would be cast anyway
    return X


def check_training_input(X: np.ndarray, y, input_shape, rescale) -> tuple[int, ...]:
    """Check what a fit needs of ``X`` and ``y``; return the shape of one patch.

    Warns when floats in [0, 1] meet a ``rescale`` that would divide them again.
    """
    if y is not None and np.unique(y).size < 2:
        raise ValueError(
            f"y has a single class {np.unique(y)!r}; IDCClassifier needs at least "
            "2 classes (got 1 class)"
        )
    if X.shape[0] < 2:
        raise ValueError(f"IDCClassifier needs at least 2 samples, got n_samples = {X.shape[0]}")
    if rescale is not None and X.dtype.kind == "f" and X.size and X.max() <= 1.0:
        warnings.warn(
            f"X holds floats in [0, 1] but rescale={rescale!r} divides them "
            "again; pass 0-255 pixels (uint8) or set rescale=None",
            UserWarning,
            stacklevel=7,
        )
    return infer_image_shape(X, input_shape)


def infer_image_shape(X: np.ndarray, input_shape: Sequence[int] | None) -> tuple[int, ...]:
    """Shape of one patch: ``input_shape``, or taken from ``X`` when it is None.

    Images whose last axis is too long for channels (over 4) while their first axis
    could be channels (1, 3 or 4) are refused as channels-first.
    """
    if input_shape is None:
        if X.ndim == 4:
            if X.shape[-1] > 4 and X.shape[1] in (1, 3, 4):
                raise ValueError(_channels_first_message(X.shape))
            return tuple(X.shape[1:])
        if X.ndim == 2:
            return (1, X.shape[1], 1)
        raise ValueError(
            f"X must be images (n, height, width, channels) or rows (n, values), "
            f"got shape {X.shape}"
        )
    shape = tuple(int(d) for d in input_shape)
    if len(shape) != 3:
        raise ValueError(f"input_shape must be (height, width, channels), got {shape}")
    return shape


def as_images(X: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Reshape rows to images of ``shape`` (a view) and check images against it."""
    n_values = math.prod(shape)
    if X.ndim == 2:
        if X.shape[1] != n_values:
            raise ValueError(
                f"X has {X.shape[1]} features, but IDCClassifier is expecting "
                f"{n_values} features as input (rows of a {shape} patch flattened)"
            )
        return X.reshape((X.shape[0], *shape))
    if X.ndim == 4:
        if tuple(X.shape[1:]) != shape:
            if tuple(X.shape[1:]) == (shape[2], shape[0], shape[1]):
                raise ValueError(_channels_first_message(X.shape, shape))
            raise ValueError(
                f"X has images of shape {tuple(X.shape[1:])}, but IDCClassifier is "
                f"expecting images of shape {shape}"
            )
        return X
    raise ValueError(
        f"X must be images (n, height, width, channels) or rows (n, values), "
        f"got an array of shape {X.shape}"
    )


def _channels_first_message(X_shape, expected=None) -> str:
    expecting = "" if expected is None else f" {expected}"
    return (
        f"X has images of shape {tuple(X_shape[1:])}, which look channels-first "
        f"(channels, height, width); IDCClassifier expects channels last "
        f"(height, width, channels){expecting}: pass np.moveaxis(X, 1, -1), i.e. "
        "X.transpose(0, 2, 3, 1)"
    )


def value_range(X: np.ndarray) -> tuple[float, float]:
    """Smallest and largest value of ``X``."""
    return float(X.min()), float(X.max())


def check_input_range(X: np.ndarray, trained: tuple[float, float] | None, mode: str) -> None:
    """Refuse (or, with ``mode='warn'``, warn about) X on another scale than at fit.

    ``trained`` is the training input's (min, max); None (a model saved before it was
    recorded) checks nothing. Two mistakes are caught, and only when the training
    input was non-negative:

    - trained on 0-255 pixels (max >= 16), given floats all in [0, 1], one at least
      fractional: what ``X / 255`` looks like. Integer inputs (an all-dark uint8
      batch has a small max too) and float batches of whole numbers only (0s and
      1s: black on either scale) pass.
    - trained on [0, 1] (max <= 1), given values above 2: what 0-255 pixels look like.
    """
    if trained is None or X.size == 0 or trained[0] < 0:
        return
    low, high = trained
    if high >= PIXEL_SCALE_MIN and X.dtype.kind == "f":
        seen = value_range(X)
        if seen[0] >= 0 and seen[1] <= 1 and np.any(X != np.floor(X)):
            _refuse_range(seen, trained, "0-255 pixels", "X * 255 (or the uint8 patches)", mode)
    elif high <= 1.0:
        seen = value_range(X)
        if seen[1] > UNIT_SCALE_MAX:
            _refuse_range(seen, trained, "values in [0, 1]", "X / 255", mode)


def _refuse_range(seen, trained, scale: str, fix: str, mode: str) -> None:
    message = (
        f"X has values from {seen[0]:.4g} to {seen[1]:.4g}, but this IDCClassifier was "
        f"trained on {scale} (from {trained[0]:.4g} to {trained[1]:.4g}); pass X on the "
        f"training scale, e.g. {fix}, or set input_range_check='warn' to predict anyway"
    )
    if mode == "warn":
        warnings.warn(message, UserWarning, stacklevel=6)  # the caller of predict
    else:
        raise ValueError(message)


def check_known_labels(y, classes: np.ndarray) -> None:
    """Refuse labels never seen at fit: they could never be predicted."""
    unseen = sorted(set(np.unique(np.asarray(y)).tolist()) - set(classes.tolist()), key=str)
    if unseen:
        raise ValueError(
            f"y has labels never seen at fit: {unseen}; this IDCClassifier was fitted "
            f"on classes {classes.tolist()}"
        )


def check_sample_weight(sample_weight, X) -> np.ndarray:
    """One finite, non-negative weight per sample of ``X``, not all zero."""
    return _check_sample_weight(sample_weight, X, ensure_non_negative=True)


def check_groups(groups, n_samples: int) -> np.ndarray | None:
    """``groups`` as a 1-D array of one patient id per sample, or None."""
    if groups is None:
        return None
    groups = np.asarray(groups)
    if groups.ndim != 1 or len(groups) != n_samples:
        raise ValueError(
            f"groups has shape {groups.shape}, but X has {n_samples} samples; "
            "pass one patient id per sample"
        )
    return groups
