"""``idcclf evaluate`` and ``idcclf heatmap`` end to end on a tiny saved model."""

import json
import shutil

import joblib
import numpy as np
import pytest
from _cli import without_progress
from _tiny import TINY_FIT
from PIL import Image

from idcclf.cli import build_parser, main
from idcclf.datasets import load_sample, sample_path

PATIENTS = ["8863", "8867"]


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    """A 1-epoch CancerNet of a few hundred patches, saved as 'idcclf train' does."""
    from idcclf import IDCClassifier

    bunch = load_sample(patients=PATIENTS)
    clf = IDCClassifier(**TINY_FIT).fit(bunch.data, bunch.target)
    path = tmp_path_factory.mktemp("model") / "model.joblib"
    joblib.dump(clf, path)
    return path


@pytest.fixture
def no_coords_root(tmp_path):
    """A patient folder whose PNG names carry no patch coordinates."""
    real = sorted((sample_path() / "8863" / "0").glob("*.png"))[0]
    folder = tmp_path / "data" / "p1" / "0"
    folder.mkdir(parents=True)
    shutil.copy(real, folder / "patch_one.png")
    return tmp_path / "data"


def assert_png(path):
    with Image.open(path) as image:
        assert image.format == "PNG"
        image.load()
        assert min(image.size) >= 200


def assert_one_line_error(capsys, argv, *expected):
    capsys.readouterr()
    assert main(argv) == 2
    err = without_progress(capsys.readouterr().err)
    assert err.count("\n") == 1 and err.startswith(f"idcclf {argv[0]}: error: "), err
    for text in expected:
        assert text in err, err


def test_commands_are_registered():
    parser = build_parser()
    args = parser.parse_args(["evaluate", "m.joblib", "--data", "d", "--out", "o"])
    assert args.command == "evaluate" and args.threshold == 0.5
    args = parser.parse_args(["heatmap", "m.joblib", "p", "--out", "h.png", "--threshold", "0.3"])
    assert args.command == "heatmap" and args.threshold == 0.3


def test_evaluate_writes_every_output(model_file, tmp_path, capsys):
    out = tmp_path / "eval"
    argv = ["evaluate", str(model_file), "--data", str(sample_path()), "--out", str(out)]
    assert main([*argv, "--patients", *PATIENTS, "--heatmaps"]) == 0
    stdout = capsys.readouterr().out
    for name in ("accuracy", "balanced_accuracy", "sensitivity", "specificity", "roc_auc"):
        assert f"  {name} " in stdout

    expected = load_sample(patients=PATIENTS)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["n_samples"] == len(expected.target) and metrics["n_patients"] == 2
    assert metrics["threshold"] == 0.5
    assert np.sum(metrics["confusion_matrix"], axis=1).tolist() == [
        int((expected.target == 0).sum()),
        int(expected.target.sum()),
    ]
    assert f"{metrics['balanced_accuracy']:.4f}" in stdout
    assert "confusion matrix" in (out / "report.txt").read_text()

    rows = (out / "patients.csv").read_text().splitlines()
    assert rows[0].startswith("patient,n_patches,n_idc_true")
    assert [r.split(",")[0] for r in rows[1:]] == PATIENTS
    assert sum(int(r.split(",")[1]) for r in rows[1:]) == metrics["n_samples"]
    assert (out / "patients.md").read_text().startswith("| patient |")
    for name in ("confusion_matrix", "roc_curve", "pr_curve"):
        assert_png(out / f"{name}.png")
    for patient in PATIENTS:
        assert_png(out / "heatmaps" / f"{patient}.png")


def test_evaluate_threshold_changes_the_calls(model_file, tmp_path, capsys):
    low = tmp_path / "low"
    base = ["evaluate", str(model_file), "--patients", "8863", "--out"]
    assert main([*base, str(low), "--threshold", "0"]) == 0
    metrics = json.loads((low / "metrics.json").read_text())
    assert metrics["threshold"] == 0.0
    assert metrics["sensitivity"] == 1.0 and metrics["specificity"] == 0.0


def test_heatmap_command(model_file, tmp_path, capsys):
    out = tmp_path / "sub" / "h.png"
    argv = ["heatmap", str(model_file), str(sample_path() / "8914"), "--out", str(out)]
    assert main(argv) == 0
    stdout = capsys.readouterr().out
    n_patches = len(list((sample_path() / "8914").glob("*/*.png")))
    n_idc = len(list((sample_path() / "8914" / "1").glob("*.png")))
    assert 0 < n_idc < n_patches
    assert f"patient 8914: {n_patches} patches, {n_idc} IDC" in stdout
    assert_png(out)
    with Image.open(out) as image:
        assert image.size[0] > 2 * image.size[1]  # three panels side by side


def test_tta_flag_predicts_with_test_time_augmentation(model_file, tmp_path, capsys):
    from sklearn.metrics import roc_auc_score

    model = joblib.load(model_file)
    bunch = load_sample(patients=["8863"])
    plain = model.predict_proba(bunch.data)[:, 1]
    tta = model.set_params(test_time_augmentation=True).predict_proba(bunch.data)[:, 1]
    assert np.abs(plain - tta).max() > 1e-3, "the check needs views that differ"

    files = [str(sample_path() / name) for name in bunch.filenames[:20]]
    capsys.readouterr()
    assert main(["predict", "--tta", str(model_file), *files]) == 0
    printed = [float(line.split("\t")[0]) for line in capsys.readouterr().out.splitlines()[1:]]
    np.testing.assert_allclose(printed, tta[:20], atol=1e-4)

    out = tmp_path / "eval"
    argv = ["evaluate", str(model_file), "--patients", "8863", "--out", str(out), "--tta"]
    assert main(argv) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["roc_auc"] == pytest.approx(roc_auc_score(bunch.target, tta), abs=1e-6)
    assert metrics["roc_auc"] != pytest.approx(roc_auc_score(bunch.target, plain), abs=1e-6)

    image = tmp_path / "h.png"
    argv = ["heatmap", "--tta", str(model_file), str(sample_path() / "8863"), "--out", str(image)]
    assert main(argv) == 0
    assert_png(image)


def test_smooth_flag_averages_over_slide_neighbours(model_file, tmp_path, capsys):
    from sklearn.metrics import roc_auc_score

    from idcclf.slides import smooth_probabilities

    model = joblib.load(model_file)
    bunch = load_sample(patients=PATIENTS)
    plain = model.predict_proba(bunch.data)[:, 1]
    smooth = smooth_probabilities(plain, bunch.coords, bunch.groups, radius=1)
    assert roc_auc_score(bunch.target, smooth) != pytest.approx(roc_auc_score(bunch.target, plain))

    out = tmp_path / "eval"
    argv = ["evaluate", str(model_file), "--patients", *PATIENTS, "--out", str(out)]
    assert main([*argv, "--smooth", "1"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["smoothing_radius"] == 1
    assert metrics["roc_auc"] == pytest.approx(roc_auc_score(bunch.target, smooth), abs=1e-6)
    assert "--smooth 1" in (out / "report.txt").read_text()
    rows = (out / "patients.csv").read_text().splitlines()[1:]
    mean_8863 = smooth[bunch.groups == "8863"].mean()
    assert float(rows[0].split(",")[6]) == pytest.approx(mean_8863, abs=1e-4)

    image = tmp_path / "h.png"
    patient = str(sample_path() / "8863")
    assert main(["heatmap", "--smooth", "2", str(model_file), patient, "--out", str(image)]) == 0
    assert_png(image)
    for argv in (
        ["evaluate", str(model_file), "--out", str(tmp_path / "o"), "--smooth", "-1"],
        ["heatmap", str(model_file), patient, "--smooth", "-2"],
    ):
        assert_one_line_error(capsys, argv, "--smooth")


def test_bad_model_files(model_file, tmp_path, capsys):
    not_a_model = tmp_path / "dict.joblib"
    joblib.dump({"weights": [1, 2]}, not_a_model)
    garbage = tmp_path / "garbage.joblib"
    garbage.write_bytes(b"definitely not a pickle")
    truncated = tmp_path / "truncated.joblib"
    truncated.write_bytes(model_file.read_bytes()[:200])
    patient = str(sample_path() / "8863")
    for bad, text in [
        (not_a_model, "not a fitted idcclf model"),
        (garbage, "not a readable idcclf model"),
        (truncated, "not a readable idcclf model"),
        (tmp_path / "missing.joblib", "no such model file"),
        (tmp_path, "must be a file"),
    ]:
        assert_one_line_error(capsys, ["evaluate", str(bad), "--out", str(tmp_path / "o")], text)
        assert_one_line_error(capsys, ["heatmap", str(bad), patient], text)


def test_bad_data_folders(model_file, tmp_path, no_coords_root, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    model = str(model_file)
    out = str(tmp_path / "o")
    assert_one_line_error(
        capsys, ["evaluate", model, "--data", str(empty), "--out", out], "no IDC patches"
    )
    assert_one_line_error(
        capsys, ["evaluate", model, "--data", str(tmp_path / "nope"), "--out", out], "no such"
    )
    assert_one_line_error(
        capsys,
        ["evaluate", model, "--data", str(no_coords_root), "--out", out],
        "patch_one.png",
        "does not match",
    )
    assert_one_line_error(
        capsys, ["heatmap", model, str(no_coords_root / "p1")], "patch_one.png", "does not match"
    )
    # The root of the patch tree is not a patient folder.
    assert_one_line_error(capsys, ["heatmap", model, str(sample_path())], "not a patient folder")
    assert_one_line_error(capsys, ["heatmap", model, str(empty / "x")], "no such patient folder")
    assert_one_line_error(
        capsys, ["evaluate", model, "--patients", "0000", "--out", out], "patients not found"
    )
    assert not (tmp_path / "o").exists()


def test_bad_outputs_and_thresholds(model_file, tmp_path, capsys):
    existing = tmp_path / "file.txt"
    existing.write_text("keep me")
    model = str(model_file)
    patient = str(sample_path() / "8863")
    assert_one_line_error(capsys, ["evaluate", model, "--out", str(existing)], "not a directory")
    assert existing.read_text() == "keep me"
    assert_one_line_error(capsys, ["heatmap", model, patient, "--out", str(tmp_path)], "directory")
    for argv in (
        ["evaluate", model, "--out", str(tmp_path / "o"), "--threshold", "1.5"],
        ["heatmap", model, patient, "--threshold", "-0.1"],
    ):
        assert_one_line_error(capsys, argv, "--threshold")


def test_skip_bad_files(model_file, tmp_path, capsys):
    patient = tmp_path / "data" / "8863"
    for label in ("0", "1"):
        (patient / label).mkdir(parents=True)
        for real in sorted((sample_path() / "8863" / label).glob("*.png"))[:3]:
            shutil.copy(real, patient / label / real.name)
    shutil.copy(real, patient / "1" / "no_coordinates.png")
    argv = ["heatmap", str(model_file), str(patient), "--out", str(tmp_path / "h.png")]
    assert_one_line_error(capsys, argv, "no_coordinates.png", "pass --skip-bad-files")
    with pytest.warns(UserWarning, match="no_coordinates.png"):
        assert main([*argv, "--skip-bad-files"]) == 0
    assert "6 patches, 3 IDC" in capsys.readouterr().out
    assert_png(tmp_path / "h.png")
