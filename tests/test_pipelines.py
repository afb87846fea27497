"""Resampling pipelines: resampling on training folds only, every imbalance route."""

from __future__ import annotations

import numpy as np
import pytest
from _tiny import TINY_FIT
from imblearn.over_sampling import RandomOverSampler
from imblearn.pipeline import Pipeline
from imblearn.under_sampling import RandomUnderSampler
from sklearn import config_context
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.model_selection import GridSearchCV, cross_validate

from idcclf import IDCClassifier
from idcclf.model_selection import patient_cv, study_scoring
from idcclf.pipelines import (
    IMBALANCE_ROUTES,
    UNDERSAMPLING_RECIPE,
    flatten_patches,
    make_class_weight_classifier,
    make_imbalance_estimator,
    make_oversampling_pipeline,
    make_undersampling_pipeline,
)


class _CountingSpy(ClassifierMixin, BaseEstimator):
    """Remembers what it was trained on and how many rows each prediction had."""

    __metadata_request__fit = {"groups": True}

    def fit(self, X, y, groups=None):
        self.classes_ = np.unique(y)
        self.fit_shape_ = X.shape
        self.fit_dtype_ = X.dtype
        self.fit_counts_ = np.bincount(y, minlength=2)
        self.fit_groups_ = groups
        self.predicted_rows_ = []
        return self

    def predict(self, X):
        self.predicted_rows_.append(len(X))
        return np.resize(self.classes_, len(X))

    def predict_proba(self, X):
        self.predicted_rows_.append(len(X))
        return np.full((len(X), len(self.classes_)), 0.5)


@pytest.fixture(scope="module")
def sample():
    """About 400 real patches of 8 patients, 3 negatives for each positive."""
    from idcclf import load_sample

    bunch = load_sample()
    rng = np.random.default_rng(0)
    keep = []
    for patient in np.unique(bunch.groups)[:8]:
        for label, size in ((0, 36), (1, 12)):
            idx = np.flatnonzero((bunch.groups == patient) & (bunch.target == label))
            keep += list(rng.choice(idx, size=min(size, len(idx)), replace=False))
    keep = np.sort(keep)
    return bunch.data[keep], bunch.target[keep], bunch.groups[keep]


def test_flatten_patches_is_a_view():
    images = np.arange(4 * 50 * 50 * 3, dtype=np.uint8).reshape(4, 50, 50, 3)
    rows = flatten_patches(images)
    assert rows.shape == (4, 7500) and rows.dtype == np.uint8
    assert np.shares_memory(rows, images)
    assert np.array_equal(rows.reshape(images.shape), images)
    assert flatten_patches(rows).shape == (4, 7500)


def test_undersampling_pipeline_follows_the_recipe():
    pipe = make_undersampling_pipeline(random_state=3)
    assert isinstance(pipe, Pipeline)
    assert [name for name, _ in pipe.steps] == ["flatten", "sampler", "classifier"]
    assert isinstance(pipe.named_steps["sampler"], RandomUnderSampler)
    assert pipe.named_steps["sampler"].random_state == 3
    params = pipe.named_steps["classifier"].get_params()
    for key, value in UNDERSAMPLING_RECIPE.items():
        assert params[key] == value
    assert (params["optimizer"], params["learning_rate"]) == ("adam", 1e-4)
    assert (params["batch_size"], params["epochs"]) == (20, 20)
    assert params["random_state"] == 3


def test_given_classifier_and_sampler_are_used():
    clf = IDCClassifier(**TINY_FIT)
    sampler = RandomUnderSampler(sampling_strategy=0.5)
    pipe = make_undersampling_pipeline(clf, sampler=sampler)
    assert pipe.named_steps["sampler"] is sampler
    assert pipe.named_steps["classifier"] is not clf  # cloned, the caller's stays unfitted
    assert pipe.named_steps["classifier"].get_params() == clf.get_params()


@pytest.mark.parametrize(
    "make, expected_size",
    [(make_undersampling_pipeline, np.min), (make_oversampling_pipeline, np.max)],
)
def test_resampling_happens_on_training_folds_only(sample, make, expected_size):
    X, y, groups = sample
    cv = patient_cv(3, y=y)
    result = cross_validate(
        make(_CountingSpy(), random_state=0),
        X,
        y,
        groups=groups,
        cv=cv,
        scoring=study_scoring(),
        return_estimator=True,
        return_indices=True,
    )
    folds = zip(
        result["estimator"], result["indices"]["train"], result["indices"]["test"], strict=True
    )
    for pipe, train, test in folds:
        spy = pipe.named_steps["classifier"]
        train_counts = np.bincount(y[train], minlength=2)
        # Fit: the training part, balanced, as flat uint8 rows (no float copy).
        n = expected_size(train_counts)
        assert list(spy.fit_counts_) == [n, n]
        assert spy.fit_shape_ == (2 * n, 7500) and spy.fit_dtype_ == np.uint8
        # Scoring: every test row, exactly as imbalanced as the test patients are.
        assert spy.predicted_rows_ and set(spy.predicted_rows_) == {len(test)}
        assert np.bincount(y[test], minlength=2)[0] > np.bincount(y[test], minlength=2)[1]


def test_resampling_pipeline_in_a_grid_search_with_routing(sample):
    # Routed groups keep the original rows; the pipeline must not hand them to a
    # classifier that sees resampled rows, while the folds stay grouped by patient.
    X, y, groups = sample
    with config_context(enable_metadata_routing=True):
        pipe = make_undersampling_pipeline(_CountingSpy(), random_state=0)
        search = GridSearchCV(
            pipe,
            {"sampler__sampling_strategy": [1.0, 0.8]},
            cv=patient_cv(3, y=y),
            scoring="balanced_accuracy",
        )
        search.fit(X, y, groups=groups)
    spy = search.best_estimator_.named_steps["classifier"]
    assert spy.fit_groups_ is None
    assert spy.fit_counts_[0] <= np.bincount(y)[0]


def test_undersampling_pipeline_trains_a_real_classifier(sample):
    X, y, _ = sample
    pipe = make_undersampling_pipeline(IDCClassifier(**TINY_FIT), random_state=0).fit(X, y)
    n_minority = np.bincount(y).min()
    assert len(pipe.named_steps["sampler"].sample_indices_) == 2 * n_minority
    assert pipe.named_steps["classifier"].n_features_in_ == 7500
    proba = pipe.predict_proba(X[:7])  # images at predict: flattened the same way
    assert proba.shape == (7, 2) and np.allclose(proba.sum(axis=1), 1)
    assert np.array_equal(pipe.predict(flatten_patches(X[:7])), pipe.predict(X[:7]))


def test_class_weight_route():
    clf = make_class_weight_classifier(IDCClassifier(**TINY_FIT), epochs=2)
    assert isinstance(clf, IDCClassifier)
    assert clf.class_weight == "balanced" and clf.epochs == 2
    assert make_class_weight_classifier().get_params()["class_weight"] == "balanced"


def test_every_imbalance_route_builds():
    base = IDCClassifier(**TINY_FIT)
    kinds = {
        route: make_imbalance_estimator(route, base, random_state=0) for route in IMBALANCE_ROUTES
    }
    assert kinds["none"].class_weight is None and isinstance(kinds["none"], IDCClassifier)
    assert kinds["class_weight"].class_weight == "balanced"
    assert isinstance(kinds["undersample"].named_steps["sampler"], RandomUnderSampler)
    assert isinstance(kinds["oversample"].named_steps["sampler"], RandomOverSampler)
    for estimator in kinds.values():
        classifier = estimator if isinstance(estimator, IDCClassifier) else estimator[-1]
        assert classifier.filters == (4, 8, 8)
    with pytest.raises(ValueError, match="route must be one of"):
        make_imbalance_estimator("smote")
