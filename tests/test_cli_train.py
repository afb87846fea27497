"""``idcclf train``: what it prints, Ctrl-C, 'idcclf split' output, several --data roots."""

import json
import os
import re
import signal

import joblib
import pytest
from _cli import copy_patients, run_cli, small_network  # noqa: F401

from idcclf.cli import main

PATIENTS = ["8863", "8867", "8914", "8950", "8951"]


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    return copy_patients(tmp_path_factory.mktemp("idc"), PATIENTS, per_class=6)


def test_train_prints_only_its_own_lines(tree, tmp_path):
    """No TensorFlow start-up lines; the parts before training; never silent at the end."""
    out = tmp_path / "run"
    result = run_cli("train", "--data", tree, "--epochs", "1", "--out", out, "--test-size", "0.2")
    assert result.returncode == 0, result.stderr
    # stderr holds only the loader's progress: decoding (or a cache read) and its end
    progress = result.stderr.splitlines()
    assert progress and all(line.startswith("load_idc: ") for line in progress), progress
    assert re.search(r"load_idc: (decoded|read) 60 patches", result.stderr)
    stdout = result.stdout
    for noise in ("tensorflow", "oneDNN", "cuda", "absl", "I0000", "W0000", "Warning"):
        assert noise not in stdout
    assert not re.search(r"\b1 (patients|patches|epochs)\b", stdout)
    lines = stdout.splitlines()
    first_epoch = next(i for i, line in enumerate(lines) if re.search(r"\d+/\d+ - ", line))
    before = "\n".join(lines[:first_epoch])
    validation = re.search(r"  validation .*, (\d+) patients?: ([\d ]+) \(held out", before)
    assert validation and re.search(r"  test .* patients?: \d+", before)
    patients = validation.group(2).split()
    assert int(validation.group(1)) == len(patients)
    if len(patients) == 1:
        assert "validation accuracy measures one patient's patches and can stay flat" in before
    model = joblib.load(out / "model.joblib")
    assert sorted(map(str, model.validation_groups_)) == sorted(patients)
    # Every patient is in one part, and the model knows which it was fitted on.
    metrics = json.loads((out / "metrics.json").read_text())
    parts = ("training_patients", "validation_patients", "test_patients")
    assert sorted(sum((metrics[part] for part in parts), [])) == sorted(PATIENTS)
    assert metrics["validation_patients"] == sorted(patients)
    assert metrics["training_patients"] == sorted(map(str, model.training_groups_))
    assert metrics["training_patients_in_test"] == []
    # After the last epoch: what it is doing, in order.
    after = "\n".join(lines[first_epoch + 1 :])
    steps = [
        "re-estimating the batch-norm statistics",
        "scoring the test patients",
        "saving model.joblib",
        "saved ",
        "done in",
    ]
    positions = [after.index(step) for step in steps]
    assert positions == sorted(positions)


@pytest.mark.usefixtures("small_network")
def test_ctrl_c_after_an_epoch_keeps_scores_and_saves_the_model(
    tree, tmp_path, capsys, monkeypatch
):
    import keras

    end_of_epoch = keras.callbacks.History.on_epoch_end

    def press_ctrl_c_after_the_first_epoch(self, epoch, logs=None):
        end_of_epoch(self, epoch, logs)
        if epoch == 0:
            os.kill(os.getpid(), signal.SIGINT)

    monkeypatch.setattr(keras.callbacks.History, "on_epoch_end", press_ctrl_c_after_the_first_epoch)
    out = tmp_path / "run"
    argv = ["train", "--data", str(tree), "--epochs", "4", "--out", str(out), "--quiet"]
    handler = signal.getsignal(signal.SIGINT)
    assert main(argv) == 130
    assert signal.getsignal(signal.SIGINT) is handler
    stdout = capsys.readouterr().out
    assert "interrupted: true, epochs completed: 1 of 4" in stdout
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["interrupted"] is True and metrics["epochs_completed"] == 1
    assert 0 <= metrics["balanced_accuracy"] <= 1
    model = joblib.load(out / "model.joblib")
    assert len(model.history_["loss"]) == 1


@pytest.mark.usefixtures("small_network")
def test_ctrl_c_before_the_first_epoch_ends_writes_nothing(tree, tmp_path, capsys, monkeypatch):
    import keras

    def press_ctrl_c(self, logs=None):
        os.kill(os.getpid(), signal.SIGINT)

    monkeypatch.setattr(keras.callbacks.History, "on_train_begin", press_ctrl_c)
    out = tmp_path / "run"
    assert main(["train", "--data", str(tree), "--epochs", "2", "--out", str(out)]) == 130
    assert capsys.readouterr().err.endswith("idcclf train: interrupted\n")
    assert not out.exists()


def test_an_earlier_run_is_kept_unless_overwrite(tree, tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / "metrics.json").write_text("{}")
    (out / "notes.txt").write_text("mine")
    status = main(["train", "--data", str(tree), "--out", str(out)])
    err = capsys.readouterr().err
    assert status == 2 and err.count("\n") == 1
    assert "earlier run's metrics.json" in err and "--overwrite" in err
    assert (out / "metrics.json").read_text() == "{}"


@pytest.mark.usefixtures("small_network")
def test_overwrite_replaces_the_earlier_run(tree, tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / "metrics.json").write_text("{}")
    (out / "notes.txt").write_text("mine")
    argv = ["train", "--data", str(tree), "--out", str(out), "--epochs", "1", "--quiet"]
    assert main([*argv, "--overwrite"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["interrupted"] is False and metrics["best_epoch"] is None
    assert sorted(p.name for p in out.iterdir()) == [
        "metrics.json",
        "model.joblib",
        "notes.txt",
        "training_curves.png",
    ]


@pytest.mark.usefixtures("small_network")
def test_early_stopping_says_which_epoch_it_kept(tree, tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["train", "--data", str(tree), "--out", str(out), "--epochs", "3", "--quiet"]
    assert main([*argv, "--early-stopping"]) == 0
    stdout = capsys.readouterr().out
    model = joblib.load(out / "model.joblib")
    metrics = json.loads((out / "metrics.json").read_text())
    val_loss = model.history_["val_loss"]
    assert metrics["best_epoch"] == model.best_epoch_ == val_loss.index(min(val_loss)) + 1
    run = len(val_loss)
    assert f"the model keeps the weights of epoch {model.best_epoch_} of {run} run" in stdout


@pytest.mark.usefixtures("small_network")
def test_few_test_patients_get_intervals_by_patient(tree, tmp_path, capsys):
    from idcclf import load_idc
    from idcclf.metrics import patient_bootstrap

    out = tmp_path / "run"
    argv = ["train", "--data", str(tree), "--out", str(out), "--epochs", "1", "--quiet"]
    assert main([*argv, "--test-size", "0.4"]) == 0
    stdout = capsys.readouterr().out
    metrics = json.loads((out / "metrics.json").read_text())
    intervals = metrics["patient_bootstrap"]
    assert intervals["n_patients"] == len(metrics["test_patients"]) >= 2
    test = load_idc(tree, patients=metrics["test_patients"], cache=False)
    proba = joblib.load(out / "model.joblib").predict_proba(test.data)[:, 1]
    metric_names = ("balanced_accuracy", "roc_auc")
    expected = patient_bootstrap(test.target, proba, test.groups, metrics=metric_names)
    shown = []
    for name in metric_names:
        for bound in ("estimate", "low", "high"):
            assert intervals[name][bound] == pytest.approx(expected[name][bound], abs=1e-6)
        low, high = intervals[name]["low"], intervals[name]["high"]
        assert low <= intervals[name]["estimate"] <= high
        shown.append(f"{intervals[name]['estimate']:.3f} [{low:.3f}, {high:.3f}]")
    assert (
        f"test: {intervals['n_patients']} patients; 95% confidence interval by resampling the "
        f"patients (1000 resamples): balanced accuracy {shown[0]}, ROC AUC {shown[1]}"
    ) in stdout


def test_intervals_are_printed_below_ten_patients_only(capsys):
    from idcclf.cli._patients import print_intervals

    figure = {"estimate": 0.8, "low": 0.7, "high": float("nan")}
    intervals = {"balanced_accuracy": figure, "roc_auc": figure, "n_resamples": 1000}
    for n_patients in (9, 10):
        intervals.update(n_patients=n_patients, confidence=0.95)
        print_intervals({"patient_bootstrap": intervals}, "test")
        printed = capsys.readouterr().out
        if n_patients == 9:
            assert printed.startswith("test: 9 patients; 95% confidence interval")
            assert "balanced accuracy 0.800 [0.700, n/a], ROC AUC 0.800" in printed
        else:
            assert printed == ""


@pytest.mark.usefixtures("small_network")
def test_split_output_is_used_as_given(tree, tmp_path, capsys):
    dst = tmp_path / "dst"
    assert main(["split", str(tree), str(dst), "--train", "0.6", "--val", "0.2"]) == 0
    given = {
        part: sorted({p.name.split("_")[0] for p in (dst / part).glob("*/*.png")})
        for part in ("training", "validation", "testing")
    }
    capsys.readouterr()
    out = tmp_path / "run"
    argv = ["train", "--data", str(dst), "--out", str(out), "--epochs", "1", "--quiet"]
    status = main(argv)
    stdout, err = capsys.readouterr()
    assert status == 0, err
    assert "on_error" not in err
    assert "using its parts as given (no new split)" in stdout
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["test_patients"] == given["testing"]
    assert metrics["validation_patients"] == given["validation"]
    assert metrics["training_patients"] == given["training"]
    assert metrics["validation"]["n_samples"] == len(list((dst / "validation").glob("*/*.png")))
    model = joblib.load(out / "model.joblib")
    assert model.validation_fraction == 0
    assert metrics["n_samples"] == len(list((dst / "testing").glob("*/*.png")))


@pytest.mark.usefixtures("small_network")
def test_several_data_roots_are_read_together(tree, tmp_path, capsys):
    other = copy_patients(tmp_path / "other", ["9076", "9078"], per_class=6)
    out = tmp_path / "run"
    argv = ["train", "--data", str(tree), "--data", str(other), "--out", str(out)]
    status = main([*argv, "--epochs", "1", "--quiet", "--val-size", "0"])
    stdout, err = capsys.readouterr()
    assert status == 0, err
    assert f"data: {tree}, {other}: 84 patches, 7 patients" in stdout
    metrics = json.loads((out / "metrics.json").read_text())
    model = joblib.load(out / "model.joblib")
    assert model.n_features_in_ == 50 * 50 * 3 and metrics["test_patients"]


def test_load_data_passes_one_path_or_a_list(tmp_path, monkeypatch):
    import argparse

    from idcclf import datasets
    from idcclf.cli._common import load_data

    calls = []
    bunch = datasets.load_sample(patients=["8863"])
    monkeypatch.setattr(datasets, "load_idc", lambda path, **kw: calls.append(path) or bunch)
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir(), b.mkdir()
    args = argparse.Namespace(data=[a], skip_bad_files=False)
    load_data(args, announce=False)
    args.data = [a, b]
    load_data(args, announce=False)
    assert calls == [a, [a, b]]
