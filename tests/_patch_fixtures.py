"""Fixtures of the loader tests; a plugin of the test modules (``pytest_plugins``)."""

from __future__ import annotations

from pathlib import Path

import pytest
from _patches import make_tree


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """A data_home that does not exist yet."""
    return tmp_path / "data_home"


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """Patients 10 and 11, two patches of each class each."""
    return make_tree(tmp_path / "idc")
