"""idcclf.datasets._base: patch file names."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from idcclf.datasets import (
    parse_patch_filename,
)
from idcclf.datasets._base import USABLE, Patch, Status

pytest_plugins = ["_patch_fixtures"]


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("8863_idx5_x51_y1251_class0.png", ("8863", 51, 1251, 0)),
        ("12955_idx5_x2401_y1_class1.png", ("12955", 2401, 1, 1)),
        ("/data/8863/1/8863_idx5_x0_y0_class1.png", ("8863", 0, 0, 1)),
        (Path("8863/0/8863_idx5_x100_y7_class0.png"), ("8863", 100, 7, 0)),
    ],
)
def test_parse_patch_filename_good(name, expected):
    assert parse_patch_filename(name) == expected


@pytest.mark.parametrize(
    "name",
    [
        "8863_idx5_x51_y1251_class2.png",
        "8863_idx5_x51_y1251.png",
        "8863_idx5_x51_class0.png",
        "8863_idx5_xA_y1_class0.png",
        "8863_idx5_x-1_y1_class0.png",
        "8863_idx5_x51_y1251_class0.jpg",
        "8863_idx5_x51_y1251_class0.png.bak",
        "_idx5_x1_y1_class0.png",
        "8863_idx4_x1_y1_class0.png",
        "README.png",
        "",
    ],
)
def test_parse_patch_filename_bad(name):
    with pytest.raises(ValueError, match=re.escape(repr(name))):
        parse_patch_filename(name)


def test_patch_records_sort_in_row_order():
    a = Patch("10", 1, "10_idx5_x0_y0_class1.png", 0, 0, "10/1")
    b = Patch("10", 0, "10_idx5_x9_y0_class0.png", 9, 0, "10/0")
    c = Patch("9", 0, "9_idx5_x0_y0_class0.png", 0, 0, "9/0")
    assert sorted([a, c, b]) == [b, a, c]  # patient (as text), then label, then name
    assert a.relpath == "10/1/10_idx5_x0_y0_class1.png"
    assert (a.patient, a.label, a.x) == ("10", 1, 0)


def test_status_codes_are_stable_ints():
    # Statuses travel between processes and into int8 arrays as these numbers.
    assert [int(s) for s in Status] == [0, 1, 2, 3, 4]
    assert Status.BAD not in USABLE and Status.DROPPED not in USABLE
