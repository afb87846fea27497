"""benchmarks/cv_accuracy.py, run on the bundled sample with a tiny budget."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from idcclf.datasets import sample_path

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "cv_accuracy.py"


def run_script(tmp_path, *args):
    out = tmp_path / "cv.json"
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--data", str(sample_path()), "--folds", "2"]
        + ["--epochs", "1", "--fraction", "0.3", "--out", str(out), *args],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(out.read_text()), done.stdout


@pytest.mark.parametrize("seeds", [1, 2])
def test_folds_are_patient_disjoint_and_summarized(tmp_path, seeds):
    result, stdout = run_script(tmp_path, "--seeds", str(seeds), "--set", "batch_size=64")
    assert result["seeds"] == seeds and result["params"] == {"batch_size": 64}
    folds = result["folds"]
    assert len(folds) == 2
    # Every patient is tested exactly once, so no patient trains the model that scores it.
    tested = [p for fold in folds for p in fold["test_patients"]]
    assert (
        len(tested) == len(set(tested)) == len([d for d in sample_path().iterdir() if d.is_dir()])
    )
    for fold in folds:
        assert 0.0 <= fold["balanced_accuracy"] <= 1.0
        assert sum(map(sum, fold["confusion_matrix"])) == fold["n_samples"]
    summary = result["summary"]
    mean = sum(f["roc_auc"] for f in folds) / 2
    assert summary["roc_auc"]["mean"] == pytest.approx(mean)
    assert "roc_auc_with_tta" in summary
    # A seed ensemble reports its first model beside it and no validation threshold,
    # since each of its models held out other validation patients.
    assert ("roc_auc_first_model" in summary) == (seeds > 1)
    assert ("balanced_accuracy_at_validation_threshold" in summary) == (seeds == 1)
    if seeds > 1:
        # Models of other seeds differ, so their mean ranks patches unlike the first alone.
        assert any(f["roc_auc_first_model"] != f["roc_auc"] for f in folds)
    assert "fold 2:" in stdout


@pytest.mark.parametrize(
    "args, message",
    [
        (["--seeds", "0"], "--seeds must be at least 1, got 0"),
        (["--seeds", "2", "--set", "random_state=3"], "same model"),
    ],
)
def test_bad_seed_options_are_named(args, message):
    done = subprocess.run(
        [sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2
    assert message in done.stderr
