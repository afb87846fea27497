"""benchmarks/smoothing.py on a synthetic predictions file."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "smoothing.py"


def synthetic_predictions(path: Path) -> dict:
    """Two folds; patient "w" is a whole 6 x 6 slide, IDC on its left half, one wrong
    call per row; patient "p" of fold 2 is three scattered patches."""
    cols, rows = np.meshgrid(np.arange(6), np.arange(6))
    coords = np.column_stack([cols.ravel(), rows.ravel()]) * 50 + 1
    label = (coords[:, 0] < 150).astype(int)
    proba = np.where(label == 1, 0.8, 0.2)
    wrong = np.arange(6) * 6 + np.arange(6)  # the diagonal: one error per row
    proba[wrong] = 1 - proba[wrong]
    arrays = {
        "fold": np.array([1] * 36 + [2] * 36 + [2] * 3),
        "patient": np.array(["w"] * 36 + ["v"] * 36 + ["p"] * 3),
        "coords": np.vstack([coords, coords, [[1, 1], [501, 1], [1, 501]]]),
        "label": np.concatenate([label, label, [1, 0, 1]]),
        "proba": np.concatenate([proba, proba, [0.9, 0.1, 0.4]]),
    }
    np.savez(path, **arrays)
    return arrays


def test_smoothing_fixes_isolated_errors_and_keeps_radius_0(tmp_path):
    arrays = synthetic_predictions(tmp_path / "pred.npz")
    whole = tmp_path / "whole"
    for patient in ("w", "v"):
        (whole / patient).mkdir(parents=True)
    out = tmp_path / "rows.json"
    done = subprocess.run(
        [sys.executable, str(SCRIPT), str(tmp_path / "pred.npz"), "--radius", "0", "1"]
        + ["--whole-slides", str(whole), "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    saved = json.loads(out.read_text())
    rows = {(r["fold"], r["radius"]): r for r in saved["folds"]}
    fold2 = arrays["fold"] == 2
    # Radius 0 is the cross-validation as it was.
    assert rows[2, 0]["roc_auc"] == pytest.approx(
        roc_auc_score(arrays["label"][fold2], arrays["proba"][fold2])
    )
    assert rows[1, 0]["balanced_accuracy"] == pytest.approx(30 / 36)
    # Each wrong call sits among right ones: its 3 x 3 mean is on the right side.
    assert rows[1, 1]["balanced_accuracy"] > rows[1, 0]["balanced_accuracy"]
    assert rows[2, 1]["n_whole_slide_patients"] == 1  # "p" is not under --whole-slides
    assert rows[2, 1]["balanced_accuracy_whole_slides"] == rows[1, 1]["balanced_accuracy"]
    assert "| mean ± std | 1 |" in done.stdout and done.stdout.count("\n| 2 | ") == 2
    # Pooled: all 3 patients, or the 2 whole slides, each with a patient interval.
    pooled = {(r["radius"], r["patients"]): r for r in saved["pooled"]}
    assert pooled[0, "all"]["n_patients"] == 3 and pooled[1, "whole_slides"]["n_patients"] == 2
    bac = pooled[1, "whole_slides"]["balanced_accuracy"]
    assert bac["low"] <= bac["estimate"] <= bac["high"]
    assert bac["estimate"] == pytest.approx(rows[1, 1]["balanced_accuracy"])  # w, v alike
    assert "| 1 | whole slides | 2 |" in done.stdout


def test_missing_file_and_bad_radius(tmp_path):
    for args, message in (
        ([str(tmp_path / "none.npz")], "no predictions at"),
        ([str(tmp_path / "none.npz"), "--radius", "-1"], "--radius"),
    ):
        done = subprocess.run(
            [sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 2 and message in done.stderr


def test_one_model_of_a_seed_ensemble(tmp_path):
    arrays = synthetic_predictions(tmp_path / "pred.npz")
    # The second model calls every patch right; the ensemble mean is saved as "proba".
    perfect = np.where(arrays["label"] == 1, 0.9, 0.1)
    per_model = np.column_stack([arrays["proba"], perfect])
    np.savez(
        tmp_path / "ensemble.npz",
        **{**arrays, "proba": per_model.mean(axis=1), "proba_per_model": per_model},
    )
    scores = {}
    for model in ("1", "2"):
        out = tmp_path / f"model{model}.json"
        done = subprocess.run(
            [sys.executable, str(SCRIPT), str(tmp_path / "ensemble.npz"), "--radius", "0"]
            + ["--model", model, "--out", str(out)],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr[-2000:]
        rows = json.loads(out.read_text())["folds"]
        scores[model] = {r["fold"]: r["balanced_accuracy"] for r in rows}
    assert scores["1"][1] == pytest.approx(30 / 36)  # the first model alone, as saved
    assert scores["2"] == {1: 1.0, 2: 1.0}
    for args, message in (
        ([str(tmp_path / "pred.npz"), "--model", "1"], "no proba_per_model"),
        ([str(tmp_path / "ensemble.npz"), "--model", "3"], "--model must be 1 to 2"),
    ):
        done = subprocess.run(
            [sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 2 and message in done.stderr
