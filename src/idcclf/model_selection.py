"""Cross-validation by patient: no patient's patches on both sides of a fold.

Patches of one patient look alike (same slide, stain and scanner), so a model scored on
patients it was trained on looks better than it is. Every splitter idcclf chooses is
therefore grouped by patient: :func:`patient_cv` returns one, and
:func:`patient_cross_validate` and :func:`idcclf.studies.run_study` use it by default.
"""

from __future__ import annotations

import numbers

import numpy as np
from sklearn.model_selection import GroupKFold, StratifiedGroupKFold, cross_validate

from .metrics import _check_group_shape, sensitivity_scorer, specificity_scorer

__all__ = [
    "IMBALANCE_RATIO",
    "PatientGroupKFold",
    "PatientStratifiedGroupKFold",
    "check_groups",
    "fold_patients",
    "is_imbalanced",
    "patient_cross_validate",
    "patient_cv",
    "study_scoring",
]

#: Classes count as imbalanced when the smallest has fewer than this share of the
#: largest's samples (the IDC data has about 0.34; the bundled sample about 0.86).
IMBALANCE_RATIO = 0.8

_NO_GROUPS = (
    "cross-validation by patient needs groups (the patient id of every sample): pass "
    "groups=... to {where}"
)


def check_groups(groups, n_samples: int, *, where: str = "fit") -> np.ndarray:
    """Validate patient ids: one per sample, not None.

    Parameters
    ----------
    groups : array-like of shape (n_samples,) or None
        Patient id of every sample.
    n_samples : int
        Number of samples they must match.
    where : str, default='fit'
        Call the user should pass them to, named in the error message.

    Returns
    -------
    ndarray of shape (n_samples,)

    Raises
    ------
    ValueError
        If ``groups`` is None or does not hold one id per sample.
    """
    if groups is None:
        raise ValueError(_NO_GROUPS.format(where=where))
    return _check_group_shape(groups, n_samples)


def _check_n_groups(n_splits: int, groups: np.ndarray) -> None:
    n_groups = np.unique(groups).size
    if n_splits > n_groups:
        raise ValueError(
            f"cannot make {n_splits} folds by patient from {n_groups} patients; use at most "
            f"{n_groups} folds or more patients"
        )


class PatientGroupKFold(GroupKFold):
    """``GroupKFold`` that explains what is missing when ``groups`` is not passed.

    Folds have about equal numbers of samples; no group is in two folds.
    """

    def split(self, X, y=None, groups=None):
        """Generate indices to split data into training and test set, by group."""
        groups = check_groups(groups, len(X), where="the search / cross-validation fit")
        _check_n_groups(self.n_splits, groups)
        return super().split(X, y, groups)


class PatientStratifiedGroupKFold(StratifiedGroupKFold):
    """``StratifiedGroupKFold`` that explains what is missing when ``groups`` is not passed.

    Folds keep the class ratio as closely as whole groups allow; no group is in two
    folds.
    """

    def split(self, X, y, groups=None):
        """Generate indices to split data into training and test set, by group."""
        groups = check_groups(groups, len(X), where="the search / cross-validation fit")
        _check_n_groups(self.n_splits, groups)
        return super().split(X, y, groups)


def is_imbalanced(y, *, ratio: float = IMBALANCE_RATIO) -> bool:
    """Whether the smallest class has fewer than ``ratio`` times the largest's samples.

    Parameters
    ----------
    y : array-like of shape (n_samples,)
        Labels.
    ratio : float, default=IMBALANCE_RATIO
        Threshold on smallest / largest class count.

    Returns
    -------
    bool
        False for a single class.
    """
    counts = np.unique(np.asarray(y), return_counts=True)[1]
    return len(counts) > 1 and counts.min() < ratio * counts.max()


def patient_cv(
    n_splits: int = 5,
    *,
    y=None,
    stratified: bool | None = None,
    random_state: int | np.random.RandomState | None = None,
) -> PatientGroupKFold | PatientStratifiedGroupKFold:
    """K-fold cross-validation by patient, stratified by class when classes are imbalanced.

    Parameters
    ----------
    n_splits : int, default=5
        Number of folds; at most the number of patients.
    y : array-like of shape (n_samples,), default=None
        Labels, used only to choose the splitter when ``stratified`` is None.
    stratified : bool or None, default=None
        True: ``StratifiedGroupKFold``, which keeps the class ratio in every fold as
        closely as whole patients allow. False: ``GroupKFold``, which balances fold
        sizes. None: stratified when ``y`` is imbalanced (see :func:`is_imbalanced`)
        or not given, since a fold short of the minority class makes its sensitivity
        and ROC AUC meaningless; ``GroupKFold`` when ``y`` is balanced.
    random_state : int, RandomState or None, default=None
        Shuffles the patients before they are assigned to folds. None keeps the
        deterministic assignment of scikit-learn (no shuffling).

    Returns
    -------
    PatientStratifiedGroupKFold or PatientGroupKFold
        Subclasses of ``StratifiedGroupKFold`` / ``GroupKFold`` whose ``split``
        raises a clear ``ValueError`` when ``groups`` is missing or when there are
        fewer patients than folds.

    Examples
    --------
    >>> import numpy as np
    >>> patient_cv(3, y=np.r_[np.zeros(70), np.ones(30)])
    PatientStratifiedGroupKFold(n_splits=3, random_state=None, shuffle=False)
    >>> patient_cv(3, y=np.r_[np.zeros(50), np.ones(50)])
    PatientGroupKFold(n_splits=3, random_state=None, shuffle=False)
    """
    if not isinstance(n_splits, numbers.Integral) or isinstance(n_splits, bool) or n_splits < 2:
        raise ValueError(f"n_splits must be an integer of at least 2, got {n_splits!r}")
    if stratified is None:
        stratified = y is None or is_imbalanced(y)
    shuffle = random_state is not None
    cls = PatientStratifiedGroupKFold if stratified else PatientGroupKFold
    return cls(n_splits=int(n_splits), shuffle=shuffle, random_state=random_state)


def study_scoring() -> dict:
    """Scorers of every study: balanced accuracy, sensitivity, specificity, F1, ROC AUC.

    Returns
    -------
    dict of str to scorer
        For ``scoring=`` of ``cross_validate`` or ``GridSearchCV``; the positive
        class is label 1 (IDC).
    """
    return {
        "balanced_accuracy": "balanced_accuracy",
        "sensitivity": sensitivity_scorer,
        "specificity": specificity_scorer,
        "f1": "f1",
        "roc_auc": "roc_auc",
    }


def _resolve_cv(cv, y, random_state):
    if cv is None:
        cv = 5
    if isinstance(cv, numbers.Integral) and not isinstance(cv, bool):
        return patient_cv(int(cv), y=y, random_state=random_state)
    return cv


def patient_cross_validate(
    estimator,
    X,
    y,
    groups,
    *,
    cv=5,
    scoring=None,
    n_jobs: int | None = None,
    random_state: int | None = None,
    **kwargs,
) -> dict:
    """``cross_validate`` with folds by patient and the study metrics.

    Parameters
    ----------
    estimator : estimator
        An ``IDCClassifier``, a resampling pipeline or any classifier.
    X : array-like of shape (n_samples, ...)
        Patches.
    y : array-like of shape (n_samples,)
        Labels.
    groups : array-like of shape (n_samples,)
        Patient id of every sample; required.
    cv : int or splitter, default=5
        An int makes :func:`patient_cv` folds; a splitter is used as given.
    scoring : str, callable, dict or None, default=None
        None uses :func:`study_scoring` (the five study metrics).
    n_jobs : int or None, default=None
        Folds fitted in parallel (see :func:`idcclf.studies.run_study` on threads).
    random_state : int or None, default=None
        Shuffles patients between folds (when ``cv`` is an int).
    **kwargs
        Passed to ``sklearn.model_selection.cross_validate``.

    Returns
    -------
    dict
        As ``cross_validate``: ``test_<metric>`` arrays, ``fit_time``, ...
    """
    groups = check_groups(groups, len(y), where="patient_cross_validate")
    splitter = _resolve_cv(cv, y, random_state)
    return cross_validate(
        estimator,
        X,
        y,
        groups=groups,
        cv=splitter,
        scoring=study_scoring() if scoring is None else scoring,
        n_jobs=n_jobs,
        **kwargs,
    )


def fold_patients(cv, X, y, groups) -> list[tuple[np.ndarray, np.ndarray]]:
    """The patients on each side of every fold of ``cv``.

    Parameters
    ----------
    cv : splitter
        E.g. from :func:`patient_cv`.
    X, y, groups : array-like
        As passed to the search or cross-validation.

    Returns
    -------
    list of (train_patients, test_patients)
        Sorted unique patient ids per fold.

    Raises
    ------
    ValueError
        If a patient is on both sides of a fold (a splitter that ignores ``groups``).
    """
    groups = check_groups(groups, len(y), where="fold_patients")
    folds = []
    for k, (train, test) in enumerate(cv.split(X, y, groups)):
        train_patients, test_patients = np.unique(groups[train]), np.unique(groups[test])
        shared = np.intersect1d(train_patients, test_patients)
        if shared.size:
            raise ValueError(
                f"fold {k}: patients {shared.tolist()} are in both the training and the "
                "test part; use a splitter grouped by patient (patient_cv)"
            )
        folds.append((train_patients, test_patients))
    return folds
