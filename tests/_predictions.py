"""Hand-made ``cv_accuracy.py --predictions`` files for the tests of the scripts that read them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def save_predictions(path, fold, patient, label, proba, order=None) -> None:
    """One prediction per patch, with its patch on its own slide column; ``order`` shuffles."""
    order = np.arange(len(label)) if order is None else order
    coords = np.stack([np.arange(len(label)) * 50, np.zeros(len(label), int)], axis=1)
    np.savez(
        path,
        fold=np.asarray(fold)[order],
        patient=np.asarray(patient)[order],
        coords=coords[order],
        label=np.asarray(label)[order],
        proba=np.asarray(proba, dtype=float)[order],
    )


def run_script(name: str, *args) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(BENCHMARKS / name), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
    )
