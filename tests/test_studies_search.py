"""idcclf.studies.search: building and running a study's search, and data subsets."""

from __future__ import annotations

import csv
import io

import numpy as np
import pytest
from sklearn.model_selection import GridSearchCV, StratifiedGroupKFold

from idcclf.studies import METRICS, STUDIES, make_search, run_study, stratified_subset

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


# --------------------------------------------------------------- the search


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


def test_unknown_study_is_refused_before_any_work():
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
    assert result.best_estimator_ is None and result.best_classifier_ is None  # no refit


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


def test_the_refitted_best_setting_is_kept_ready_to_save(sample, tmp_path):
    import joblib
    from imblearn.under_sampling import RandomUnderSampler

    from idcclf import IDCClassifier

    X, y, groups = sample
    grid = {"sampler": [RandomUnderSampler(random_state=0)], "classifier__class_weight": [None]}
    result = run_study(
        "imbalance", X, y, groups, cv=2, epochs=1, base_params=TINY, grid=grid, verbose=0
    )
    pipeline, classifier = result.best_estimator_, result.best_classifier_
    assert pipeline is result.search.best_estimator_
    assert [name for name, _ in pipeline.steps] == ["flatten", "sampler", "classifier"]
    assert type(classifier) is IDCClassifier
    # The sampler acts in fit only: the classifier alone predicts what the pipeline does.
    np.testing.assert_allclose(classifier.predict_proba(X), pipeline.predict_proba(X))
    joblib.dump(classifier, tmp_path / "best.joblib")
    loaded = joblib.load(tmp_path / "best.joblib")
    np.testing.assert_allclose(loaded.predict_proba(X[:20]), classifier.predict_proba(X[:20]))
