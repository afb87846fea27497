"""``evaluate`` and ``heatmap`` warn when they score patients the model was fitted on."""

import json
import warnings

import joblib
import pytest
from _cli import run_cli, without_progress

from idcclf.cli import main
from idcclf.datasets import load_sample, sample_path
from idcclf.metrics import evaluation_report

FITTED = ["8863", "8867", "8914"]


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    """A tiny CancerNet fitted on 3 patients, one of them held out for validation."""
    from idcclf import IDCClassifier

    bunch = load_sample(patients=FITTED)
    clf = IDCClassifier(
        filters=(4, 8, 8), dense_units=8, epochs=1, augment=False, validation_fraction=0.34
    ).fit(bunch.data, bunch.target, groups=bunch.groups)
    (validation,) = clf.validation_groups_
    assert sorted(clf.training_groups_) == sorted(p for p in FITTED if p != validation)
    path = tmp_path_factory.mktemp("model") / "model.joblib"
    joblib.dump(clf, path)
    return path, clf, str(validation)


@pytest.fixture(scope="module")
def unrecorded(fitted, tmp_path_factory):
    """The same model as saved before models recorded their patients."""
    old = joblib.load(fitted[0])
    del old.training_groups_
    old.validation_groups_ = None
    path = tmp_path_factory.mktemp("old") / "model.joblib"
    joblib.dump(old, path)
    return path


def our_warnings(record) -> list[str]:
    """The leakage guard's warnings among those recorded."""
    messages = [str(w.message) for w in record if issubclass(w.category, UserWarning)]
    return [m for m in messages if "used to train" in m or "trained on" in m]


def test_evaluate_warns_in_one_line_and_reports_figures_without_them(fitted, tmp_path):
    path, clf, validation = fitted
    training = next(p for p in FITTED if p != validation)
    patients = [training, validation, "8950", "8951"]
    out = tmp_path / "eval"
    result = run_cli("evaluate", path, "--patients", *patients, "--out", out)
    assert result.returncode == 0, result.stderr
    shared = sorted([training, validation])
    lines = without_progress(result.stderr).splitlines()
    assert len(lines) == 1 and lines[0].startswith(
        f"idcclf evaluate: warning: 2 of the 4 patients evaluated were used to train this "
        f"model (as training or validation patients): {' '.join(shared)}; figures without "
        "them (2 patients): balanced accuracy "
    ), result.stderr

    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["training_patients_in_test"] == shared
    new = load_sample(patients=["8950", "8951"])
    expected = evaluation_report(new.target, clf.predict_proba(new.data)[:, 1])
    clean = metrics["without_training_patients"]
    assert clean["n_patients"] == 2 and clean["n_samples"] == len(new.target)
    for name in ("balanced_accuracy", "roc_auc", "sensitivity"):
        assert clean[name] == pytest.approx(expected[name], abs=1e-6)
    assert f"balanced accuracy {expected['balanced_accuracy']:.3f}" in result.stderr
    assert metrics["n_samples"] > clean["n_samples"]
    report = (out / "report.txt").read_text()
    assert f"the model was trained on (training or validation): {' '.join(shared)}" in report
    assert f"model was trained on (2 patients, {len(new.target)} patches):" in report
    assert "without the patients the model was trained on" in result.stdout
    # Few patients: intervals by patient, of all of them and of the new ones.
    assert metrics["patient_bootstrap"]["n_patients"] == 4
    assert clean["patient_bootstrap"]["n_patients"] == 2
    for scored, n_patients in (("evaluated", 4), ("without those trained on", 2)):
        assert f"{scored}: {n_patients} patients; 95% confidence interval" in result.stdout
    assert "95% confidence interval by resampling" in report


def test_new_patients_raise_no_warning(fitted, tmp_path, capsys):
    path, _, _ = fitted
    out = tmp_path / "eval"
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        assert main(["evaluate", str(path), "--patients", "8950", "--out", str(out)]) == 0
        image = tmp_path / "h.png"
        argv = ["heatmap", str(path), str(sample_path() / "8950"), "--out", str(image)]
        assert main(argv) == 0
    assert our_warnings(record) == []
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["training_patients_in_test"] == []
    assert "without_training_patients" not in metrics


def test_heatmap_of_a_training_patient_warns(fitted, tmp_path):
    path, _, validation = fitted
    for patient in FITTED:
        image = tmp_path / f"{patient}.png"
        argv = ["heatmap", str(path), str(sample_path() / patient), "--out", str(image)]
        with pytest.warns(UserWarning, match=f"patient {patient} was used to train") as record:
            assert main(argv) == 0
        assert len(our_warnings(record)) == 1 and image.is_file()


def test_a_model_without_its_patients_is_said_unchecked(unrecorded, tmp_path):
    out = tmp_path / "eval"
    argv = ["evaluate", str(unrecorded), "--patients", "8863", "--out", str(out)]
    with pytest.warns(UserWarning, match="does not record the patients it was trained on"):
        assert main(argv) == 0
    assert json.loads((out / "metrics.json").read_text())["training_patients_in_test"] is None
    assert "not recorded with the model (unchecked)" in (out / "report.txt").read_text()

    # The metrics.json that 'idcclf train' wrote beside it names them.
    (unrecorded.parent / "metrics.json").write_text(json.dumps({"training_patients": ["8863"]}))
    with pytest.warns(UserWarning, match="1 of the 1 patients evaluated was used to train"):
        assert main([*argv, "--overwrite"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["training_patients_in_test"] == ["8863"]
    assert metrics["without_training_patients"] is None
    assert "no patient is left without them" in (out / "report.txt").read_text()


def test_the_pretrained_model_says_what_is_known(tmp_path):
    from idcclf import load_pretrained

    pretrained = load_pretrained()
    info = pretrained.pretrained_info_
    image = tmp_path / "h.png"
    argv = ["heatmap", str(sample_path() / "8863"), "--out", str(image)]
    training = pretrained.training_groups_
    if training is None:
        training = info.get("training_patients")
    if training is not None:
        validation = pretrained.validation_groups_
        used = {*map(str, training), *map(str, [] if validation is None else validation)}
        expected = ["patient 8863 was used to train"] if "8863" in used else []
    else:
        expected = ["the pretrained model does not record the patients it was trained on"]
        expected += [info["data"]] if info.get("data") else []
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        assert main(argv) == 0
    messages = our_warnings(record)
    assert len(messages) == min(len(expected), 1), messages
    assert all(text in messages[0] for text in expected)
