"""Checks of the settings and patches given to ``IDCClassifier``, naming the culprit."""

from __future__ import annotations

import math
import numbers
import warnings
from collections.abc import Sequence

import numpy as np
from sklearn.utils.validation import check_array


def check_params(params: dict, optimizers, lr_schedules) -> None:
    """Refuse unknown or out-of-range settings of an ``IDCClassifier``, naming them."""
    if params["optimizer"] not in optimizers:
        raise ValueError(
            f"optimizer must be one of {sorted(optimizers)}, got {params['optimizer']!r}"
        )
    if params["lr_schedule"] not in lr_schedules:
        raise ValueError(
            f"lr_schedule must be one of {list(lr_schedules)}, got {params['lr_schedule']!r}"
        )
    batch_size, epochs = params["batch_size"], params["epochs"]
    checks = {
        "learning_rate": params["learning_rate"] > 0,
        "batch_size": isinstance(batch_size, numbers.Integral) and batch_size > 0,
        "epochs": isinstance(epochs, numbers.Integral) and epochs > 0,
        "validation_fraction": 0.0 <= params["validation_fraction"] < 1.0,
        "n_iter_no_change": params["n_iter_no_change"] >= 1,
        "stain_jitter": 0.0 <= params["stain_jitter"] < 1.0,
    }
    for param, ok in checks.items():
        if not ok:
            raise ValueError(f"{param}={params[param]!r} is out of range")
    if params["early_stopping"] and params["validation_fraction"] == 0:
        raise ValueError(
            "early_stopping=True needs a validation split: set validation_fraction > 0"
        )
    class_weight = params["class_weight"]
    if not (class_weight is None or class_weight == "balanced" or isinstance(class_weight, dict)):
        raise ValueError(f"class_weight must be None, 'balanced' or a dict, got {class_weight!r}")


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
    """Shape of one patch: ``input_shape``, or taken from ``X`` when it is None."""
    if input_shape is None:
        if X.ndim == 4:
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
            raise ValueError(
                f"X has images of shape {tuple(X.shape[1:])}, but IDCClassifier is "
                f"expecting images of shape {shape}"
            )
        return X
    raise ValueError(
        f"X must be images (n, height, width, channels) or rows (n, values), "
        f"got an array of shape {X.shape}"
    )


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
