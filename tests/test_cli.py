"""The `idcclf` command line: train and predict end to end on real patches."""

import subprocess
import sys
from pathlib import Path

import joblib
import keras
import numpy as np
import pytest
from _trees import make_sample_tree

from idcclf.cli import main


@pytest.fixture(scope="module")
def tiny_tree(tmp_path_factory):
    """5 real patients from the bundled sample, up to 16 patches per class each."""
    return make_sample_tree(tmp_path_factory.mktemp("idc"), n_patients=5, per_class=16)


@pytest.fixture(scope="module")
def trained(tiny_tree, tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    code = main(
        [
            "train",
            "--data",
            str(tiny_tree),
            "--epochs",
            "2",
            "--out",
            str(out),
            "--quiet",
            "--test-size",
            "0.2",
            "--val-size",
            "0.2",
        ]
    )
    assert code == 0
    return out


def test_train_writes_model_curves_and_metrics(trained, capsys):
    assert (trained / "model.joblib").stat().st_size > 10_000
    assert (trained / "training_curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    import json

    metrics = json.loads((trained / "metrics.json").read_text())
    for key in ("accuracy", "balanced_accuracy", "sensitivity", "specificity", "f1", "roc_auc"):
        assert key in metrics
    assert np.array(metrics["confusion_matrix"]).sum() == metrics["n_samples"]
    assert not list(trained.glob(".*.tmp")), "temporary files left behind"


def test_train_prints_metrics_and_patient_split(tiny_tree, tmp_path, capsys):
    assert (
        main(
            [
                "train",
                "--data",
                str(tiny_tree),
                "--epochs",
                "1",
                "--out",
                str(tmp_path),
                "--quiet",
                "--test-size",
                "0.2",
                "--val-size",
                "0.2",
                "--lr-schedule",
                "cosine",
                "--block-dropout",
                "0.2",
            ]
        )
        == 0
    )
    model = joblib.load(tmp_path / "model.joblib")
    assert model.lr_schedule == "cosine"
    assert model.block_dropout == 0.2
    network = model.model_.get_layer("cancernet")
    rates = [layer.rate for layer in network.layers if isinstance(layer, keras.layers.Dropout)]
    assert rates == [0.2, 0.2, 0.2, 0.5]  # one per block; the head keeps its own rate
    np.testing.assert_allclose(model.history_["learning_rate"], [0.01], rtol=1e-6)
    out = capsys.readouterr().out
    for word in (
        "accuracy",
        "balanced_accuracy",
        "sensitivity",
        "specificity",
        "f1",
        "roc_auc",
        "confusion matrix",
        "test",
        "patients",
    ):
        assert word in out
    parts = {}
    for name in ("training", "validation", "test"):
        line = next(line for line in out.splitlines() if line.startswith(f"  {name} "))
        parts[name] = set(line.split(":")[1].split("(")[0].split())
    assert all(parts.values())
    assert not parts["training"] & parts["test"]
    assert not parts["validation"] & (parts["training"] | parts["test"])
    assert sorted(parts["validation"]) == sorted(map(str, model.validation_groups_))


def test_predict_prints_a_probability_per_file(trained, tiny_tree, capsys):
    patient = sorted(p for p in tiny_tree.iterdir())[0]
    one = sorted((patient / "1").glob("*.png"))[0]
    assert main(["predict", str(trained / "model.joblib"), str(patient), str(one)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    n_files = len(list(patient.rglob("*.png"))) + 1
    assert lines[0].startswith("probability") and len(lines) == n_files + 1
    for line in lines[1:]:
        proba, label, name = line.split("\t")
        assert 0.0 <= float(proba) <= 1.0 and label in {"IDC", "no IDC"}
        assert Path(name).suffix == ".png"


def test_predict_matches_the_estimator(trained, tiny_tree, capsys):
    import joblib

    from idcclf import load_idc

    model = joblib.load(trained / "model.joblib")
    patient = sorted(p.name for p in tiny_tree.iterdir())[0]
    bunch = load_idc(tiny_tree, patients=[patient], cache=False)
    expected = model.predict_proba(bunch.data)[:, 1]
    files = [str(tiny_tree / f) for f in bunch.filenames]
    assert main(["predict", str(trained / "model.joblib"), *files]) == 0
    printed = [float(line.split("\t")[0]) for line in capsys.readouterr().out.splitlines()[1:]]
    np.testing.assert_allclose(printed, expected, atol=1e-4)


def run_cli(*args):
    return subprocess.run(
        [sys.executable, "-m", "idcclf.cli", *args], capture_output=True, text=True, timeout=120
    )


@pytest.mark.parametrize("command", ["train", "predict"])
def test_help_says_what_it_does(command):
    result = run_cli(command, "--help")
    assert result.returncode == 0
    assert "usage: idcclf " + command in result.stdout
    assert len(result.stdout.split()) > 20


def test_bad_paths_give_one_line_and_exit_2(tmp_path, trained):
    not_a_model = tmp_path / "model.joblib"
    not_a_model.write_text("hello")
    truncated = tmp_path / "truncated.joblib"
    truncated.write_bytes((trained / "model.joblib").read_bytes()[:1000])
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    empty = tmp_path / "empty"
    empty.mkdir()
    cases = [
        ("train", "--data", str(tmp_path / "missing")),
        ("train", "--data", str(a_file)),
        ("train", "--data", str(empty)),
        ("train", "--epochs", "0"),
        ("train", "--lr-schedule", "linear"),
        ("train", "--block-dropout", "1"),
        ("train", "--out", str(a_file)),
        ("predict", str(tmp_path / "missing.joblib"), str(a_file)),
        ("predict", str(not_a_model), str(a_file)),
        ("predict", str(truncated), str(a_file)),
        ("predict", str(trained / "model.joblib"), str(empty)),
        ("predict", str(trained / "model.joblib"), str(a_file)),
    ]
    for args in cases:
        result = run_cli(*args)
        assert result.returncode == 2, (args, result.stderr)
        error_lines = [line for line in result.stderr.splitlines() if "error" in line]
        assert len(error_lines) == 1, (args, result.stderr)
        assert "Traceback" not in result.stderr


def test_too_little_memory_is_one_line_and_exit_2(tiny_tree, tmp_path, monkeypatch):
    monkeypatch.setenv("IDCCLF_MAX_MEMORY", "100K")
    monkeypatch.setenv("IDCCLF_DATA", str(tmp_path / "home"))
    result = run_cli("train", "--data", str(tiny_tree), "--out", str(tmp_path / "run"))
    assert result.returncode == 2, result.stderr
    error_lines = [line for line in result.stderr.splitlines() if "error" in line]
    assert len(error_lines) == 1 and "Traceback" not in result.stderr
    assert "only 100.0 KiB are available (IDCCLF_MAX_MEMORY)" in error_lines[0]
    # The advice names what the command line offers, not load_idc's parameters.
    assert "Load fewer patches: fewer --data folders" in error_lines[0]
    assert "memory_map" not in error_lines[0] and "max_per_class" not in error_lines[0]
