"""Checks of the settings and patches given to IDCClassifier (idcclf._inputs)."""

import re
import warnings

import numpy as np
import pytest

from idcclf import IDCClassifier
from idcclf._inputs import (
    as_images,
    check_input_range,
    check_params,
    check_sample_weight,
    infer_image_shape,
)

PIXELS = (0.0, 255.0)  # a training range on the 0-255 scale
UNIT = (0.0, 1.0)


def test_unit_floats_are_refused_after_pixel_training():
    X = np.full((2, 4, 4, 3), 0.5, np.float32)
    with pytest.raises(ValueError) as info:
        check_input_range(X, PIXELS, "error")
    message = str(info.value)
    for part in ("from 0.5 to 0.5", "trained on 0-255 pixels", "X * 255", "input_range_check"):
        assert part in message
    with pytest.warns(UserWarning, match="X \\* 255"):
        check_input_range(X, PIXELS, "warn")


@pytest.mark.parametrize(
    "X",
    [
        np.ones((2, 4, 4, 3), np.uint8),  # an all-dark uint8 batch: max 1
        np.zeros((2, 4, 4, 3), np.float32),  # black, in either scale
        np.eye(4, dtype=np.float64)[None, :, :, None].repeat(3, axis=-1),  # 0s and 1s only
        np.full((2, 4, 4, 3), 200.0),  # floats on the training scale
    ],
)
def test_inputs_plausible_on_the_pixel_scale_pass(X):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_input_range(X, PIXELS, "error")


def test_pixels_are_refused_after_unit_training():
    with pytest.raises(ValueError, match=re.escape("X / 255")):
        check_input_range(np.full((1, 2, 2, 3), 180, np.uint8), UNIT, "error")
    check_input_range(np.full((1, 2, 2, 3), 1, np.uint8), UNIT, "error")  # dark: passes
    check_input_range(np.full((1, 2, 2, 3), 1.01), UNIT, "error")  # rounding: passes


@pytest.mark.parametrize("trained", [None, (-2.0, 3.0), (0.0, 3.0)])
def test_other_training_ranges_check_nothing(trained):
    # None: a model saved before the range was recorded; negative or small maxima:
    # features of another kind (standardized, counts), where no scale can be told.
    for X in (np.full((1, 3), 0.25), np.full((1, 3), 250.0)):
        check_input_range(X, trained, "error")


def test_channels_first_images_are_refused_with_the_fix():
    X = np.zeros((2, 3, 50, 50), np.uint8)
    with pytest.raises(ValueError, match=r"channels last.*np\.moveaxis\(X, 1, -1\)"):
        infer_image_shape(X, None)
    with pytest.raises(ValueError, match=r"channels-first.*\(50, 50, 3\)"):
        as_images(X, (50, 50, 3))
    assert infer_image_shape(np.zeros((2, 3, 50, 2)), None) == (3, 50, 2)  # 2 channels


@pytest.mark.parametrize(
    "weights, match",
    [
        ([1.0, -1.0, 1.0], "Negative values .*sample_weight"),
        ([1.0, np.nan, 1.0], "sample_weight contains NaN"),
        ([1.0, np.inf, 1.0], "sample_weight contains infinity"),
        ([1.0, 1.0], "sample_weight.shape == \\(2,\\), expected \\(3,\\)"),
    ],
)
def test_bad_sample_weights_name_the_parameter(weights, match):
    with pytest.raises(ValueError, match=match):
        check_sample_weight(weights, np.zeros((3, 4)))


@pytest.mark.parametrize(
    "change, match",
    [
        ({"class_weight": {0: 1.0, 1: -2.0}}, r"class_weight\[1\]=-2.0"),
        ({"class_weight": {0: float("nan"), 1: 1.0}}, r"class_weight\[0\]=nan"),
        ({"class_weight": {0: float("inf"), 1: 1.0}}, r"class_weight\[0\]=inf"),
        ({"class_weight": {0: "1", 1: 1.0}}, r"class_weight\[0\]='1'"),
        ({"label_smoothing": 1.0}, "label_smoothing"),
        ({"label_smoothing": -0.1}, "label_smoothing"),
        ({"weight_decay": -0.1}, "weight_decay"),
        ({"mixup": -0.2}, "mixup"),
        ({"mixup": "0.2"}, "mixup"),
        ({"weight_decay": float("nan")}, "weight_decay"),
        ({"weight_averaging": -0.5}, "weight_averaging"),
        ({"weight_averaging": float("inf")}, "weight_averaging"),
        ({"weight_averaging": "1"}, "weight_averaging"),
        ({"undersample": "yes"}, "undersample"),
        ({"input_range_check": "ignore"}, "input_range_check"),
        (
            {"undersample": True, "class_weight": {0: 1.0, 1: 3.0}},
            "undersample=True .* class_weight=None",
        ),
    ],
)
def test_bad_settings_name_the_parameter(change, match):
    params = IDCClassifier().set_params(**change).get_params()
    with pytest.raises(ValueError, match=match):
        check_params(params)


def test_good_settings_pass():
    check_params(IDCClassifier().get_params())
    check_params(
        IDCClassifier(undersample=True, label_smoothing=0.1, input_range_check="warn").get_params()
    )
    check_params(IDCClassifier(class_weight={0: 1, 1: 2.5}).get_params())
