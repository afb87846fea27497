"""A model trained with ``normalize_stains=True``, wherever it predicts.

It must see every patient's patches normalized as in training: in Python, through
``idcclf predict``, ``evaluate``, ``heatmap`` and ``train``, and in ``predict_patients``.
"""

import json
import shutil

import joblib
import numpy as np
import pytest
from _cli import copy_patients, one_line_error, small_network  # noqa: F401
from _tiny import TINY_FIT

from idcclf import IDCClassifier, load_idc, normalize_stains, predict_patients
from idcclf.cli import main
from idcclf.datasets import load_sample

PATIENTS = ["8863", "8867", "8914"]


@pytest.fixture(scope="module")
def sample():
    bunch = load_sample(patients=PATIENTS)
    return bunch.data, bunch.target, bunch.groups


@pytest.fixture(scope="module")
def fitted(sample):
    X, y, groups = sample
    return IDCClassifier(normalize_stains=True, **TINY_FIT).fit(X, y, groups=groups)


def test_fit_and_prediction_need_the_patients(sample, fitted):
    X, y, groups = sample
    with pytest.raises(ValueError, match=r"normalize_stains=True: pass groups .* to fit"):
        IDCClassifier(normalize_stains=True, **TINY_FIT).fit(X, y)
    for method in (fitted.predict_proba, fitted.predict):
        with pytest.raises(ValueError, match=r"pass groups .*idcclf.normalize_stains\(X, groups\)"):
            method(X)
    with pytest.raises(ValueError, match="pass groups"):
        fitted.score(X, y)
    with pytest.raises(ValueError, match="normalize_stains=1 is out of range"):
        IDCClassifier(normalize_stains=1, **TINY_FIT).fit(X, y, groups=groups)


def test_it_is_the_model_of_the_normalized_patches(sample, fitted):
    """Training and prediction both see each patient's normalized patches, and only them."""
    X, y, groups = sample
    normalized = normalize_stains(X, groups)
    assert np.abs(normalized.astype(int) - X).mean() > 1  # the colours did change
    plain = IDCClassifier(**TINY_FIT).fit(normalized, y, groups=groups)
    proba = fitted.predict_proba(X, groups=groups)
    np.testing.assert_allclose(proba, plain.predict_proba(normalized), atol=1e-6)
    labels = fitted.predict(X, groups=groups)
    np.testing.assert_array_equal(labels, plain.predict(normalized))
    assert fitted.score(X, y, groups=groups) == pytest.approx(np.mean(labels == y))
    # Rows and images alike; a model without the setting ignores groups.
    rows = X.reshape(len(X), -1)
    np.testing.assert_allclose(fitted.predict_proba(rows, groups=groups), proba, atol=1e-6)
    np.testing.assert_array_equal(
        plain.predict_proba(normalized, groups=groups), plain.predict_proba(normalized)
    )


def test_routed_groups_reach_the_score_of_a_search(sample):
    """With metadata routing, a search scored by the estimator's own score works."""
    from sklearn import clone, config_context
    from sklearn.model_selection import GridSearchCV, GroupKFold

    X, y, groups = sample
    clf = IDCClassifier(normalize_stains=True, **TINY_FIT)
    cv = GroupKFold(n_splits=3)
    with config_context(enable_metadata_routing=True):
        # One setting, the model's own: each split's score is that of clone(clf).
        search = GridSearchCV(clf, {"block_dropout": [clf.block_dropout]}, cv=cv, refit=False)
        search.fit(X, y, groups=groups)
    for k, (train, test) in enumerate(cv.split(X, y, groups)):
        fold = clone(clf).fit(X[train], y[train], groups=groups[train])
        expected = fold.score(X[test], y[test], groups=groups[test])
        assert search.cv_results_[f"split{k}_test_score"][0] == pytest.approx(expected)


def test_predict_patients_normalizes_whole_patients(sample, fitted):
    """However few patches a task decodes at once, the stains are a whole patient's."""
    X, y, groups = sample
    expected = fitted.predict_proba(X, groups=groups)
    from idcclf.datasets import sample_path

    folders = [sample_path() / patient for patient in PATIENTS]
    results = {r.patient: r for r in predict_patients(fitted, folders, batch_size=7)}
    assert sorted(results) == PATIENTS
    for patient in PATIENTS:
        mine = groups == patient
        result = results[patient]
        # Both list a patient's files sorted by class folder, then name.
        np.testing.assert_array_equal(result.target, y[mine])
        np.testing.assert_allclose(result.proba, expected[mine], atol=1e-6)


@pytest.mark.usefixtures("small_network")
@pytest.mark.filterwarnings("ignore:4 of the 5 patients evaluated were used to train")
def test_the_command_line_trains_and_predicts_with_normalized_stains(tmp_path, capsys):
    tree = copy_patients(tmp_path / "idc", ["8863", "8867", "8914", "8950", "8951"], per_class=6)
    out = tmp_path / "run"
    argv = ["train", "--data", tree, "--out", out, "--epochs", "1", "--quiet"]
    assert main([str(a) for a in [*argv, "--normalize-stains", "--stain-jitter", "0.05"]]) == 0
    model = joblib.load(out / "model.joblib")
    assert model.normalize_stains is True and model.stain_jitter == 0.05
    bunch = load_idc(tree, cache=False)
    expected = model.predict_proba(bunch.data, groups=bunch.groups)[:, 1]
    test_patients = json.loads((out / "metrics.json").read_text())["test_patients"]
    test = np.isin(bunch.groups, test_patients)
    reported = json.loads((out / "metrics.json").read_text())["roc_auc"]
    from sklearn.metrics import roc_auc_score

    assert reported == pytest.approx(roc_auc_score(bunch.target[test], expected[test]), abs=1e-6)

    capsys.readouterr()
    assert main(["predict", str(out / "model.joblib"), str(tree)]) == 0
    lines = capsys.readouterr().out.splitlines()[1:]
    printed = {line.split("\t")[2]: float(line.split("\t")[0]) for line in lines}
    names = [str(tree / name) for name in bunch.filenames]
    np.testing.assert_allclose([printed[name] for name in names], expected, atol=1e-4)

    evaluated = tmp_path / "evaluated"
    argv = ["evaluate", str(out / "model.joblib"), "--data", str(tree), "--out", str(evaluated)]
    assert main(argv) == 0
    report = json.loads((evaluated / "metrics.json").read_text())
    assert report["roc_auc"] == pytest.approx(roc_auc_score(bunch.target, expected), abs=1e-6)

    capsys.readouterr()
    png = tmp_path / "8863.png"
    argv = ["heatmap", str(out / "model.joblib"), str(tree / "8863"), "--out", str(png)]
    assert main(argv) == 0
    mean = expected[bunch.groups == "8863"].mean()
    assert f"mean probability {mean:.3f}" in capsys.readouterr().out and png.is_file()

    # A file whose name does not say its patient cannot be normalized: one line, named.
    loose = tmp_path / "patch_one.png"
    shutil.copy(tree / bunch.filenames[0], loose)
    one_line_error(
        capsys,
        ["predict", out / "model.joblib", loose],
        "patch_one.png",
        "which normalizes each patient's stains, needs the patient",
    )
