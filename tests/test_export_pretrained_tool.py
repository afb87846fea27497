"""tools/export_pretrained.py, run on the bundled sample with a tiny model."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from idcclf import load_pretrained, load_sample
from idcclf.datasets import sample_path

SCRIPT = Path(__file__).resolve().parents[1] / "tools" / "export_pretrained.py"
TINY = ["--set", "filters=(4, 8, 8)", "--set", "dense_units=8"]
PARAMS = {"class_weight": "balanced", "filters": [4, 8, 8], "dense_units": 8}


def cv_file(tmp_path, **changes):
    record = {
        "command": "python benchmarks/cv_accuracy.py ...",
        "recipe": "default",
        "epochs": 1,
        "params": PARAMS,
        "folds": [{"fold": 1}],
        "summary": {"balanced_accuracy": {"mean": 0.8, "std": 0.01}},
        **changes,
    }
    path = tmp_path / "cv.json"
    path.write_text(json.dumps(record))
    return str(path)


def run_tool(tmp_path, cv, *args):
    return subprocess.run(
        [sys.executable, str(SCRIPT), "--data", str(sample_path()), "--epochs", "1"]
        + ["--cv", cv, "--folder", str(tmp_path / "model"), *TINY, *args],
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_exported_model_loads_with_its_provenance(tmp_path):
    done = run_tool(tmp_path, cv_file(tmp_path))
    assert done.returncode == 0, done.stderr[-2000:]
    clf = load_pretrained(tmp_path / "model")
    assert clf.get_params()["filters"] == [4, 8, 8]
    info = clf.pretrained_info_
    assert info["cross_validation"][0]["summary"]["balanced_accuracy"]["mean"] == 0.8
    n_patients = len({p.name for p in sample_path().iterdir() if p.is_dir()})
    assert f"{n_patients} patients" in info["data"] and "--epochs 1" in info["command"]
    X, _ = load_sample(return_X_y=True)
    proba = clf.predict_proba(X[:20])
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-5)


def test_cv_of_another_recipe_is_refused(tmp_path):
    done = run_tool(tmp_path, cv_file(tmp_path, epochs=6))
    assert done.returncode == 2 and "trained 6 epochs, not 1" in done.stderr
    done = run_tool(tmp_path, cv_file(tmp_path, recipe="tutorial"))
    assert done.returncode == 2 and "is of recipe tutorial" in done.stderr
    assert not (tmp_path / "model").exists()


def test_attach_only_replaces_the_figures_of_the_same_recipe(tmp_path):
    done = run_tool(tmp_path, cv_file(tmp_path))
    assert done.returncode == 0, done.stderr[-2000:]
    weights = (tmp_path / "model" / "cancernet_weights.npz").read_bytes()
    later = cv_file(tmp_path, summary={"balanced_accuracy": {"mean": 0.9, "std": 0.0}})
    done = run_tool(tmp_path, later, "--attach-only")
    assert done.returncode == 0, done.stderr[-2000:]
    (cv,) = load_pretrained(tmp_path / "model").pretrained_info_["cross_validation"]
    assert cv["summary"]["balanced_accuracy"]["mean"] == 0.9
    assert (tmp_path / "model" / "cancernet_weights.npz").read_bytes() == weights
    # A CV of other settings than the stored model's is refused.
    done = run_tool(
        tmp_path,
        cv_file(tmp_path, params={**PARAMS, "dense_units": 16}),
        "--attach-only",
        "--set",
        "dense_units=16",
    )
    assert done.returncode == 2 and "was not trained with" in done.stderr
