"""IDCClassifier: CancerNet as a scikit-learn classifier.

This module holds the estimator and everything that depends on scikeras (0.13 is its
last release, so keeping it here keeps a move to another base cheap). The Keras
callbacks live in :mod:`idcclf.callbacks`, compiled inference and batch-norm
re-estimation in ``idcclf._ops``, input checks in ``idcclf._inputs``, the validation
split and weights in ``idcclf._training`` and seeding in ``idcclf._seeding``. Design
notes and measurements: ``docs/estimator.md``.
"""

from __future__ import annotations

import inspect
import math
import os
from collections.abc import Sequence

import keras
import numpy as np
import scikeras  # noqa: F401  (registers pickling support for Keras models)
from scikeras.wrappers import KerasClassifier
from sklearn.base import BaseEstimator
from sklearn.utils._tags import ClassifierTags
from sklearn.utils.validation import (
    _num_samples,
    check_consistent_length,
    check_is_fitted,
    column_or_1d,
)

from . import _inputs, _training
from ._ops import predict_in_batches
from ._seeding import seed_from, seeded
from .augment import build_augmentation
from .model import build_cancernet
from .stain import RandomStainJitter

OPTIMIZERS = {
    "adagrad": keras.optimizers.Adagrad,
    "adam": keras.optimizers.Adam,
    "sgd": keras.optimizers.SGD,
    "rmsprop": keras.optimizers.RMSprop,
}
# learning rate of each epoch (from 0), given the initial rate and the number of epochs
LR_SCHEDULES = {
    "constant": lambda rate, epoch, epochs: rate,
    "cosine": lambda rate, epoch, epochs: rate * (1 + math.cos(math.pi * epoch / epochs)) / 2,
}

#: Parameters passed on to build_cancernet.
ARCHITECTURE = (
    "filters convs_per_block block_dropout head_dropout dropout_placement batch_norm "
    "separable dense_units rescale"
).split()


class TrainingDivergedError(FloatingPointError):
    """Raised when the training loss becomes NaN or infinite."""


class IDCClassifier(KerasClassifier):
    """CancerNet invasive ductal carcinoma classifier with the scikit-learn API.

    A scikeras ``KerasClassifier`` that builds :func:`idcclf.build_cancernet`, trains
    it with optional augmentation, class weights, a stratified (and, given
    ``groups``, patient-grouped) validation split and early stopping. Design notes:
    ``docs/estimator.md``.

    Parameters
    ----------
    input_shape : tuple of 3 ints or None, default=(50, 50, 3)
        Shape of one patch. ``X`` may be images ``(n, *input_shape)`` or flattened
        rows ``(n, prod(input_shape))`` (the form imbalanced-learn samplers need).
        ``None`` takes the shape from ``X`` at fit: images keep theirs and rows of
        ``d`` values are treated as ``1 x d`` single-channel images.
    filters, convs_per_block, block_dropout, head_dropout, dropout_placement, \
batch_norm, separable, dense_units
        Architecture knobs, passed to :func:`idcclf.build_cancernet` (defaults are
        the tutorial's CancerNet).
    rescale : float or None, default=1/255
        Factor applied to ``X`` inside the network: the default maps 0-255 pixels to
        [0, 1], so uint8 patches are fed as they are, never copied to float. Use
        ``None`` for ``X`` that is already scaled (floats in [0, 1]).
    augment : bool, default=True
        Random flips, 90-degree rotations, small rotations, zooms and shifts, applied
        in training only (see :mod:`idcclf.augment`).
    stain_jitter : float, default=0.0
        Strength ``s`` of random H&E stain jitter in training (see
        :mod:`idcclf.stain`): each stain's concentration is scaled by a factor in
        ``[1 - s, 1 + s]`` and shifted by up to ``s``; 0 turns it off, 0.05 is the
        usual "light" setting.
    optimizer : {'adagrad', 'adam', 'sgd', 'rmsprop'}, default='adagrad'
        Optimizer; the tutorial uses Adagrad.
    learning_rate : float, default=1e-2
        Learning rate of the optimizer.
    lr_schedule : {'constant', 'cosine'}, default='constant'
        ``'cosine'`` decays the rate every epoch along a half cosine,
        ``learning_rate * (1 + cos(pi * epoch / epochs)) / 2``; ``history_`` then
        also records ``learning_rate``.
    batch_size : int, default=32
        Mini-batch size for training.
    epochs : int, default=40
        Maximum number of passes over the training data.
    class_weight : None, 'balanced' or dict, default=None
        Class weights, computed on the training part (after the validation split).
    test_time_augmentation : bool, default=False
        Average the predicted probabilities over the flips and quarter turns of each
        patch (8 views of a square patch, 4 flips otherwise), at 8 (or 4) times the
        cost. Prediction only: it can be switched on a fitted model.
    validation_fraction : float, default=0.1
        Share of the training data held out to report ``val_loss`` and
        ``val_accuracy`` per epoch and for early stopping; stratified by class and,
        when ``groups`` is passed to :meth:`fit`, grouped by patient. 0 disables it.
    early_stopping : bool, default=False
        Stop when the validation loss has not improved for ``n_iter_no_change`` epochs
        and restore the weights of the best epoch.
    n_iter_no_change : int, default=5
        Patience of early stopping, in epochs.
    recalibrate_batch_norm : bool, default=True
        After training (and before each epoch's validation), re-estimate every
        batch-normalization layer's mean and variance exactly, in inference mode, on
        up to 4,096 (1,024) training patches; Keras' running values lag behind the
        weights on small data (``docs/estimator.md``).
    random_state : int, RandomState or None, default=None
        Seed for weights, augmentation, dropout, shuffling and the validation split.
        The same integer gives the same predictions.
    checkpoint_dir : str, path or None, default=None
        Folder where the model, optimizer state and history are saved (atomically)
        after every epoch. A later ``fit`` with the same settings and labels resumes
        from the last saved epoch (``epochs`` may grow, except with a learning-rate
        schedule); a checkpoint of other settings is refused, never overwritten.
    verbose : int, default=0
        0 is silent, 1 shows the Keras progress bar, 2 one line per epoch.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        Class labels seen at fit.
    model_ : keras.Model
        The fitted network (augmentation included; it is inactive at inference).
    history_ : dict of str to list of float
        Per-epoch ``loss``, ``accuracy`` and, with a validation split, ``val_loss``
        and ``val_accuracy``.
    image_shape_ : tuple of int
        Shape of one patch as the network sees it.
    n_features_in_ : int
        Values per sample, ``prod(image_shape_)``.
    validation_groups_ : ndarray or None
        Patients held out for validation when ``groups`` was passed to :meth:`fit`.
    best_epoch_ : int or None
        1-based epoch whose weights were kept by early stopping (or after an
        interruption), else None.

    Notes
    -----
    Interrupting ``fit`` with Ctrl-C keeps the best weights so far (by validation
    loss, or training loss without a validation split), warns which epoch they come
    from, and leaves a usable fitted model.

    Examples
    --------
    >>> from idcclf import IDCClassifier, load_sample
    >>> X, y = load_sample(return_X_y=True)
    >>> clf = IDCClassifier(epochs=2).fit(X, y)  # doctest: +SKIP
    >>> clf.predict_proba(X[:3]).shape  # doctest: +SKIP
    (3, 2)
    """

    # scikeras reads these attributes; they are fixed here rather than parameters so that
    # get_params lists only what this estimator really lets you change.
    model = None
    build_fn = None
    warm_start = False
    loss = "sparse_categorical_crossentropy"
    metrics = None
    callbacks = None
    validation_split = 0.0
    validation_batch_size = None
    shuffle = True
    run_eagerly = False

    __metadata_request__fit = {"groups": True}

    def __init__(
        self,
        *,
        input_shape: Sequence[int] | None = (50, 50, 3),
        filters: Sequence[int] = (32, 64, 128),
        convs_per_block: Sequence[int] = (1, 2, 3),
        block_dropout: float = 0.25,
        head_dropout: float = 0.5,
        dropout_placement: str = "after_pool",
        batch_norm: bool = True,
        separable: bool = True,
        dense_units: int = 256,
        rescale: float | None = 1.0 / 255.0,
        augment: bool = True,
        stain_jitter: float = 0.0,
        optimizer: str = "adagrad",
        learning_rate: float = 1e-2,
        lr_schedule: str = "constant",
        batch_size: int = 32,
        epochs: int = 40,
        class_weight: str | dict | None = None,
        test_time_augmentation: bool = False,
        validation_fraction: float = 0.1,
        early_stopping: bool = False,
        n_iter_no_change: int = 5,
        recalibrate_batch_norm: bool = True,
        random_state: int | np.random.RandomState | None = None,
        checkpoint_dir: str | os.PathLike | None = None,
        verbose: int = 0,
    ):
        """Store the parameters unchanged, as scikit-learn expects; see the class docstring."""
        self.input_shape = input_shape
        self.filters = filters
        self.convs_per_block = convs_per_block
        self.block_dropout = block_dropout
        self.head_dropout = head_dropout
        self.dropout_placement = dropout_placement
        self.batch_norm = batch_norm
        self.separable = separable
        self.dense_units = dense_units
        self.rescale = rescale
        self.augment = augment
        self.stain_jitter = stain_jitter
        self.optimizer = optimizer
        self.learning_rate = learning_rate
        self.lr_schedule = lr_schedule
        self.batch_size = batch_size
        self.epochs = epochs
        self.class_weight = class_weight
        self.test_time_augmentation = test_time_augmentation
        self.validation_fraction = validation_fraction
        self.early_stopping = early_stopping
        self.n_iter_no_change = n_iter_no_change
        self.recalibrate_batch_norm = recalibrate_batch_norm
        self.random_state = random_state
        self.checkpoint_dir = checkpoint_dir
        self.verbose = verbose

    # -- scikit-learn plumbing ------------------------------------------------------

    # scikeras lists every public instance attribute as a parameter; the signature is
    # the contract scikit-learn expects.
    _get_param_names = classmethod(BaseEstimator._get_param_names.__func__)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.estimator_type = "classifier"
        tags.classifier_tags = ClassifierTags()
        tags.target_tags.required = True
        tags.input_tags.allow_nan = False
        tags.non_deterministic = self.random_state is None
        return tags

    def __setstate__(self, state: dict) -> None:
        # A model saved before a parameter existed loads with that parameter's default.
        for name, parameter in inspect.signature(type(self).__init__).parameters.items():
            if parameter.default is not inspect.Parameter.empty:
                state.setdefault(name, parameter.default)
        super().__setstate__(state)

    def __sklearn_is_fitted__(self) -> bool:
        return hasattr(self, "model_")

    def __repr__(self) -> str:
        return BaseEstimator.__repr__(self)

    # -- fitting --------------------------------------------------------------------

    def fit(self, X, y, sample_weight=None, groups=None) -> IDCClassifier:
        """Build a new CancerNet and train it on ``(X, y)``.

        Parameters
        ----------
        X : array-like of shape (n_samples, H, W, C) or (n_samples, H*W*C)
            Patches, uint8 pixels (0-255) or floats on the same scale.
        y : array-like of shape (n_samples,)
            Labels; any two (or more) distinct values.
        sample_weight : array-like of shape (n_samples,), default=None
            Per-sample weights, multiplied with ``class_weight``.
        groups : array-like of shape (n_samples,), default=None
            Patient of each sample. When given, the internal validation split keeps
            each patient on one side. Routed by scikit-learn metadata routing.

        Returns
        -------
        self : IDCClassifier
        """
        self._check_params()
        groups = _inputs.check_groups(groups, _num_samples(X))
        self.classes_ = None  # scikeras infers the classes again at every fit
        super(KerasClassifier, self).fit(X, y, sample_weight=sample_weight, groups=groups)
        return self

    @property
    def partial_fit(self):
        """Not available: a CancerNet is always trained from scratch by :meth:`fit`."""
        # A property that raises AttributeError hides scikeras' partial_fit from
        # hasattr(), which is how scikit-learn decides whether to call it.
        raise AttributeError("IDCClassifier has no partial_fit; train with fit")

    def _check_params(self) -> None:
        _inputs.check_params(self.get_params(), OPTIMIZERS, LR_SCHEDULES)

    def _validate_data(self, X=None, y=None, reset: bool = False, y_numeric: bool = False):
        """Check ``X`` and ``y``; at fit (``reset``) also learn the patch shape."""
        if y is not None:
            y = np.asarray(y)
            if reset and y.ndim == 2 and y.shape[1] == 1:
                y = column_or_1d(y, warn=True)
            # scikeras validates y and records its type; X is checked here instead so
            # that images and rows, uint8 and floats, are all accepted after any fit.
            _, y = super()._validate_data(X=None, y=y, reset=reset, y_numeric=y_numeric)
        if X is None:
            return X, y
        X = _inputs.check_pixels(X)
        if y is not None:
            check_consistent_length(X, y)
        if reset:
            self.image_shape_ = _inputs.check_training_input(X, y, self.input_shape, self.rescale)
            self.n_features_in_ = X.shape[1] if X.ndim == 2 else math.prod(self.image_shape_)
        return _inputs.as_images(X, self.image_shape_), y

    def _build_keras_model(self) -> keras.Model:
        """The compiled network: stain jitter and augmentation, then CancerNet."""
        shape = self.image_shape_
        architecture = {name: getattr(self, name) for name in ARCHITECTURE}
        network = build_cancernet(shape, n_classes=len(self.classes_), **architecture)
        inputs = keras.Input(shape=shape, name="patch")
        x = inputs
        if self.stain_jitter:
            # Pixels reach the network as 0..1/rescale (0-255 for the default).
            top = 1.0 / self.rescale if self.rescale else 1.0
            seed = None if self._random_state is None else self._random_state + 7
            x = RandomStainJitter(
                self.stain_jitter, self.stain_jitter, value_range=(0.0, top), seed=seed
            )(x)
        if self.augment:
            x = build_augmentation(shape, seed=self._random_state)(x)
        model = keras.Model(inputs, network(x), name="idc_classifier")
        model.compile(
            optimizer=OPTIMIZERS[self.optimizer](learning_rate=self.learning_rate),
            loss=self.loss,
            metrics=["accuracy"],
        )
        return model

    def _initialize(self, X, y=None):
        self._random_state = seed_from(self.random_state)
        self._user_params = set()
        X, y = self._validate_data(X, y, reset=True)
        self.target_encoder_ = self.target_encoder.fit(y)
        vars(self).update(**self.target_encoder_.get_metadata())
        self.feature_encoder_ = self.feature_encoder.fit(X)
        with seeded(self._random_state):
            self.model_ = self._build_keras_model()
        self._fit_callbacks, self._predict_callbacks = [], []
        return X, y

    def _fit_keras_model(
        self, X, y, sample_weight, warm_start, epochs, initial_epoch, groups=None, **kwargs
    ) -> None:
        """scikeras' training step: hold out the validation part, train, finish the model."""
        data = _training.split(self, X, y, sample_weight, groups)
        self.validation_groups_ = data.validation_groups
        tracker, callbacks, initial_epoch = _training.build_callbacks(
            self, data, y, groups, initial_epoch
        )
        interrupted = _training.run(self, data, callbacks, epochs, initial_epoch)
        self.history_ = tracker.history
        self._check_converged()
        self.best_epoch_ = _training.finish(self, tracker, data.X, interrupted)

    def _scheduled_rate(self, epoch: int, current_rate: float) -> float:
        return LR_SCHEDULES[self.lr_schedule](self.learning_rate, epoch, self.epochs)

    def _check_converged(self) -> None:
        losses = self.history_.get("loss", [])
        bad = [i for i, loss in enumerate(losses, start=1) if not math.isfinite(loss)]
        if bad:
            raise TrainingDivergedError(
                f"training diverged: the loss became {losses[bad[0] - 1]} at epoch {bad[0]}; "
                f"lower learning_rate (now {self.learning_rate}) or check X for extreme values"
            )

    # -- prediction -----------------------------------------------------------------

    def _predict_raw(self, X, **kwargs):
        check_is_fitted(self)
        X, _ = self._validate_data(X=X, y=None)
        return predict_in_batches(self.model_, X, symmetric=bool(self.test_time_augmentation))

    def predict_proba(self, X) -> np.ndarray:
        """Class probabilities of each patch, columns in the order of ``classes_``.

        Parameters
        ----------
        X : array-like of shape (n_samples, H, W, C) or (n_samples, H*W*C)
            Patches in the form used at fit (images or rows).

        Returns
        -------
        ndarray of shape (n_samples, n_classes)
        """
        # scikeras squeezes its output, which turns one patch's (1, 2) into (2,).
        return np.asarray(super().predict_proba(X)).reshape(-1, len(self.classes_))

    def predict(self, X) -> np.ndarray:
        """Most probable class of each patch.

        Parameters
        ----------
        X : array-like of shape (n_samples, H, W, C) or (n_samples, H*W*C)

        Returns
        -------
        ndarray of shape (n_samples,)
            Labels from ``classes_``.
        """
        return np.asarray(super().predict(X)).reshape(-1)

    def score(self, X, y, sample_weight=None) -> float:
        """Accuracy of ``predict(X)`` against ``y``.

        Parameters
        ----------
        X : array-like of shape (n_samples, H, W, C) or (n_samples, H*W*C)
        y : array-like of shape (n_samples,)
            True labels, all among ``classes_``.
        sample_weight : array-like of shape (n_samples,), default=None

        Returns
        -------
        float

        Raises
        ------
        ValueError
            If ``y`` holds labels the model was not fitted on (they could never be
            predicted, so the score would silently count them as errors).
        """
        check_is_fitted(self)
        known = set(self.classes_.tolist())
        unseen = sorted({v for v in np.unique(np.asarray(y)).tolist()} - known, key=str)
        if unseen:
            raise ValueError(
                f"y has labels never seen at fit: {unseen}; this IDCClassifier was fitted "
                f"on classes {self.classes_.tolist()}"
            )
        return super().score(X, y, sample_weight=sample_weight)
