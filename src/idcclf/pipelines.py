"""Pipelines that balance the classes: undersampling, oversampling or class weights.

About 3 in 4 IDC patches are negative. Three routes counter that:

- :func:`make_undersampling_pipeline`: drop majority patches at random until the
  classes are even (the second reference recipe: Adam, learning rate 1e-4, batch 20,
  20 epochs);
- :func:`make_oversampling_pipeline`: repeat minority patches at random;
- :func:`make_class_weight_classifier`: keep every patch and weigh the loss by
  inverse class frequency (``IDCClassifier(class_weight='balanced')``).

The samplers are imbalanced-learn steps, so they run in ``fit`` only: cross-validation
and searches resample the training part of each fold and score on the untouched test
part. imbalanced-learn samplers accept only 2-D arrays, so the pipelines start with a
``flatten`` step that turns ``(n, 50, 50, 3)`` images into ``(n, 7500)`` rows (a view,
no copy, see :func:`flatten_patches`); ``IDCClassifier`` reshapes rows back to images.
Rows can also be passed directly.
"""

from __future__ import annotations

import numpy as np
from imblearn.over_sampling import RandomOverSampler
from imblearn.pipeline import Pipeline
from imblearn.under_sampling import RandomUnderSampler
from sklearn import config_context
from sklearn.base import clone
from sklearn.preprocessing import FunctionTransformer

from .estimator import IDCClassifier

__all__ = [
    "IMBALANCE_ROUTES",
    "UNDERSAMPLING_RECIPE",
    "flatten_patches",
    "make_class_weight_classifier",
    "make_imbalance_estimator",
    "make_oversampling_pipeline",
    "make_undersampling_pipeline",
]

#: Training settings of the undersampling reference recipe.
UNDERSAMPLING_RECIPE = {
    "optimizer": "adam",
    "learning_rate": 1e-4,
    "batch_size": 20,
    "epochs": 20,
    # The sampler balances the rows; the reference recipe weights nothing.
    "class_weight": None,
    # The classifier would hold out its validation part from the resampled rows, which
    # carry no patient ids: patients would leak into it. Validate by patient outside
    # instead (patient_cv).
    "validation_fraction": 0.0,
}

#: Names accepted by :func:`make_imbalance_estimator`.
IMBALANCE_ROUTES = ("none", "class_weight", "undersample", "oversample")


def flatten_patches(X):
    """Reshape patches to rows, ``X.reshape(len(X), -1)``.

    For a C-contiguous array (what :func:`idcclf.load_idc` returns, memory maps
    included) the result is a view: no pixel is copied.

    Parameters
    ----------
    X : array-like of shape (n_samples, H, W, C) or (n_samples, H*W*C)

    Returns
    -------
    ndarray of shape (n_samples, H*W*C)
    """
    X = np.asarray(X)
    return X.reshape(len(X), -1)


def _flatten_step() -> FunctionTransformer:
    # validate=False: the pixels pass through untouched (uint8 stays uint8).
    return FunctionTransformer(flatten_patches, validate=False)


def _without_groups(classifier):
    """Stop metadata routing from passing ``groups`` to a classifier behind a sampler.

    The sampler changes the rows, but routed metadata keeps the original length, so
    ``groups`` would no longer match ``X``. Without routing this changes nothing.
    """
    routing = getattr(classifier, "get_metadata_routing", None)
    if routing is not None and "groups" in routing().fit.requests:
        with config_context(enable_metadata_routing=True):
            classifier.set_fit_request(groups=False)
    return classifier


def _classifier(classifier, defaults: dict) -> IDCClassifier:
    if classifier is None:
        return IDCClassifier(**defaults)
    return clone(classifier)


def _resampling_pipeline(sampler, classifier) -> Pipeline:
    return Pipeline(
        [
            ("flatten", _flatten_step()),
            ("sampler", sampler),
            ("classifier", _without_groups(classifier)),
        ]
    )


def make_undersampling_pipeline(
    classifier=None,
    *,
    sampler=None,
    random_state: int | None = None,
) -> Pipeline:
    """Flatten, undersample the majority class at random, then train the classifier.

    Parameters
    ----------
    classifier : estimator or None, default=None
        Trained on the balanced rows (cloned). None: an ``IDCClassifier`` with the
        reference recipe :data:`UNDERSAMPLING_RECIPE` (Adam, learning rate 1e-4,
        batch 20, 20 epochs, no internal validation split) and ``random_state``.
    sampler : imbalanced-learn sampler or None, default=None
        None: ``RandomUnderSampler(random_state=random_state)``, which keeps every
        minority patch and as many majority patches, drawn at random.
    random_state : int or None, default=None
        Seed of the default sampler and default classifier.

    Returns
    -------
    imblearn.pipeline.Pipeline
        Steps ``flatten``, ``sampler``, ``classifier``; set the classifier's
        parameters as ``classifier__<name>``. It takes images or rows.

    Notes
    -----
    The sampler runs in ``fit`` only. ``predict``, ``predict_proba`` and every scorer
    see all the rows they are given, so validation and test parts stay as imbalanced
    as the patients are. When metadata routing is enabled, ``groups`` is not routed to
    the classifier (its rows no longer match); folds by patient still come from the
    splitter.

    Examples
    --------
    >>> from idcclf.pipelines import make_undersampling_pipeline
    >>> pipe = make_undersampling_pipeline(random_state=0)
    >>> [name for name, _ in pipe.steps]
    ['flatten', 'sampler', 'classifier']
    >>> pipe.get_params()["classifier__optimizer"]
    'adam'
    """
    sampler = RandomUnderSampler(random_state=random_state) if sampler is None else sampler
    defaults = {**UNDERSAMPLING_RECIPE, "random_state": random_state}
    return _resampling_pipeline(sampler, _classifier(classifier, defaults))


def make_oversampling_pipeline(
    classifier=None,
    *,
    sampler=None,
    random_state: int | None = None,
) -> Pipeline:
    """Flatten, repeat minority patches at random until balanced, then train.

    Parameters
    ----------
    classifier : estimator or None, default=None
        Trained on the balanced rows (cloned). None: an ``IDCClassifier`` with
        :data:`UNDERSAMPLING_RECIPE` and ``random_state``, so that the two routes
        differ only in the sampler.
    sampler : imbalanced-learn sampler or None, default=None
        None: ``RandomOverSampler(random_state=random_state)``.
    random_state : int or None, default=None
        Seed of the default sampler and default classifier.

    Returns
    -------
    imblearn.pipeline.Pipeline
        Steps ``flatten``, ``sampler``, ``classifier``.

    Notes
    -----
    Exact repeats of a patch are augmented differently in each epoch when the
    classifier augments (the default), which is what keeps them from being pure
    duplicates. The training set grows to twice the majority class, so epochs take
    longer than with undersampling.
    """
    sampler = RandomOverSampler(random_state=random_state) if sampler is None else sampler
    defaults = {**UNDERSAMPLING_RECIPE, "random_state": random_state}
    return _resampling_pipeline(sampler, _classifier(classifier, defaults))


def make_class_weight_classifier(classifier=None, **params) -> IDCClassifier:
    """The class-weight route: every patch kept, the loss weighted ``'balanced'``.

    Parameters
    ----------
    classifier : IDCClassifier or None, default=None
        Cloned with ``class_weight='balanced'``; None: a default ``IDCClassifier``.
    **params
        Further ``IDCClassifier`` parameters.

    Returns
    -------
    IDCClassifier
    """
    base = IDCClassifier() if classifier is None else clone(classifier)
    return base.set_params(**params, class_weight="balanced")


def make_imbalance_estimator(
    route: str,
    classifier=None,
    *,
    random_state: int | None = None,
):
    """One estimator per way of handling class imbalance, all on the same classifier.

    Parameters
    ----------
    route : {'none', 'class_weight', 'undersample', 'oversample'}
        ``'none'`` trains on the data as it is, unweighted (``class_weight=None``).
    classifier : IDCClassifier or None, default=None
        The classifier every route uses (cloned); None: ``IDCClassifier`` with the
        undersampling recipe, for all routes alike.
    random_state : int or None, default=None
        Seed of the samplers (and of the default classifier).

    Returns
    -------
    estimator
        An ``IDCClassifier`` for ``'none'`` and ``'class_weight'``, a pipeline for the
        resampling routes.
    """
    if route not in IMBALANCE_ROUTES:
        raise ValueError(f"route must be one of {list(IMBALANCE_ROUTES)}, got {route!r}")
    if classifier is None:
        classifier = IDCClassifier(**UNDERSAMPLING_RECIPE, random_state=random_state)
    if route == "none":
        return clone(classifier).set_params(class_weight=None)
    if route == "class_weight":
        return make_class_weight_classifier(classifier)
    make = make_undersampling_pipeline if route == "undersample" else make_oversampling_pipeline
    return make(classifier, random_state=random_state)
