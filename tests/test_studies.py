"""Named studies: grids, errors, a real (tiny) run, its table, plot and command."""

from __future__ import annotations

import csv
import io
from types import SimpleNamespace

import numpy as np
import pytest
from sklearn.model_selection import GridSearchCV, StratifiedGroupKFold

import idcclf.studies as studies
from idcclf.cli import main
from idcclf.studies import (
    METRICS,
    STUDIES,
    Study,
    StudyResult,
    get_study,
    make_search,
    run_study,
    stratified_subset,
)

TINY = dict(filters=(4, 8, 8), dense_units=8, augment=False)
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def sample():
    """About 200 real patches of 6 patients, 3 negatives for each positive."""
    from idcclf import load_sample

    bunch = load_sample()
    rng = np.random.default_rng(0)
    keep = []
    for patient in np.unique(bunch.groups)[:6]:
        for label, size in ((0, 24), (1, 8)):
            idx = np.flatnonzero((bunch.groups == patient) & (bunch.target == label))
            keep += list(rng.choice(idx, size=min(size, len(idx)), replace=False))
    keep = np.sort(keep)
    return bunch.data[keep], bunch.target[keep], bunch.groups[keep]


@pytest.fixture(scope="module")
def imbalance_result(sample):
    X, y, groups = sample
    # No refit: the pipeline's refit is covered in test_pipelines, best_params_ in test_dask.
    return run_study(
        "imbalance", X, y, groups, cv=2, epochs=1, base_params=TINY, refit=False, verbose=0
    )


# --------------------------------------------------------------- names and knobs


def test_the_five_studies_and_their_grids():
    assert set(STUDIES) == {"dropout", "batch_norm", "learning_rate", "optimizer", "imbalance"}
    assert get_study("dropout").param_grid() == [
        {"dropout_placement": ["after_pool", "before_pool"], "block_dropout": [0.1, 0.25, 0.5]}
    ]
    assert get_study("learning_rate").param_grid() == [{"learning_rate": [1e-1, 1e-2, 1e-3, 1e-4]}]
    assert get_study("batch_norm").n_settings() == 2
    assert get_study("optimizer").param_grid() == [{"optimizer": ["adagrad", "adam"]}]
    assert get_study("imbalance").n_settings() == 3


@pytest.mark.parametrize("name", sorted(STUDIES))
def test_every_study_builds_a_patient_grouped_multimetric_search(name):
    y = np.r_[np.zeros(30), np.ones(10)]
    search = make_search(name, y=y, cv=3, epochs=2, base_params=TINY)
    assert isinstance(search, GridSearchCV)
    assert isinstance(search.cv, StratifiedGroupKFold)
    assert set(search.scoring) == set(METRICS)
    assert search.refit == "balanced_accuracy"
    params = search.estimator.get_params()
    prefix = "classifier__" if name == "imbalance" else ""
    assert params[f"{prefix}epochs"] == 2 and params[f"{prefix}filters"] == (4, 8, 8)
    assert params[f"{prefix}validation_fraction"] == 0.0


def test_unknown_study_lists_the_known_ones():
    with pytest.raises(ValueError, match="unknown study 'dropuot'; known studies: batch_norm, "):
        get_study("dropuot")
    with pytest.raises(ValueError, match="known studies"):
        run_study("nope", np.zeros((4, 7500)), [0, 1, 0, 1], ["a", "b", "c", "d"])


def test_a_grid_parameter_that_is_not_a_knob_names_the_valid_ones():
    with pytest.raises(ValueError, match=r"grid parameter 'lr' is not a knob.*learning_rate"):
        make_search("learning_rate", grid={"lr": [0.1]})
    with pytest.raises(ValueError, match=r"base_params key 'dropout' is not a knob.*block_dropout"):
        make_search("dropout", base_params={"dropout": 0.1})


def test_a_custom_grid_replaces_the_study_grid():
    search = make_search("optimizer", grid={"optimizer": ["sgd", "rmsprop"]}, y=[0, 1] * 5)
    assert search.param_grid == [{"optimizer": ["sgd", "rmsprop"]}]


def test_run_study_needs_groups(sample):
    X, y, _ = sample
    with pytest.raises(ValueError, match="needs groups.*run_study"):
        run_study("optimizer", X, y, None)


def test_stratified_subset_keeps_the_class_ratio():
    y = np.r_[np.zeros(750), np.ones(250)].astype(int)
    keep = stratified_subset(y, 101, random_state=0)
    assert len(keep) == 101 and len(set(keep)) == 101
    assert np.all(np.diff(keep) > 0)
    assert np.bincount(y[keep]).tolist() == [76, 25]
    assert np.array_equal(keep, stratified_subset(y, 101, random_state=0))
    assert len(stratified_subset(y, 5000)) == 1000


# --------------------------------------------------------------- a real run


def test_imbalance_study_runs_every_route(imbalance_result):
    result = imbalance_result
    assert [row["setting"] for row in result.table] == ["none", "class weights", "undersampling"]
    assert sorted(row["rank"] for row in result.table)[0] == 1
    search = result.search
    assert search.n_splits_ == 2
    for metric in METRICS:
        assert f"mean_test_{metric}" in search.cv_results_
    for row in result.table:
        for metric in METRICS:
            assert len(row[f"{metric}_folds"]) == 2
            assert 0 <= row[f"{metric}_mean"] <= 1
        assert row["fit_time_mean"] > 0 and row["n_failed"] == 0
    assert result.best["rank"] == 1
    assert "balanced_accuracy: best" in result.summary()
    assert "roc_auc: best" in result.summary()


def test_results_are_written_as_csv_markdown_and_png(imbalance_result, tmp_path):
    paths = imbalance_result.save(tmp_path / "out", notes="Data: test.")
    assert {p.name for p in paths.values()} == {"imbalance.csv", "imbalance.md", "imbalance.png"}
    rows = list(csv.DictReader(io.StringIO(paths["csv"].read_text())))
    assert [row["setting"] for row in rows] == ["none", "class weights", "undersampling"]
    for metric in (*METRICS, "fit_time"):
        assert f"{metric}_mean" in rows[0] and f"{metric}_std" in rows[0]
    markdown = paths["markdown"].read_text()
    assert "| rank | setting | balanced_accuracy |" in markdown and " ± " in markdown
    assert "Data: test." in markdown and "2 folds by patient" in markdown
    assert paths["plot"].read_bytes().startswith(PNG_SIGNATURE)
    assert not list((tmp_path / "out").glob(".*"))  # no temporary files left


def _fake_search(scores: dict[str, list[list[float]]], params: list[dict]):
    results = {"params": params, "mean_fit_time": [1.0] * len(params), "std_fit_time": [0.1] * 2}
    for metric in METRICS:
        folds = np.array(scores.get(metric, scores["balanced_accuracy"]), dtype=float)
        results[f"mean_test_{metric}"] = folds.mean(axis=1)
        results[f"std_test_{metric}"] = folds.std(axis=1)
        for k in range(folds.shape[1]):
            results[f"split{k}_test_{metric}"] = folds[:, k]
    order = np.argsort(-np.nan_to_num(results["mean_test_balanced_accuracy"], nan=-1))
    results["rank_test_balanced_accuracy"] = np.argsort(order) + 1
    return SimpleNamespace(cv_results_=results, n_splits_=folds.shape[1], cv=None)


def test_summary_compares_the_lead_with_the_fold_spread():
    study = Study("toy", "?", {"optimizer": ["adam", "sgd"]})
    params = [{"optimizer": "adam"}, {"optimizer": "sgd"}]
    clear = _fake_search({"balanced_accuracy": [[0.9, 0.91, 0.89], [0.7, 0.72, 0.68]]}, params)
    result = StudyResult.from_search(study, clear, elapsed=1.0, epochs=1)
    assert result.best["setting"] == "optimizer=adam"
    assert "larger than the fold-to-fold spread" in result.summary()
    assert "better in 3 of 3 folds" in result.summary()
    close = _fake_search({"balanced_accuracy": [[0.8, 0.7, 0.9], [0.78, 0.72, 0.85]]}, params)
    result = StudyResult.from_search(study, close, elapsed=1.0, epochs=1)
    assert "within the fold-to-fold spread" in result.summary()
    assert "predicted a single class" not in result.summary()


def test_summary_flags_fits_that_predict_one_class():
    study = Study("toy", "?", {"optimizer": ["adam", "sgd"]})
    params = [{"optimizer": "adam"}, {"optimizer": "sgd"}]
    scores = {
        "balanced_accuracy": [[0.5, 0.5], [0.5, 0.6]],
        "sensitivity": [[1.0, 0.0], [1.0, 0.5]],
        "specificity": [[0.0, 1.0], [0.0, 0.7]],
        "roc_auc": [[0.8, 0.85], [0.7, 0.72]],
    }
    result = StudyResult.from_search(study, _fake_search(scores, params), elapsed=1, epochs=1)
    summary = result.summary()
    assert "roc_auc: best optimizer=adam (0.825" in summary
    assert "3 of 4 fits predicted a single class" in summary


def test_failed_folds_are_counted_and_shown():
    study = get_study("learning_rate")
    params = [{"learning_rate": 0.1}, {"learning_rate": 0.01}]
    search = _fake_search({"balanced_accuracy": [[np.nan, 0.6], [0.8, 0.7]]}, params)
    result = StudyResult.from_search(study, search, elapsed=1.0, epochs=1)
    assert [row["n_failed"] for row in result.table] == [1, 0]
    markdown = result.to_markdown()
    assert "learning_rate=0.1 (1 fold(s) failed)" in markdown and "n/a" in markdown


# --------------------------------------------------------------- command line


def test_study_command_writes_table_and_plot(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(studies.STUDY_DEFAULTS, "filters", (4, 8, 8))
    monkeypatch.setitem(studies.STUDY_DEFAULTS, "dense_units", 8)
    monkeypatch.setitem(studies.STUDY_DEFAULTS, "augment", False)
    out = tmp_path / "study"
    argv = ["study", "optimizer", "--cv", "2", "--epochs", "1", "--max-per-class", "40"]
    status = main([*argv, "--no-refit", "--out", str(out)])
    captured = capsys.readouterr()
    assert status == 0, captured.err
    assert "2 settings x 2 folds by patient = 4 fits," in captured.out
    # Progress: one line per fit.
    assert "[CV 2/2] END optimizer=adam; balanced_accuracy: (test=" in captured.out
    assert "| optimizer=adagrad |" in captured.out and "roc_auc: best" in captured.out
    for suffix in ("csv", "md", "png"):
        assert (out / f"optimizer.{suffix}").stat().st_size > 0
    markdown = (out / "optimizer.md").read_text()
    assert "Command: `idcclf study optimizer --cv 2 --epochs 1 --n-jobs 1" in markdown
    assert "bundled sample, 80 patches" in markdown


def test_study_command_rejects_an_unknown_study(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["study", "dropuot"])
    assert exc.value.code == 2
    assert "invalid choice: 'dropuot'" in capsys.readouterr().err


def test_study_command_rejects_more_folds_than_patients(tmp_path, capsys):
    argv = ["study", "optimizer", "--cv", "13", "--quiet", "--max-per-class", "5"]
    status = main([*argv, "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert status == 2
    assert err.count("\n") == 1 and "cannot make 13 folds by patient" in err
