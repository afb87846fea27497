"""Running a study: the grid search with folds by patient, and data subsets for it.

scikit-learn and TensorFlow are imported only when a search is built or run.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from .._format import plural
from .registry import METRICS, STUDY_DEFAULTS, Study, get_study

if TYPE_CHECKING:
    from .result import StudyResult

__all__ = ["make_search", "run_study", "stratified_subset"]


def _classifier_knobs() -> list[str]:
    from ..estimator import IDCClassifier

    return sorted(IDCClassifier().get_params(deep=False))


def _check_knobs(keys, valid: Sequence[str], what: str) -> None:
    unknown = [key for key in keys if key not in valid]
    if unknown:
        raise ValueError(
            f"{what} {', '.join(map(repr, unknown))} {'is' if len(unknown) == 1 else 'are'} "
            f"not a knob of the estimator; valid ones: {', '.join(valid)}"
        )


def _make_estimator(study: Study, base_params: Mapping[str, Any]):
    from ..estimator import IDCClassifier

    _check_knobs(base_params, _classifier_knobs(), "base_params key")
    classifier = IDCClassifier(**base_params)
    if not study.pipeline:
        return classifier
    from ..pipelines import make_undersampling_pipeline

    pipe = make_undersampling_pipeline(classifier)
    return pipe.set_params(sampler="passthrough")


def _with_grid(study: Study, grid) -> Study:
    return study if grid is None else dataclasses.replace(study, grid=grid)


def make_search(
    name: str | Study,
    *,
    y=None,
    cv=3,
    epochs: int = 5,
    n_jobs: int | None = 1,
    base_params: Mapping[str, Any] | None = None,
    grid=None,
    random_state: int | None = 0,
    refit: bool = True,
    verbose: int = 0,
):
    """Build the ``GridSearchCV`` of a study without fitting it.

    Parameters are those of :func:`run_study`, except ``verbose``, which is passed to
    ``GridSearchCV`` as it is; ``y`` (optional) chooses between stratified and plain
    folds by patient when ``cv`` is an int.

    Returns
    -------
    sklearn.model_selection.GridSearchCV
    """
    from sklearn.model_selection import GridSearchCV

    from ..model_selection import _resolve_cv, study_scoring

    study = _with_grid(get_study(name), grid)
    params = {**STUDY_DEFAULTS, "epochs": epochs, "random_state": random_state}
    params.update(base_params or {})
    estimator = _make_estimator(study, params)
    param_grid = study.param_grid(random_state)
    valid = sorted(estimator.get_params(deep=True))
    for g in param_grid:
        _check_knobs(g, valid, "grid parameter")
    return GridSearchCV(
        estimator,
        param_grid,
        scoring=study_scoring(),
        refit=METRICS[0] if refit else False,
        cv=_resolve_cv(cv, y, random_state),
        n_jobs=n_jobs,
        verbose=verbose,
        error_score=np.nan,
    )


def run_study(
    name: str | Study,
    X,
    y,
    groups,
    *,
    cv=3,
    epochs: int = 5,
    n_jobs: int | None = 1,
    base_params: Mapping[str, Any] | None = None,
    grid=None,
    random_state: int | None = 0,
    refit: bool = True,
    verbose: int = 1,
) -> StudyResult:
    """Run a study: a grid search with folds by patient and the five study metrics.

    Parameters
    ----------
    name : str or Study
        One of :data:`~idcclf.studies.STUDIES` (``'dropout'``, ``'batch_norm'``,
        ``'learning_rate'``, ``'optimizer'``, ``'imbalance'``) or a
        :class:`~idcclf.studies.Study`.
    X : array-like of shape (n_samples, 50, 50, 3) or (n_samples, 7500)
        Patches, uint8.
    y : array-like of shape (n_samples,)
        Labels, 1 = IDC.
    groups : array-like of shape (n_samples,)
        Patient id of every patch; required.
    cv : int or splitter, default=3
        An int makes :func:`idcclf.model_selection.patient_cv` folds (stratified when
        the classes are imbalanced).
    epochs : int, default=5
        Training epochs of every fit.
    n_jobs : int or None, default=1
        Fits run in parallel. With more than one, each worker process gets
        ``cores // n_jobs`` TensorFlow threads (or ``IDCCLF_TF_THREADS``), see
        :mod:`idcclf._threads`. Inside ``joblib.parallel_backend('dask')`` the fits run
        on the Dask workers; register :class:`idcclf._threads.TFThreadsPlugin` to
        limit their threads.
    base_params : dict or None, default=None
        ``IDCClassifier`` parameters shared by all settings (e.g. a smaller network).
        A key that is not a parameter raises ``ValueError`` naming the valid ones.
    grid : dict or list of dict, default=None
        Replaces the study's grid (same keys as the study's estimator takes).
    random_state : int or None, default=0
        Seed of the classifiers, of the samplers and of the fold assignment.
    refit : bool, default=True
        Refit the best setting (by balanced accuracy) on all the data, kept as
        ``result.best_estimator_`` (ready to save with joblib).
    verbose : int, default=1
        0 silent; otherwise a header, then one line per fit with its fold scores and
        time (from ``GridSearchCV``).

    Returns
    -------
    StudyResult
        ``table`` (one row per setting), ``search`` (the fitted ``GridSearchCV``),
        ``best_estimator_`` (the refitted best setting, or None without refit),
        ``save(out_dir)`` for CSV, Markdown and PNG.

    Raises
    ------
    ValueError
        For an unknown study (listing the known ones), an unknown knob, missing
        ``groups`` or fewer patients than folds.

    Examples
    --------
    >>> from idcclf import load_sample
    >>> from idcclf.studies import run_study
    >>> data = load_sample()
    >>> result = run_study("optimizer", data.data, data.target, data.groups,
    ...                    epochs=2)  # doctest: +SKIP
    >>> print(result.to_markdown())  # doctest: +SKIP
    """
    from ..model_selection import check_groups
    from .result import StudyResult

    study = _with_grid(get_study(name), grid)
    y = np.asarray(y)
    groups = check_groups(groups, len(y), where="run_study")
    search = make_search(
        study,
        y=y,
        cv=cv,
        epochs=epochs,
        n_jobs=n_jobs,
        base_params=base_params,
        random_state=random_state,
        refit=refit,
        verbose=3 if verbose else 0,
    )
    started = time.perf_counter()
    _fit(search, study, X, y, groups, epochs=epochs, verbose=verbose)
    elapsed = time.perf_counter() - started
    if verbose:
        print(f"done in {elapsed:.0f} s\n", flush=True)
    return StudyResult.from_search(study, search, elapsed=elapsed, epochs=epochs)


def _fit(search, study: Study, X, y, groups, *, epochs: int, verbose: int) -> None:
    """Fit the search, with each parallel worker limited to its share of the cores."""
    import joblib
    from sklearn.model_selection import ParameterGrid

    from .._threads import threads_per_worker, worker_tf_threads
    from ..model_selection import fold_patients

    folds = fold_patients(search.cv, X, y, groups)
    n_workers = joblib.effective_n_jobs(search.n_jobs)
    if verbose:
        n_settings = len(ParameterGrid(search.param_grid))
        print(
            f"study {study.name!r}: {study.question}\n"
            f"  {n_settings} settings x {len(folds)} folds by patient = "
            f"{n_settings * len(folds)} fits{' + 1 refit' if search.refit else ''}, "
            f"{len(y)} patches of {np.unique(groups).size} patients, {plural(epochs, 'epoch')}, "
            f"{n_workers} in parallel",
            flush=True,
        )
    threads = None
    if n_workers > 1:
        threads = threads_per_worker(n_workers)
        # Start TensorFlow here first, so that this process (which refits the best
        # setting) keeps all its cores: the limit below is for the workers.
        _start_tensorflow()
    with worker_tf_threads(threads):
        search.fit(X, y, groups=groups)


def _start_tensorflow() -> None:
    import tensorflow as tf

    tf.constant(0.0) + 1.0  # the first op starts the runtime and sizes its thread pools


def stratified_subset(y, n: int, *, random_state: int | None = 0) -> np.ndarray:
    """Indices of ``n`` samples drawn at random with the class ratio of ``y`` kept.

    Unlike ``load_idc(max_per_class=...)``, which balances the classes, this keeps the
    data as imbalanced as it is, which the ``imbalance`` study needs.

    Parameters
    ----------
    y : array-like of shape (n_samples,)
    n : int
        Samples to keep (all of them when ``n >= len(y)``).
    random_state : int or None, default=0

    Returns
    -------
    ndarray of int
        Sorted indices.
    """
    y = np.asarray(y)
    if n >= len(y):
        return np.arange(len(y))
    rng = np.random.default_rng(random_state)
    classes, counts = np.unique(y, return_counts=True)
    # Largest-remainder rounding, so the shares add up to exactly n.
    exact = counts * n / len(y)
    quota = np.floor(exact).astype(int)
    quota[np.argsort(quota - exact)[: n - quota.sum()]] += 1
    keep = [
        rng.choice(np.flatnonzero(y == label), size=k, replace=False)
        for label, k in zip(classes, quota, strict=True)
    ]
    return np.sort(np.concatenate(keep))
