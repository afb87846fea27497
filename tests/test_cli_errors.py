"""Every expected failure of a command is one line naming command-line flags, exit 2.

And it starts no TensorFlow when it fails before a model is needed, and leaves no file
in --out.
"""

import json
import subprocess
import sys

import joblib
import numpy as np
import pytest
from _cli import (  # noqa: F401
    copy_patients,
    one_line_error,
    run_cli,
    run_mains,
    save_tiny_model,
    small_network,
    without_progress,
)
from _trees import make_sample_tree

from idcclf.cli import main
from idcclf.datasets import sample_path

PATIENTS = ["8863", "8867", "8914", "8950"]


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    return copy_patients(tmp_path_factory.mktemp("idc"), PATIENTS)


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    return save_tiny_model(tmp_path_factory.mktemp("model"), PATIENTS[:2])


def test_split_help_and_bad_paths_do_not_start_tensorflow(tree, tmp_path):
    one_class = copy_patients(tmp_path / "one", PATIENTS[:3], labels=("0",))
    bad_png = tmp_path / "bad.png"
    bad_png.write_bytes(b"not a png")
    (tmp_path / "model.joblib").write_bytes(b"not read before the data")
    results, err = run_mains(
        ["split", tree, tmp_path / "dst"],
        ["split", tmp_path / "missing", tmp_path / "dst2"],
        ["train", "--data", tmp_path / "missing", "--out", tmp_path / "o"],
        ["train", "--data", one_class, "--out", tmp_path / "o"],
        ["evaluate", tmp_path / "missing.joblib", "--data", tmp_path / "nowhere"],
        ["evaluate", tmp_path / "model.joblib", "--data", tmp_path / "nowhere"],
        ["heatmap", tmp_path / "model.joblib", tmp_path / "nowhere"],
        ["predict", bad_png],
        ["study", "optimizer", "--data", one_class, "--out", tmp_path / "s"],
    )
    assert [status for status, _ in results] == [0, 2, 2, 2, 2, 2, 2, 2, 2], err
    assert not any(tf for _, tf in results), "TensorFlow was imported"
    assert "Traceback" not in err and not (tmp_path / "o").exists()


def test_help_does_not_start_tensorflow():
    code = (
        "import sys\nfrom idcclf.cli import main\n"
        "for argv in (['--help'], ['train', '--help'], ['study', '--help']):\n"
        "    try:\n        main(argv)\n    except SystemExit:\n        pass\n"
        "print('TENSORFLOW', 'tensorflow' in sys.modules)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout.strip().endswith("TENSORFLOW False"), result.stdout[-300:]


@pytest.mark.parametrize(
    "make, options, expected",
    [
        # A single class: refused before training, with the class named.
        (lambda t: copy_patients(t, PATIENTS[:3], labels=("0",)), [], ["every patch is no IDC"]),
        # Too few patients for a validation part: the flag that drops it is named.
        (lambda t: copy_patients(t, PATIENTS[:2]), [], ["2 patients", "--val-size 0"]),
        (lambda t: copy_patients(t, PATIENTS[:1]), ["--val-size", "0"], ["1 patient;"]),
        # Shares that leave nothing, early stopping without validation.
        (lambda t: copy_patients(t, PATIENTS), ["--val-size", "0.5", "--test-size", "0.5"], []),
        (lambda t: copy_patients(t, PATIENTS), ["--early-stopping", "--val-size", "0"], []),
        # A patient's folder given as --data: the parent is suggested as --data.
        (lambda t: copy_patients(t, PATIENTS[:1]) / PATIENTS[0], [], ["--data "]),
    ],
)
def test_train_errors_name_flags(tmp_path, capsys, make, options, expected):
    data = make(tmp_path / "data")
    out = tmp_path / "out"
    line = one_line_error(capsys, ["train", "--data", data, "--out", out, *options], *expected)
    if options[:1] == ["--early-stopping"]:
        assert "--early-stopping" in line and "--val-size" in line
    assert not out.exists(), "nothing may be left in --out after an error"


def test_train_on_a_bad_file_names_skip_bad_files(tmp_path, capsys):
    data = copy_patients(tmp_path / "data", PATIENTS[:3])
    (data / PATIENTS[0] / "1" / "notes.png").write_bytes(b"x")
    one_line_error(capsys, ["train", "--data", data], "notes.png", "pass --skip-bad-files")


def test_evaluate_on_a_patient_folder_names_the_flags(tmp_path, model_file, capsys):
    patient = copy_patients(tmp_path / "data", PATIENTS[:1]) / PATIENTS[0]
    capsys.readouterr()
    status = main(["evaluate", str(model_file), "--data", str(patient), "--out", str(tmp_path)])
    err = without_progress(capsys.readouterr().err)
    assert "load_idc" not in err and "patients=[" not in err
    if status == 2 and "single patient" in err:
        assert f"--data {tmp_path / 'data'} --patients {PATIENTS[0]}" in err
    else:  # a loader that reads class-folder roots evaluates the one patient
        assert status == 0, err
        assert json.loads((tmp_path / "metrics.json").read_text())["n_patients"] == 1


def test_split_output_is_refused_where_a_part_is_meant(tree, tmp_path, model_file, capsys):
    dst = tmp_path / "dst"
    assert main(["split", str(tree), str(dst)]) == 0
    argv = ["evaluate", model_file, "--data", dst, "--out", tmp_path / "o"]
    one_line_error(capsys, argv, "output of 'idcclf split'", f"--data {dst / 'testing'}")
    one_line_error(capsys, ["study", "optimizer", "--data", dst, "--out", tmp_path / "o"])
    one_line_error(capsys, ["train", "--data", dst, "--val-size", "0.2"], "--val-size")
    one_line_error(capsys, ["train", "--data", dst, "--early-stopping"], "--early-stopping")
    one_line_error(capsys, ["train", "--data", dst, "--data", tree], "alone")
    assert not (tmp_path / "o").exists()


def test_a_model_for_other_patches_is_one_line(tmp_path, capsys):
    from idcclf import IDCClassifier

    rng = np.random.default_rng(0)
    X = rng.integers(0, 256, size=(8, 32, 32, 3), dtype=np.uint8)
    clf = IDCClassifier(
        input_shape=(32, 32, 3),
        filters=(2, 2, 2),
        dense_units=2,
        epochs=1,
        augment=False,
        validation_fraction=0,
    ).fit(X, np.arange(8) % 2)
    model = tmp_path / "small.joblib"
    joblib.dump(clf, model)
    patient = sample_path() / "8863"
    for argv in (
        ["predict", model, patient],
        ["evaluate", model, "--patients", "8863", "--out", tmp_path / "o"],
        ["heatmap", model, patient, "--out", tmp_path / "h.png"],
    ):
        one_line_error(capsys, argv, f"{model}: cannot predict these patches")
    assert not (tmp_path / "o").exists() and not (tmp_path / "h.png").exists()


@pytest.mark.usefixtures("small_network")
def test_diverging_training_names_the_learning_rate(tmp_path, capsys):
    data = copy_patients(tmp_path / "data", PATIENTS[:3])
    argv = ["train", "--data", data, "--out", tmp_path / "o", "--quiet", "--epochs", "1"]
    one_line_error(capsys, [*argv, "--learning-rate", "1e30", "--val-size", "0"], "--learning-rate")
    assert not (tmp_path / "o").exists()


def test_predict_skips_bad_files_only_when_asked(tmp_path):
    folder = tmp_path / "patches"
    folder.mkdir()
    for path in sorted((sample_path() / "8863" / "1").glob("*.png"))[:3]:
        (folder / path.name).write_bytes(path.read_bytes())
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    refused = run_cli("predict", folder)
    assert refused.returncode == 2 and refused.stdout == ""
    assert refused.stderr.count("\n") == 1 and "broken.png" in refused.stderr
    assert "pass --skip-bad-files" in refused.stderr

    result = run_cli("predict", folder, "--skip-bad-files")
    assert result.returncode == 0, result.stderr
    rows = result.stdout.splitlines()[1:]
    assert len(rows) == 3 and not any("broken.png" in row for row in rows)
    warning, summary = result.stderr.splitlines()[0], result.stderr.splitlines()[-1]
    assert warning == "idcclf predict: warning: skipped 1 bad file:"
    n_idc = sum(row.split("\t")[1] == "IDC" for row in rows)
    assert summary == f"3 patches: {n_idc} predicted IDC ({n_idc / 3:.1%}) at threshold 0.5"


def test_split_advice_names_flags(tmp_path, capsys):
    src = make_sample_tree(tmp_path / "src", n_patients=2, per_class=1)
    one_line_error(capsys, ["split", src, tmp_path / "dst"], "at least 3 patients", "--val 0")
    assert main(["split", str(src), str(tmp_path / "dst"), "--val", "0"]) == 0
    one_line_error(capsys, ["split", src, tmp_path / "dst"], "not empty; pass --force")


def test_unwritable_out_is_one_line(tmp_path, model_file, capsys):
    a_file = tmp_path / "file"
    a_file.write_text("x")
    argv = ["evaluate", model_file, "--patients", "8863", "--out", a_file / "sub"]
    one_line_error(capsys, argv, f"--out {a_file / 'sub'}: cannot write there")
    assert a_file.read_text() == "x"


def test_study_fold_counts_name_cv(tmp_path, capsys):
    argv = ["study", "optimizer", "--quiet", "--max-per-class", "5", "--out", tmp_path]
    one_line_error(capsys, [*argv, "--cv", "1"], "--cv 1", "at least 2 folds")
    one_line_error(capsys, [*argv, "--cv", "13"], "folds by patient", "use at most --cv ")
    assert list(tmp_path.iterdir()) == []


def test_study_on_one_class_is_one_line(tmp_path, capsys):
    data = copy_patients(tmp_path / "data", PATIENTS[:3], labels=("1",))
    argv = ["study", "optimizer", "--data", data, "--out", tmp_path / "s", "--quiet"]
    one_line_error(capsys, argv, "every patch is IDC (1)")
    assert not (tmp_path / "s").exists()


def test_too_little_memory_names_this_commands_flags(tmp_path, model_file, monkeypatch, capsys):
    monkeypatch.setenv("IDCCLF_MAX_MEMORY", "10K")
    monkeypatch.setenv("IDCCLF_DATA", str(tmp_path / "home"))
    line = one_line_error(capsys, ["evaluate", model_file, "--out", tmp_path / "o"])
    assert "--patients" in line
    line = one_line_error(capsys, ["study", "optimizer", "--out", tmp_path / "s", "--quiet"])
    assert "--max-per-class" in line
