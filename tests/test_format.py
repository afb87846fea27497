"""idcclf._format: one rule for undefined values in text, Markdown and CSV."""

import math

import numpy as np
import pytest

from idcclf._format import MISSING, format_mean_std, format_value, is_missing, plural


@pytest.mark.parametrize(
    "value", [None, float("nan"), np.float32("nan"), math.inf, -np.inf, np.float64("nan")]
)
def test_undefined_values_are_missing(value):
    assert is_missing(value)
    assert format_value(value) == MISSING == "n/a"
    assert format_value(value, missing="") == ""
    assert format_mean_std(value, 0.1) == "n/a"


@pytest.mark.parametrize(
    ("value", "digits", "text"),
    [
        (0.81234, 3, "0.812"),
        (np.float32(0.5), 4, "0.5000"),
        (np.float64(1 / 3), 6, "0.333333"),
        (7, 3, "7"),
        (np.int64(12), 3, "12"),
        (True, 3, "True"),
        ("8863", 3, "8863"),
    ],
)
def test_defined_values(value, digits, text):
    assert not is_missing(value)
    assert format_value(value, digits) == text


def test_mean_std_and_plural():
    assert format_mean_std(0.8161, 0.0342) == "0.816 ± 0.034"
    assert format_mean_std(61.04, 3.3, 1) == "61.0 ± 3.3"
    assert plural(1, "epoch") == "1 epoch" and plural(3, "epoch") == "3 epochs"
