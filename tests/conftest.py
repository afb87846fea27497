"""Shared pytest fixtures."""

from pathlib import Path

import pytest

# The real patient folders live next to the repository (../shared/data/idc); a fresh
# clone or an installed package does not have them.
REAL_IDC_ROOT = Path(__file__).resolve().parents[2] / "shared" / "data" / "idc"


@pytest.fixture(scope="session")
def real_idc_root() -> Path:
    """Root of the real IDC patient folders; skips the test when they are absent."""
    if not REAL_IDC_ROOT.is_dir():
        pytest.skip(f"real IDC data not found at {REAL_IDC_ROOT} (needs ../shared/data/idc)")
    return REAL_IDC_ROOT
