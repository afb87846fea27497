"""Fixtures of the loader tests; a plugin of the test modules (``pytest_plugins``)."""

from __future__ import annotations

from pathlib import Path

import pytest
from _patches import make_tree, write_patch


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """A data_home that does not exist yet."""
    return tmp_path / "data_home"


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """Patients 10 and 11, two patches of each class each."""
    return make_tree(tmp_path / "idc")


@pytest.fixture
def two_roots(tmp_path: Path) -> tuple[Path, Path]:
    """Root a: patients 10 and 11; root b: patient 20, and 21 with class 0 only."""
    a = make_tree(tmp_path / "a")
    b = make_tree(tmp_path / "b", n_per_class=3, patients=("20",))
    for k in range(2):
        write_patch(b, "21", 0, 50 * k, 0)
    return a, b
