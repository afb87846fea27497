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


#: Settings of the small CancerNet that tests fit on real patches: seconds per epoch.
TINY_PARAMS = dict(filters=(4, 8, 8), dense_units=8, epochs=2, batch_size=32, random_state=0)


@pytest.fixture(scope="session")
def tiny_sample():
    """About 320 real patches of 4 sample patients, up to 40 per class and patient.

    Returns read-only ``(X, y, groups)``: uint8 images, labels 0/1 and patient ids.
    """
    import numpy as np

    from idcclf import load_sample

    bunch = load_sample()
    rng = np.random.default_rng(0)
    keep = []
    for patient in np.unique(bunch.groups)[:4]:
        for label in (0, 1):
            idx = np.flatnonzero((bunch.groups == patient) & (bunch.target == label))
            keep += list(rng.choice(idx, size=min(40, len(idx)), replace=False))
    keep = np.sort(keep)
    arrays = bunch.data[keep], bunch.target[keep], bunch.groups[keep]
    for array in arrays:
        array.flags.writeable = False  # shared by every test of the session
    return arrays


@pytest.fixture
def tiny_params() -> dict:
    """A fresh copy of the settings of ``tiny_classifier``, to vary in a test."""
    return dict(TINY_PARAMS)


@pytest.fixture(scope="session")
def tiny_classifier(tiny_sample):
    """A small IDCClassifier fitted once per session on ``tiny_sample``.

    ``TINY_PARAMS`` (2 epochs, augmentation on), fitted with ``groups``, so its
    validation split holds out whole patients. Shared: a test that changes a setting
    must put it back (or work on ``sklearn.base.clone`` of it and refit).
    """
    from idcclf import IDCClassifier

    X, y, groups = tiny_sample
    return IDCClassifier(**TINY_PARAMS).fit(X, y, groups=groups)
