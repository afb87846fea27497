"""Shared pytest fixtures."""

import os
from pathlib import Path

# scikit-learn's array-API check of IDCClassifier (NumPy inputs with array-API dispatch
# on) runs only when SciPy is in array-API mode, which must be chosen before SciPy is
# first imported; without it the check is skipped.
os.environ.setdefault("SCIPY_ARRAY_API", "1")

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
