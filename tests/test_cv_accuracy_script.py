"""benchmarks/cv_accuracy.py, run on the bundled sample with a tiny budget."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from _benchmarks import BENCHMARKS, import_benchmark

from idcclf.datasets import sample_path

SCRIPT = BENCHMARKS / "cv_accuracy.py"
TINY = ["--set", "filters=(4, 8, 8)", "--set", "dense_units=8"]


def sample_patients():
    return sorted(d.name for d in sample_path().iterdir() if d.is_dir())


def load_script():
    """The script as a module, to call its functions."""
    return import_benchmark("cv_accuracy")


def run_script(tmp_path, *args, data=None):
    out = tmp_path / "cv.json"
    data = data or [sample_path()]
    done = subprocess.run(
        [sys.executable, str(SCRIPT), *(a for root in data for a in ("--data", str(root)))]
        + ["--folds", "2", "--epochs", "1", "--fraction", "0.3", "--out", str(out), *args],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(out.read_text()), done.stdout


def print_table(*results):
    """The script's ``--table`` of those result files, checked to have succeeded."""
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--table", *map(str, results)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done


@pytest.mark.parametrize("seeds", [1, 2])
def test_folds_are_patient_disjoint_and_summarized(tmp_path, seeds):
    saved = tmp_path / "predictions.npz"
    result, stdout = run_script(
        tmp_path, "--seeds", str(seeds), "--set", "batch_size=64", "--predictions", str(saved)
    )
    assert result["seeds"] == seeds
    assert result["params"] == {"class_weight": "balanced", "batch_size": 64}
    folds = result["folds"]
    assert [f["fold"] for f in folds] == [1, 2]
    # Every patient is tested exactly once, so no patient trains the model that scores it.
    tested = [p for fold in folds for p in fold["test_patients"]]
    assert sorted(tested) == sample_patients()
    for fold in folds:
        assert 0.0 <= fold["balanced_accuracy"] <= 1.0
        assert 0.0 <= fold["pr_auc"] <= 1.0
        assert sum(map(sum, fold["confusion_matrix"])) == fold["n_samples"]
        assert fold["seconds"] > 0
    summary = result["summary"]
    mean = sum(f["roc_auc"] for f in folds) / 2
    assert summary["roc_auc"]["mean"] == pytest.approx(mean)
    assert {"pr_auc", "sensitivity", "specificity", "f1"} <= set(summary)
    assert "roc_auc_with_tta" in summary
    # A seed ensemble reports its first model beside it and no validation threshold,
    # since each of its models held out other validation patients.
    assert ("roc_auc_first_model" in summary) == (seeds > 1)
    assert ("roc_auc_model_2" in summary) == (seeds > 1)
    assert ("balanced_accuracy_at_validation_threshold" in summary) == (seeds == 1)
    if seeds > 1:
        # Models of other seeds differ, so their mean ranks patches unlike the first alone.
        assert any(f["roc_auc_first_model"] != f["roc_auc"] for f in folds)
    assert "fold 2:" in stdout and "s wall" in stdout
    # The saved probabilities are the ones scored: their ROC AUC per fold is the report's.
    from sklearn.metrics import roc_auc_score

    with np.load(saved) as arrays:
        assert sorted(set(arrays["patient"])) == sample_patients()
        assert arrays["coords"].shape == (len(arrays["proba"]), 2)
        for fold in folds:
            mine = arrays["fold"] == fold["fold"]
            assert mine.sum() == fold["n_samples"]
            assert set(arrays["patient"][mine]) == set(fold["test_patients"])
            auc = roc_auc_score(arrays["label"][mine], arrays["proba"][mine])
            assert auc == pytest.approx(fold["roc_auc"])
            if seeds > 1:
                # Each model's own probabilities are kept, and their mean is the ensemble.
                per_model = arrays["proba_per_model"][mine]
                assert per_model.shape == (mine.sum(), seeds)
                np.testing.assert_allclose(per_model.mean(axis=1), arrays["proba"][mine])
                for i, key in enumerate(("roc_auc_first_model", "roc_auc_model_2")):
                    auc = roc_auc_score(arrays["label"][mine], per_model[:, i])
                    assert auc == pytest.approx(fold[key])
        assert ("proba_per_model" in arrays.files) == (seeds > 1)
    table = print_table(tmp_path / "cv.json")
    bac = summary["balanced_accuracy"]
    assert f"| mean ± std | | | {bac['mean']:.3f} ± {bac['std']:.3f} |" in table.stdout
    assert table.stdout.count("\n| 1 | ") == 1


def test_first_seed_trains_the_models_that_a_seed_ensemble_trains_second(tmp_path):
    tiny = [*TINY, "--no-tta", "--max-folds", "1"]
    ensemble, _ = run_script(tmp_path, "--seeds", "2", *tiny)
    second, _ = run_script(tmp_path, "--first-seed", "1", *tiny)
    assert second["first_seed"] == 1
    for key in ("balanced_accuracy", "roc_auc", "f1"):
        assert second["folds"][0][key] == ensemble["folds"][0][f"{key}_model_2"]


def test_two_roots_tutorial_recipe_and_training_subset(tmp_path):
    # The sample's patients split over two roots load as one data set.
    patients = sample_patients()
    roots = [tmp_path / "a", tmp_path / "b"]
    for i, patient in enumerate(patients):
        shutil.copytree(sample_path() / patient, roots[i % 2] / patient)
    result, _ = run_script(
        tmp_path,
        "--recipe",
        "tutorial",
        "--train-patients",
        "3",
        "--max-folds",
        "1",
        "--no-tta",
        *TINY,
        data=roots,
    )
    assert result["n_patients"] == len(patients)
    assert result["augmentation"] == "layers"
    assert result["batch_norm"] == "keras"
    assert result["params"]["recalibrate_batch_norm"] is False
    assert result["params"]["optimizer"] == "adagrad"
    (fold,) = result["folds"]
    assert fold["n_train_patients"] == 3
    assert fold["n_train_patches"] < result["n_patches"] - fold["n_samples"]
    assert "roc_auc_with_tta" not in fold


def test_training_share_thins_each_training_patient_and_class_and_nests():
    script = load_script()
    # Patients a (10 non-IDC, 4 IDC), b (6, 6) and c (test only).
    y = np.array([0] * 10 + [1] * 4 + [0] * 6 + [1] * 6 + [0, 1])
    groups = np.array(["a"] * 14 + ["b"] * 12 + ["c"] * 2)
    train = np.flatnonzero(groups != "c")
    half = script.training_share(train, y, groups, 0.5, seed=7)
    quarter = script.training_share(train, y, groups, 0.25, seed=7)
    assert np.all(np.diff(half) > 0) and set(half) <= set(train)
    pairs = [(g, c) for g in "ab" for c in (0, 1)]
    counts = {(g, c): int(np.sum((groups[half] == g) & (y[half] == c))) for g, c in pairs}
    assert counts == {("a", 0): 5, ("a", 1): 2, ("b", 0): 3, ("b", 1): 3}
    assert set(quarter) < set(half)  # nested: the quarter is drawn from the half's rows
    np.testing.assert_array_equal(half, script.training_share(train, y, groups, 0.5, seed=7))
    assert not np.array_equal(half, script.training_share(train, y, groups, 0.5, seed=8))
    np.testing.assert_array_equal(script.training_share(train, y, groups, 1.0, seed=7), train)


def test_train_fraction_thins_training_only_and_is_recorded(tmp_path):
    args = ["--max-folds", "1", "--no-tta", *TINY]
    full, _ = run_script(tmp_path, *args)
    assert "train_fraction" not in full
    thinned, _ = run_script(tmp_path, "--train-fraction", "0.5", *args)
    assert thinned["train_fraction"] == 0.5
    (whole,), (half,) = full["folds"], thinned["folds"]
    assert half["test_patients"] == whole["test_patients"]
    assert half["n_samples"] == whole["n_samples"]
    assert half["n_train_patients"] == whole["n_train_patients"]
    assert whole["n_train_patches"] / 2 <= half["n_train_patches"] < whole["n_train_patches"]


def test_one_fold_alone_has_the_patients_of_the_full_run(tmp_path):
    tiny = [*TINY, "--no-tta"]
    full, _ = run_script(tmp_path, "--max-folds", "2", *tiny)
    alone, stdout = run_script(
        tmp_path, "--fold", "2", "--batch-norm", "keras", "--standardize-patients", *tiny
    )
    assert alone["batch_norm"] == "keras" and full["batch_norm"] == "fused"
    assert "keras batch normalization" in stdout
    # Standardized colours or stains leave the folds as they are.
    assert alone["standardize_patients"] and not full["standardize_patients"]
    assert "colours standardized per patient" in stdout
    stains, stdout = run_script(tmp_path, "--fold", "2", "--normalize-stains", *tiny)
    assert stains["normalize_stains"] and not alone["normalize_stains"]
    assert "stains normalized per patient" in stdout
    for run in (alone, stains):
        (fold,) = run["folds"]
        assert fold["fold"] == 2
        assert fold["test_patients"] == full["folds"][1]["test_patients"]
        assert fold["n_train_patches"] == full["folds"][1]["n_train_patches"]


def test_patient_batch_norm_is_reported_and_saved_beside_the_fitted_statistics(tmp_path):
    saved = tmp_path / "predictions.npz"
    result, stdout = run_script(
        tmp_path,
        "--patient-batch-norm",
        "--max-folds",
        "1",
        "--no-tta",
        *TINY,
        "--predictions",
        str(saved),
    )
    assert result["patient_batch_norm"] is True
    (fold,) = result["folds"]
    assert "balanced_accuracy_patient_batch_norm" in result["summary"]
    assert "balanced_accuracy_patient_batch_norm" in stdout
    from sklearn.metrics import roc_auc_score

    with np.load(saved) as arrays:
        adapted, fitted = arrays["proba_patient_batch_norm"], arrays["proba"]
        assert roc_auc_score(arrays["label"], adapted) == pytest.approx(
            fold["roc_auc_patient_batch_norm"]
        )
        assert roc_auc_score(arrays["label"], fitted) == pytest.approx(fold["roc_auc"])
    table = print_table(tmp_path / "cv.json")
    assert "| BAC, per-patient batch norm |" in table.stdout
    row = table.stdout.splitlines()[2].split(" | ")
    assert float(row[9]) == pytest.approx(fold["balanced_accuracy_patient_batch_norm"], abs=5e-4)
    # Without the option, no such figures, and no setting that would stop old parts joining.
    plain, _ = run_script(tmp_path, "--max-folds", "1", "--no-tta", *TINY)
    assert "patient_batch_norm" not in plain
    assert "balanced_accuracy_patient_batch_norm" not in plain["summary"]


def test_patient_weights_level_patients_and_keep_class_totals():
    script = load_script()
    # Patient a: 8 patches (6 class 0, 2 class 1); patient b: 2 (1 of each).
    y = np.array([0] * 6 + [1] * 2 + [0, 1])
    groups = np.array(["a"] * 8 + ["b"] * 2)
    np.testing.assert_allclose(script.patient_weights(y, groups, 0.0), 1.0)
    for alpha in (0.5, 1.0):
        weights = script.patient_weights(y, groups, alpha)
        for label in (0, 1):
            assert weights[y == label].mean() == pytest.approx(1.0)
        ratio = weights[(groups == "b") & (y == 0)][0] / weights[(groups == "a") & (y == 0)][0]
        assert ratio == pytest.approx(4.0**alpha)  # b has a quarter of a's patches


def test_patient_weight_reaches_fit_and_is_recorded_only_when_set(tmp_path, monkeypatch):
    script = load_script()
    from idcclf import IDCClassifier

    seen = []
    fit = IDCClassifier.fit

    def spy(self, X, y, sample_weight=None, groups=None):
        seen.append((np.asarray(y), sample_weight, np.asarray(groups)))
        return fit(self, X, y, sample_weight=sample_weight, groups=groups)

    monkeypatch.setattr(IDCClassifier, "fit", spy)
    out = tmp_path / "cv.json"
    args = ["--data", str(sample_path()), "--folds", "2", "--max-folds", "1", "--epochs", "1"]
    args += ["--fraction", "0.3", "--no-tta", *TINY, "--out", str(out)]
    assert script.main([*args, "--patient-weight", "0.5"]) == 0
    ((y, sample_weight, groups),) = seen
    assert json.loads(out.read_text())["patient_weight"] == 0.5
    patients, inverse, counts = np.unique(groups, return_inverse=True, return_counts=True)
    assert len(set(counts)) > 1, "the sample's patients should differ in size"
    scaled = sample_weight * counts[inverse] ** 0.5
    for label in (0, 1):
        # Within a class: size**-0.5 up to one factor, and a mean of 1.
        np.testing.assert_allclose(scaled[y == label], scaled[y == label][0], rtol=1e-6)
        assert sample_weight[y == label].mean() == pytest.approx(1.0)
    seen.clear()
    assert script.main(args) == 0
    assert seen[0][1] is None
    assert "patient_weight" not in json.loads(out.read_text())


def test_patient_batch_norm_adapts_to_each_patient_alone_and_restores_the_model():
    from idcclf import IDCClassifier, load_idc
    from idcclf._ops import recalibrate_batch_norm

    script = load_script()
    bunch = load_idc(sample_path())
    X, y, groups = bunch.data, bunch.target, np.asarray(bunch.groups).astype(str)
    clf = IDCClassifier(filters=(4, 8, 8), dense_units=8, epochs=1, random_state=0)
    clf.fit(X[::4], y[::4])
    weights = [w.copy() for w in clf.model_.get_weights()]
    fitted = clf.predict_proba(X)[:, 1]

    adapted = script.patient_batch_norm_proba(clf, X, groups)

    for before, after in zip(weights, clf.model_.get_weights(), strict=True):
        np.testing.assert_array_equal(before, after)
    np.testing.assert_array_equal(clf.predict_proba(X)[:, 1], fitted)
    assert not np.allclose(adapted, fitted, atol=1e-4)
    # Each patient is predicted with statistics measured on its own patches only.
    for patient in np.unique(groups)[:2]:
        mine = groups == patient
        recalibrate_batch_norm(clf.model_, X[mine].astype(np.float32))
        alone = clf.predict_proba(X[mine])[:, 1]
        clf.model_.set_weights(weights)
        np.testing.assert_allclose(adapted[mine], alone, rtol=1e-4, atol=1e-6)


def test_standardized_loading_is_per_patient_over_all_patches():
    from idcclf import load_idc, normalize_stains, standardize_patients

    script = load_script()
    X, y, groups = script.load_roots([sample_path()], standardize=True)
    raw = load_idc(sample_path())
    np.testing.assert_array_equal(y, raw.target)
    np.testing.assert_array_equal(X, standardize_patients(raw.data, raw.groups))
    assert not np.array_equal(X, raw.data)
    means, _, _ = script.load_roots([sample_path()], standardize=True, means_only=True)
    np.testing.assert_array_equal(means, standardize_patients(raw.data, raw.groups, std=None))
    assert not np.array_equal(means, X)
    stains, _, _ = script.load_roots([sample_path()], normalize_stains=True)
    np.testing.assert_array_equal(stains, normalize_stains(raw.data, raw.groups))
    assert not np.array_equal(stains, raw.data) and not np.array_equal(stains, X)
    with pytest.raises(ValueError, match="exclude each other"):
        script.load_roots([sample_path()], standardize=True, normalize_stains=True)


def test_upsampled_patches_are_enlarged_bilinearly_as_uint8():
    script = load_script()
    rng = np.random.default_rng(0)
    X = rng.integers(0, 256, (5, 6, 7, 3), dtype=np.uint8)
    X[0] = 17  # a flat patch stays flat
    X[1, :, :, 0] = np.arange(7) * 30  # a ramp along the width stays a ramp
    big = script.upsample_patches(X, 2, chunk=2)
    assert big.shape == (5, 12, 14, 3) and big.dtype == np.uint8
    assert (big[0] == 17).all()
    assert (np.diff(big[1, :, :, 0].astype(int), axis=1) >= 0).all()
    assert big[1, :, :, 0].min() == 0 and big[1, :, :, 0].max() == 180
    # Chunks do not change the result; each patch's mean colour is kept (within rounding).
    np.testing.assert_array_equal(big, script.upsample_patches(X, 2))
    np.testing.assert_allclose(big.mean(axis=(1, 2)), X.mean(axis=(1, 2)), atol=3)
    np.testing.assert_array_equal(script.upsample_patches(X, 1), X)
    assert script.upsample_patches(X, np.int64(2)).shape == big.shape
    with pytest.raises(ValueError, match="whole number >= 1, got 0"):
        script.upsample_patches(X, 0)
    with pytest.raises(ValueError, match=r"needs images .* got \(5, 126\)"):
        script.upsample_patches(X.reshape(5, -1), 2)


def test_upsample_reaches_the_model_and_is_recorded(tmp_path):
    record, stdout = run_script(
        tmp_path, "--max-folds", "1", "--fraction", "0.1", "--no-tta", "--upsample", "2", *TINY
    )
    assert record["upsample"] == 2
    assert record["params"]["input_shape"] == [100, 100, 3]
    assert "patches upsampled 2x" in stdout
    assert len(record["folds"]) == 1


def test_a_fit_without_validation_patients_has_no_validation_threshold(tmp_path):
    record, _ = run_script(
        tmp_path, "--max-folds", "1", "--fraction", "0.1", "--no-tta",
        "--set", "validation_fraction=0.0", *TINY,
    )  # fmt: skip
    (fold,) = record["folds"]
    assert record["params"]["validation_fraction"] == 0.0
    assert 0.0 <= fold["balanced_accuracy"] <= 1.0
    assert "validation_threshold" not in fold
    assert "balanced_accuracy_at_validation_threshold" not in record["summary"]


def test_keras_batch_norm_builds_keras_own_layers(monkeypatch):
    import keras
    from _tiny import TINY_FIT

    from idcclf import estimator
    from idcclf.model import FusedBatchNormalization

    script = load_script()
    # Restored after the test: use_batch_norm replaces the estimator's builder.
    monkeypatch.setattr(estimator, "build_cancernet", estimator.build_cancernet)

    def norm_layers(clf):
        network = clf.model_.get_layer("cancernet")
        return [type(layer) for layer in network.layers if "bn" in layer.name]

    rng = np.random.default_rng(0)
    X, y = rng.integers(0, 256, (16, 50, 50, 3), dtype=np.uint8), np.arange(16) % 2
    script.use_batch_norm("fused")
    fused = norm_layers(estimator.IDCClassifier(**TINY_FIT).fit(X, y))
    script.use_batch_norm("keras")
    plain = norm_layers(estimator.IDCClassifier(**TINY_FIT).fit(X, y))
    assert fused and set(fused) == {FusedBatchNormalization}
    assert len(plain) == len(fused) and set(plain) == {keras.layers.BatchNormalization}


def test_colliding_patient_ids_are_refused(tmp_path):
    patient = sample_patients()[0]
    for root in ("a", "b"):
        shutil.copytree(sample_path() / patient, tmp_path / root / patient)
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--data", str(tmp_path / "a"), "--data", str(tmp_path / "b")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 2
    assert f"patient {sample_patients()[0]} is under two roots" in done.stderr


@pytest.mark.parametrize(
    "args, message",
    [
        (["--seeds", "0"], "--seeds must be at least 1, got 0"),
        (["--seeds", "2", "--set", "random_state=3"], "same model"),
        (["--first-seed", "1", "--set", "random_state=3"], "override --first-seed"),
        (["--first-seed", "-1"], "--first-seed must be at least 0, got -1"),
        (["--patient-weight", "1.5"], "--patient-weight must be in [0, 1], got 1.5"),
        (["--fold", "6"], "--fold must be between 1 and --folds (5), got 6"),
        (["--fold", "1", "--max-folds", "1"], "give --fold or --max-folds, not both"),
        (["--train-patients", "1"], "--train-patients must be at least 2"),
        (["--train-fraction", "0"], "--train-fraction must be in (0, 1], got 0.0"),
        (["--means-only"], "--means-only qualifies --standardize-patients: give both"),
        (
            ["--normalize-stains", "--standardize-patients"],
            "--normalize-stains and --standardize-patients exclude each other",
        ),
        (["--upsample", "0"], "--upsample must be 1 or more, got 0"),
        (["--set", "epochs"], "--set needs NAME=VALUE"),
        (["--data", "/nonexistent/idc"], "no data at /nonexistent/idc"),
    ],
)
def test_bad_options_are_named(args, message):
    done = subprocess.run(
        [sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2
    assert message in done.stderr


def _record(first_seed, scores):
    """A result of hand-made folds: ``scores`` maps each fold to its balanced accuracy."""
    script = load_script()
    folds = [
        {
            "fold": k,
            "test_patients": ["p"] * k,
            "n_samples": 100 * k,
            "seconds": 10.0 * k,
            **dict.fromkeys(script.METRICS, score),
        }
        for k, score in scores.items()
    ]
    command = f"cv_accuracy.py --fold {' --fold '.join(map(str, scores))}"
    return {"epochs": 6, "first_seed": first_seed, "folds": folds, "command": command}


def test_table_joins_the_parts_of_one_run_and_refuses_others(tmp_path):
    parts = {
        "first.json": _record(1, {1: 0.8, 2: 0.9}),
        "last.json": _record(1, {3: 0.7}),
        "other_seed.json": _record(2, {3: 0.7}),
        "again.json": _record(1, {2: 0.6}),
        "with_tta.json": _record(1, {3: 0.7}),
    }
    parts["with_tta.json"]["folds"][0]["balanced_accuracy_tta"] = 0.75
    for name, record in parts.items():
        (tmp_path / name).write_text(json.dumps(record))

    def table(*names):
        args = [str(tmp_path / name) for name in names]
        return subprocess.run(
            [sys.executable, str(SCRIPT), "--table", *args],
            capture_output=True,
            text=True,
            timeout=120,
        )

    joined = table("last.json", "first.json")
    assert joined.returncode == 0, joined.stderr[-2000:]
    rows = [line.split(" | ")[0] for line in joined.stdout.splitlines()[2:]]
    assert rows == ["| 1", "| 2", "| 3", "| mean ± std"]
    assert f"| mean ± std | | | {0.8:.3f} ± {np.std([0.8, 0.9, 0.7]):.3f} |" in joined.stdout

    refused = table("first.json", "other_seed.json")
    assert refused.returncode == 2
    assert "differ in first_seed (2 against 1): not parts of one run" in refused.stderr

    refused = table("first.json", "with_tta.json")
    assert refused.returncode == 2
    assert f"fold 3 of {tmp_path / 'with_tta.json'} and fold 1 of" in refused.stderr
    assert "hold different figures: not parts of one run" in refused.stderr

    refused = table("first.json", "again.json")
    assert refused.returncode == 2
    assert f"fold 2 is in both {tmp_path / 'first.json'} and {tmp_path / 'again.json'}" in (
        refused.stderr
    )


def test_table_names_a_missing_or_foreign_file(tmp_path):
    (tmp_path / "notes.json").write_text('["a list, not a result"]')
    (tmp_path / "broken.json").write_text("{")
    for name, message in [
        ("absent.json", "absent.json: no such file"),
        ("notes.json", "notes.json: not a cv_accuracy.py result (no list of folds)"),
        ("broken.json", "broken.json: not a cv_accuracy.py result (not JSON"),
    ]:
        done = subprocess.run(
            [sys.executable, str(SCRIPT), "--table", str(tmp_path / name)],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 2
        assert message in done.stderr
        assert "Traceback" not in done.stderr


def test_table_names_a_file_it_cannot_read(tmp_path, monkeypatch, capsys):
    # Tests may run as root, whom file permissions do not stop: the refusal is simulated.
    script = load_script()
    result = tmp_path / "locked.json"
    result.write_text("{}")

    def refuse(self, *args, **kwargs):
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "read_text", refuse)
    assert script.main(["--table", str(result)]) == 2
    assert capsys.readouterr().err == f"{result}: cannot read it (Permission denied)\n"
