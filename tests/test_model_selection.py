"""Cross-validation by patient: splitter choice, clear errors, and no patient leakage."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from _tiny import TINY_FIT
from sklearn import config_context
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.model_selection import (
    GridSearchCV,
    GroupKFold,
    KFold,
    StratifiedGroupKFold,
    cross_validate,
)

from idcclf.model_selection import (
    PatientGroupKFold,
    PatientStratifiedGroupKFold,
    check_groups,
    fold_patients,
    is_imbalanced,
    patient_cross_validate,
    patient_cv,
    study_scoring,
)

# Every fit and every prediction of a _GroupSpy, in order (tests run with n_jobs=1).
LOG: list[tuple[str, int, frozenset]] = []
_FIT_IDS = itertools.count()


class _GroupSpy(ClassifierMixin, BaseEstimator):
    """Records which patients it is fitted on and which it predicts for.

    Column 0 of X is the sample index; ``PATIENTS`` maps it to the patient.
    """

    __metadata_request__fit = {"groups": True}

    def __init__(self, c=1.0):
        self.c = c

    def fit(self, X, y, groups=None):
        self.fit_id_ = next(_FIT_IDS)
        self.classes_ = np.unique(y)
        self.routed_groups_ = None if groups is None else frozenset(groups)
        LOG.append(("fit", self.fit_id_, frozenset(PATIENTS[X[:, 0].astype(int)])))
        return self

    def _record(self, X):
        LOG.append(("predict", self.fit_id_, frozenset(PATIENTS[X[:, 0].astype(int)])))

    def predict(self, X):
        self._record(X)
        return np.resize(self.classes_, len(X))

    def predict_proba(self, X):
        self._record(X)
        return np.full((len(X), len(self.classes_)), 1.0 / len(self.classes_))


def _toy(n_patients=8, per_patient=10, positive_share=0.3, seed=0):
    rng = np.random.default_rng(seed)
    groups = np.repeat([f"p{i}" for i in range(n_patients)], per_patient)
    y = (rng.random(len(groups)) < positive_share).astype(int)
    y[:2] = [0, 1]  # both classes for sure
    X = np.c_[np.arange(len(y)), rng.random((len(y), 2))]
    return X, y, groups


X_TOY, Y_TOY, PATIENTS = _toy()


@pytest.fixture(autouse=True)
def _clear_log():
    LOG.clear()
    yield
    LOG.clear()


def _assert_no_leak():
    fitted = {fit_id: patients for kind, fit_id, patients in LOG if kind == "fit"}
    scored = [(fit_id, patients) for kind, fit_id, patients in LOG if kind == "predict"]
    assert scored, "nothing was scored"
    for fit_id, patients in scored:
        assert not fitted[fit_id] & patients, f"patients {fitted[fit_id] & patients} leaked"


# ------------------------------------------------------------------ splitter choice


def test_patient_cv_stratifies_imbalanced_and_groups_balanced():
    imbalanced = np.r_[np.zeros(70), np.ones(30)]
    balanced = np.r_[np.zeros(50), np.ones(50)]
    cv = patient_cv(3, y=imbalanced)
    assert isinstance(cv, StratifiedGroupKFold) and isinstance(cv, PatientStratifiedGroupKFold)
    cv = patient_cv(3, y=balanced)
    assert isinstance(cv, GroupKFold) and isinstance(cv, PatientGroupKFold)
    assert cv.n_splits == 3
    # Explicit choice wins; without y the safe choice is stratified.
    assert isinstance(patient_cv(3, y=balanced, stratified=True), StratifiedGroupKFold)
    assert isinstance(patient_cv(3, y=imbalanced, stratified=False), GroupKFold)
    assert isinstance(patient_cv(), StratifiedGroupKFold)
    assert patient_cv().n_splits == 5


def test_patient_cv_shuffles_only_with_a_seed():
    assert not patient_cv(3).shuffle
    cv = patient_cv(3, random_state=1)
    assert cv.shuffle and cv.random_state == 1


@pytest.mark.parametrize("bad", [1, 0, 2.5, True, "3"])
def test_patient_cv_rejects_bad_n_splits(bad):
    with pytest.raises(ValueError, match="n_splits"):
        patient_cv(bad)


def test_is_imbalanced():
    assert is_imbalanced([0] * 7 + [1] * 3)
    assert not is_imbalanced([0] * 5 + [1] * 5)
    assert not is_imbalanced([0] * 9 + [1] * 8)
    assert not is_imbalanced([1, 1, 1])


# ------------------------------------------------------------------ clear errors


@pytest.mark.parametrize("stratified", [True, False])
def test_split_without_groups_says_what_is_missing(stratified):
    cv = patient_cv(3, stratified=stratified)
    with pytest.raises(ValueError, match="needs groups"):
        list(cv.split(X_TOY, Y_TOY))
    with pytest.raises(ValueError, match="needs groups"):
        cross_validate(_GroupSpy(), X_TOY, Y_TOY, cv=cv, error_score="raise")
    with pytest.raises(ValueError, match="needs groups"):
        GridSearchCV(_GroupSpy(), {"c": [1.0]}, cv=cv).fit(X_TOY, Y_TOY)


def test_helpers_without_groups_say_what_is_missing():
    with pytest.raises(ValueError, match="needs groups.*patient_cross_validate"):
        patient_cross_validate(_GroupSpy(), X_TOY, Y_TOY, None, cv=3)
    with pytest.raises(ValueError, match="one patient id per sample"):
        check_groups(PATIENTS[:5], len(Y_TOY))


def test_more_folds_than_patients_is_explained():
    with pytest.raises(ValueError, match="cannot make 9 folds by patient from 8 patients"):
        list(patient_cv(9, stratified=False).split(X_TOY, Y_TOY, PATIENTS))


# ------------------------------------------------------------------ no leakage


@pytest.mark.parametrize("stratified", [True, False])
def test_cross_validate_never_scores_a_training_patient(stratified):
    cv = patient_cv(4, stratified=stratified, random_state=0)
    result = cross_validate(
        _GroupSpy(), X_TOY, Y_TOY, groups=PATIENTS, cv=cv, scoring=study_scoring()
    )
    assert len(result["test_balanced_accuracy"]) == 4
    _assert_no_leak()
    # Every patient is scored in exactly one fold.
    tested = [p for kind, _, p in LOG if kind == "predict"]
    assert frozenset().union(*tested) == frozenset(PATIENTS)
    folds = fold_patients(cv, X_TOY, Y_TOY, PATIENTS)
    assert sum(len(test) for _, test in folds) == len(set(PATIENTS))


def test_grid_search_never_scores_a_training_patient():
    search = GridSearchCV(
        _GroupSpy(),
        {"c": [0.1, 1.0, 10.0]},
        cv=patient_cv(3, y=Y_TOY),
        scoring=study_scoring(),
        refit="balanced_accuracy",
    )
    search.fit(X_TOY, Y_TOY, groups=PATIENTS)
    n_fits = sum(kind == "fit" for kind, *_ in LOG)
    assert n_fits == 3 * 3 + 1  # + refit on everything
    _assert_no_leak()
    assert isinstance(search.best_params_, dict)


def test_patient_cross_validate_defaults_to_patient_folds():
    result = patient_cross_validate(_GroupSpy(), X_TOY, Y_TOY, PATIENTS, cv=4)
    assert set(study_scoring()) <= {k.removeprefix("test_") for k in result}
    assert len(result["fit_time"]) == 4
    _assert_no_leak()


def test_routed_groups_reach_the_classifier_and_match_its_rows():
    # With metadata routing the same groups go to the splitter and to fit: the
    # classifier gets the patients of its own training part only.
    with config_context(enable_metadata_routing=True):
        search = GridSearchCV(
            _GroupSpy(), {"c": [1.0]}, cv=patient_cv(3, y=Y_TOY), scoring="accuracy"
        )
        search.fit(X_TOY, Y_TOY, groups=PATIENTS)
    assert search.best_estimator_.routed_groups_ == frozenset(PATIENTS)
    _assert_no_leak()


@pytest.mark.filterwarnings("ignore:The groups parameter is ignored by KFold")
def test_fold_patients_catches_a_leaky_splitter():
    with pytest.raises(ValueError, match="both the training and the test part"):
        fold_patients(KFold(3), X_TOY, Y_TOY, PATIENTS)


def test_real_classifier_cross_validated_by_patient(small_sample):
    from idcclf import IDCClassifier

    X, y, groups = small_sample
    clf = IDCClassifier(**TINY_FIT)
    result = patient_cross_validate(clf, X, y, groups, cv=2, return_indices=True)
    for metric in study_scoring():
        scores = result[f"test_{metric}"]
        assert scores.shape == (2,) and np.all((scores >= 0) & (scores <= 1))
    for train, test in zip(result["indices"]["train"], result["indices"]["test"], strict=True):
        assert not set(groups[train]) & set(groups[test])


@pytest.fixture(scope="module")
def small_sample():
    from idcclf import load_sample

    bunch = load_sample(max_per_class=100, random_state=0)
    return bunch.data, bunch.target, bunch.groups
