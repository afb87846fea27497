"""benchmarks/compare_patients.py on two small hand-made prediction files."""

import subprocess
import sys
from pathlib import Path

import numpy as np

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "compare_patients.py"


def save(path, fold, patient, label, proba, order=None):
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


def run(*args):
    return subprocess.run(
        [sys.executable, str(SCRIPT), *map(str, args)], capture_output=True, text=True, timeout=120
    )


def test_patients_are_lined_up_and_compared(tmp_path):
    fold = [1, 1, 1, 1, 2, 2, 2, 2]
    patient = ["p", "p", "p", "q", "r", "r", "r", "r"]
    label = [1, 1, 0, 0, 1, 0, 0, 0]
    save(tmp_path / "a.npz", fold, patient, label, [0.9, 0.2, 0.1, 0.6, 0.7, 0.4, 0.3, 0.2])
    # The second run saved its patches in another order.
    save(
        tmp_path / "b.npz",
        fold,
        patient,
        label,
        [0.9, 0.8, 0.6, 0.1, 0.2, 0.4, 0.3, 0.2],
        order=np.arange(8)[::-1],
    )
    done = run(tmp_path / "a.npz", tmp_path / "b.npz")
    assert done.returncode == 0, done.stderr
    # p: sensitivity 1/2 -> 2/2, specificity 1 -> 0; q: specificity 0 -> 1; r: 1 -> 0.
    assert "| p | 1 | 3 | 0.67 | 1.00 | 0.50 | 1.00 | 1.00 | 0.00 |" in done.stdout
    assert "| q | 1 | 1 | 0.00 | 0.00 | nan | nan | 0.00 | 1.00 |" in done.stdout
    assert "| r | 2 | 4 | 0.25 | 1.00 | 1.00 | 0.00 | 1.00 | 1.00 |" in done.stdout
    assert (
        "all: 3 patients, mean change per patient: sensitivity -0.250 (2 with IDC)" in done.stdout
    )
    one_fold = run(tmp_path / "a.npz", tmp_path / "b.npz", "--fold", "2")
    assert "| r |" in one_fold.stdout and "| p |" not in one_fold.stdout


def test_other_patches_are_refused(tmp_path):
    save(tmp_path / "a.npz", [1, 1], ["p", "p"], [1, 0], [0.9, 0.1])
    save(tmp_path / "b.npz", [1, 1], ["p", "x"], [1, 0], [0.9, 0.1])
    done = run(tmp_path / "a.npz", tmp_path / "b.npz")
    assert done.returncode == 2
    assert "do not hold the same test patches" in done.stderr
