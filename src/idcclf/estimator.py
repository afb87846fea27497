"""IDCClassifier: CancerNet as a scikit-learn classifier.

All code that depends on scikeras lives in this module: scikeras 0.13 is its last
release, so keeping it in one place keeps a move to another base cheap.
"""

from __future__ import annotations

import contextlib
import hashlib
import inspect
import json
import math
import numbers
import os
import random
import warnings
import weakref
from collections.abc import Sequence

import keras
import numpy as np
import scikeras  # noqa: F401  (registers pickling support for Keras models)
from scikeras.wrappers import KerasClassifier
from sklearn.base import BaseEstimator
from sklearn.model_selection import StratifiedGroupKFold, StratifiedShuffleSplit
from sklearn.utils import compute_sample_weight
from sklearn.utils._tags import ClassifierTags
from sklearn.utils.validation import (
    _num_samples,
    check_array,
    check_consistent_length,
    check_is_fitted,
    column_or_1d,
)

from ._io import atomic_path, atomic_write_text
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

#: Training patches used to re-estimate batch-normalization statistics after fit.
RECALIBRATION_SAMPLES = 4096
#: The same, before each epoch's validation: enough for stable statistics, cheap per epoch.
EPOCH_RECALIBRATION_SAMPLES = 1024

#: Batch size for inference and batch-norm re-estimation. On CPU, batches of 64 keep
#: the first block's activations (64 x 50 x 50 x 32 floats) in cache and were faster
#: than 32, 128 or 256 (docs/benchmarks_training.md).
PREDICT_BATCH_SIZE = 64


class TrainingDivergedError(FloatingPointError):
    """Raised when the training loss becomes NaN or infinite."""


class IDCClassifier(KerasClassifier):
    """CancerNet invasive ductal carcinoma classifier with the scikit-learn API.

    A scikeras ``KerasClassifier`` that builds :func:`idcclf.build_cancernet`, trains
    it with optional augmentation, class weights, a stratified (and, given
    ``groups``, patient-grouped) validation split and early stopping.

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
        Strength of random H&E stain jitter in training (see :mod:`idcclf.stain`):
        each patch's haematoxylin, eosin and DAB concentrations are scaled by a
        factor in ``[1 - s, 1 + s]`` and shifted by up to ``s``; 0 turns it off, 0.05
        is the usual "light" setting. Meant for data from several labs or scanners;
        on the 22 patients of one lab it did not help (``docs/evaluation.md``).
    optimizer : {'adagrad', 'adam', 'sgd', 'rmsprop'}, default='adagrad'
        Optimizer; the tutorial uses Adagrad.
    learning_rate : float, default=1e-2
        Learning rate of the optimizer.
    lr_schedule : {'constant', 'cosine'}, default='constant'
        Learning rate over the epochs: ``'constant'`` keeps ``learning_rate``;
        ``'cosine'`` starts at ``learning_rate`` and decays it every epoch along a
        half cosine, ``learning_rate * (1 + cos(pi * epoch / epochs)) / 2``, towards 0
        at ``epochs``. With a schedule, ``history_`` also records ``learning_rate``.
    batch_size : int, default=32
        Mini-batch size for training.
    epochs : int, default=40
        Maximum number of passes over the training data.
    class_weight : None, 'balanced' or dict, default=None
        Class weights, computed on the training part (after the validation split).
    test_time_augmentation : bool, default=False
        Average the predicted probabilities over the flips and quarter turns of each
        patch (8 views of a square patch, 4 flips otherwise), the same symmetries as
        the training augmentation. Prediction costs 8 (or 4) times as much. Only
        prediction changes, so it can be switched on a fitted model with
        ``set_params``.
    validation_fraction : float, default=0.1
        Share of the training data held out to report validation loss and accuracy
        per epoch (in ``history_``) and for early stopping. The split is stratified by
        class and, when ``groups`` is passed to :meth:`fit`, grouped by patient. 0
        disables it.
    early_stopping : bool, default=False
        Stop when the validation loss has not improved for ``n_iter_no_change`` epochs
        and restore the weights of the best epoch.
    n_iter_no_change : int, default=5
        Patience of early stopping, in epochs.
    recalibrate_batch_norm : bool, default=True
        After training, re-estimate every batch-normalization layer's mean and
        variance exactly, in inference mode, on up to 4,096 training patches. Keras
        tracks them during training with momentum 0.99, so they lag behind the weights
        when there are few steps, and they see the preceding block's dropout; on a few
        thousand patches that shift alone can make the network call every patch IDC
        while its ranking (ROC AUC) is fine. Re-estimation removes the shift.
    random_state : int, RandomState or None, default=None
        Seed for weights, augmentation, dropout, shuffling and the validation split.
        The same integer gives the same predictions.
    checkpoint_dir : str, path or None, default=None
        Folder where the model, optimizer state and history are saved (atomically)
        after every epoch. A later ``fit`` with the same settings and labels resumes
        from the last saved epoch (``epochs`` may grow, except with a learning-rate
        schedule, which depends on it); a checkpoint of other settings is refused,
        never overwritten.
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
    n_features_in_ : int
        Values per sample, ``prod(image_shape_)``.

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
        n_samples = _num_samples(X)
        if groups is not None:
            groups = np.asarray(groups)
            if groups.ndim != 1 or len(groups) != n_samples:
                raise ValueError(
                    f"groups has shape {groups.shape}, but X has {n_samples} samples; "
                    "pass one patient id per sample"
                )
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
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(
                f"optimizer must be one of {sorted(OPTIMIZERS)}, got {self.optimizer!r}"
            )
        if self.lr_schedule not in LR_SCHEDULES:
            raise ValueError(
                f"lr_schedule must be one of {list(LR_SCHEDULES)}, got {self.lr_schedule!r}"
            )
        checks = {
            "learning_rate": self.learning_rate > 0,
            "batch_size": isinstance(self.batch_size, numbers.Integral) and self.batch_size > 0,
            "epochs": isinstance(self.epochs, numbers.Integral) and self.epochs > 0,
            "validation_fraction": 0.0 <= self.validation_fraction < 1.0,
            "n_iter_no_change": self.n_iter_no_change >= 1,
            "stain_jitter": 0.0 <= self.stain_jitter < 1.0,
        }
        for param, ok in checks.items():
            if not ok:
                raise ValueError(f"{param}={getattr(self, param)!r} is out of range")
        if self.early_stopping and self.validation_fraction == 0:
            raise ValueError(
                "early_stopping=True needs a validation split: set validation_fraction > 0"
            )
        if not (
            self.class_weight is None
            or self.class_weight == "balanced"
            or isinstance(self.class_weight, dict)
        ):
            raise ValueError(
                f"class_weight must be None, 'balanced' or a dict, got {self.class_weight!r}"
            )

    def _validate_data(self, X=None, y=None, reset: bool = False, y_numeric: bool = False):
        if y is not None:
            y = np.asarray(y)
            if reset and y.ndim == 2 and y.shape[1] == 1:
                y = column_or_1d(y, warn=True)
            # scikeras validates y and records its type; X is checked here instead so
            # that images and rows, uint8 and floats, are all accepted after any fit.
            _, y = super()._validate_data(X=None, y=y, reset=reset, y_numeric=y_numeric)
        if X is None:
            return X, y
        X = check_array(_check_pixel_dtype(X), allow_nd=True, dtype="numeric")
        if X.dtype.kind == "f" and X.dtype != np.float32:
            if X.dtype.itemsize > 4 and X.size:
                largest = max(float(X.max()), -float(X.min()))
                if largest > float(np.finfo(np.float32).max):
                    raise ValueError(
                        f"X has values up to {largest:.3g} in magnitude, beyond float32 "
                        "(the network's precision); pass pixel values"
                    )
            X = X.astype(np.float32)  # Keras computes in float32; float64 would be cast anyway
        if y is not None:
            check_consistent_length(X, y)
        if reset:
            if y is not None and np.unique(y).size < 2:
                raise ValueError(
                    f"y has a single class {np.unique(y)!r}; IDCClassifier needs at least "
                    "2 classes (got 1 class)"
                )
            if X.shape[0] < 2:
                raise ValueError(
                    f"IDCClassifier needs at least 2 samples, got n_samples = {X.shape[0]}"
                )
            self.image_shape_ = self._infer_image_shape(X)
            self._warn_if_prescaled(X)
            self.n_features_in_ = X.shape[1] if X.ndim == 2 else math.prod(self.image_shape_)
        return self._as_images(X), y

    def _warn_if_prescaled(self, X: np.ndarray) -> None:
        if self.rescale is not None and X.dtype.kind == "f" and X.size and X.max() <= 1.0:
            warnings.warn(
                f"X holds floats in [0, 1] but rescale={self.rescale!r} divides them "
                "again; pass 0-255 pixels (uint8) or set rescale=None",
                UserWarning,
                stacklevel=4,
            )

    def _infer_image_shape(self, X: np.ndarray) -> tuple[int, ...]:
        if self.input_shape is None:
            if X.ndim == 4:
                return tuple(X.shape[1:])
            if X.ndim == 2:
                return (1, X.shape[1], 1)
            raise ValueError(
                f"X must be images (n, height, width, channels) or rows (n, values), "
                f"got shape {X.shape}"
            )
        shape = tuple(int(d) for d in self.input_shape)
        if len(shape) != 3:
            raise ValueError(f"input_shape must be (height, width, channels), got {shape}")
        return shape

    def _as_images(self, X: np.ndarray) -> np.ndarray:
        """Reshape rows to images and check the shape against ``image_shape_``."""
        shape = self.image_shape_
        n_values = math.prod(shape)
        if X.ndim == 2:
            if X.shape[1] != n_values:
                raise ValueError(
                    f"X has {X.shape[1]} features, but IDCClassifier is expecting "
                    f"{n_values} features as input (rows of a {shape} patch flattened)"
                )
            return X.reshape((X.shape[0], *shape))
        if X.ndim == 4:
            if tuple(X.shape[1:]) != shape:
                raise ValueError(
                    f"X has images of shape {tuple(X.shape[1:])}, but IDCClassifier is "
                    f"expecting images of shape {shape}"
                )
            return X
        raise ValueError(
            f"X must be images (n, height, width, channels) or rows (n, values), "
            f"got an array of shape {X.shape}"
        )

    def _build_keras_model(self) -> keras.Model:
        shape = self.image_shape_
        network = build_cancernet(
            shape,
            n_classes=len(self.classes_),
            filters=self.filters,
            convs_per_block=self.convs_per_block,
            block_dropout=self.block_dropout,
            head_dropout=self.head_dropout,
            dropout_placement=self.dropout_placement,
            batch_norm=self.batch_norm,
            separable=self.separable,
            dense_units=self.dense_units,
            rescale=self.rescale,
        )
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
            seed = self._random_state
            x = build_augmentation(shape, seed=seed)(x)
        model = keras.Model(inputs, network(x), name="idc_classifier")
        model.compile(
            optimizer=OPTIMIZERS[self.optimizer](learning_rate=self.learning_rate),
            loss=self.loss,
            metrics=["accuracy"],
        )
        return model

    def _initialize(self, X, y=None):
        self._random_state = _seed_from(self.random_state)
        self._user_params = set()
        X, y = self._validate_data(X, y, reset=True)
        self.target_encoder_ = self.target_encoder.fit(y)
        vars(self).update(**self.target_encoder_.get_metadata())
        self.feature_encoder_ = self.feature_encoder.fit(X)
        with _seeded(self._random_state):
            self.model_ = self._build_keras_model()
        self._fit_callbacks, self._predict_callbacks = [], []
        return X, y

    def _fit_keras_model(
        self, X, y, sample_weight, warm_start, epochs, initial_epoch, groups=None, **kwargs
    ) -> None:
        train, val = self._validation_split(y, groups)
        self.validation_groups_ = (
            None if groups is None or val is None else np.unique(np.asarray(groups)[val])
        )
        train_weights = None if sample_weight is None else sample_weight[train]
        weights = self._training_weights(y[train], train_weights)
        X_train, y_train = (X, y) if val is None else (X[train], y[train])
        recalibrate = self.recalibrate_batch_norm and self.batch_norm
        tracker = _BestEpochTracker(
            monitor="loss" if val is None else "val_loss",
            patience=self.n_iter_no_change if self.early_stopping else None,
            validation=None if val is None else (X[val], y[val]),
            recalibration_X=(
                self._recalibration_subset(X_train, EPOCH_RECALIBRATION_SAMPLES)
                if recalibrate and val is not None
                else None
            ),
        )
        callbacks = [keras.callbacks.TerminateOnNaN()]
        if self.lr_schedule != "constant":
            # Before the tracker, so that the epoch's learning rate reaches history_.
            callbacks.append(keras.callbacks.LearningRateScheduler(self._scheduled_rate))
        callbacks.append(tracker)
        checkpoint = None
        if self.checkpoint_dir is not None:
            checkpoint = _Checkpoint(self.checkpoint_dir, self._checkpoint_fingerprint(y, groups))
            initial_epoch = checkpoint.restore(self.model_, tracker)
            callbacks.append(checkpoint)
        fit_args = dict(
            batch_size=self.batch_size,
            epochs=epochs,
            initial_epoch=initial_epoch,
            verbose=self.verbose,
            callbacks=callbacks,
            shuffle=True,
        )
        interrupted = False
        try:
            if initial_epoch < epochs:
                with _seeded(self._random_state):
                    self.model_.fit(X_train, y_train, sample_weight=weights, **fit_args)
        except KeyboardInterrupt:
            interrupted = True
        self.history_ = tracker.history
        self._check_converged()
        self.best_epoch_ = tracker.best_epoch if (self.early_stopping or interrupted) else None
        if (self.early_stopping or interrupted) and tracker.best_weights is not None:
            self.model_.set_weights(tracker.best_weights)
        if recalibrate:
            subset = self._recalibration_subset(X_train, RECALIBRATION_SAMPLES)
            _recalibrate_batch_norm(self.model_, subset)

        if interrupted:
            if not self.history_:
                raise KeyboardInterrupt("training interrupted before the first epoch ended")
            warnings.warn(
                f"training interrupted after {len(self.history_['loss'])} epoch(s); keeping "
                f"the weights of epoch {tracker.best_epoch}, the best by {tracker.monitor}",
                UserWarning,
                stacklevel=4,
            )

    def _scheduled_rate(self, epoch: int, current_rate: float) -> float:
        return LR_SCHEDULES[self.lr_schedule](self.learning_rate, epoch, self.epochs)

    def _recalibration_subset(self, X_train: np.ndarray, n: int) -> np.ndarray:
        rng = np.random.default_rng(self._random_state)
        n = min(len(X_train), n)
        return X_train[np.sort(rng.choice(len(X_train), size=n, replace=False))]

    def _checkpoint_fingerprint(self, y, groups) -> dict:
        """What must match for a checkpoint to be resumed: settings and training labels."""
        # Prediction-only settings may change, and the number of epochs may grow
        # between resumes unless a schedule depends on it.
        ignored = {"verbose", "checkpoint_dir", "test_time_augmentation"}
        if self.lr_schedule == "constant":
            ignored.add("epochs")
        params = {
            key: repr(value) for key, value in self.get_params().items() if key not in ignored
        }
        labels = hashlib.sha256(np.ascontiguousarray(y).tobytes())
        if groups is not None:
            labels.update(np.asarray(groups).astype(str).tobytes())
        return {"params": params, "n_samples": int(len(y)), "labels": labels.hexdigest()}

    def _check_converged(self) -> None:
        losses = self.history_.get("loss", [])
        bad = [i for i, loss in enumerate(losses, start=1) if not math.isfinite(loss)]
        if bad:
            raise TrainingDivergedError(
                f"training diverged: the loss became {losses[bad[0] - 1]} at epoch {bad[0]}; "
                f"lower learning_rate (now {self.learning_rate}) or check X for extreme values"
            )

    def _validation_split(self, y: np.ndarray, groups) -> tuple[np.ndarray, np.ndarray | None]:
        everything = np.arange(len(y))
        if self.validation_fraction == 0:
            return everything, None
        labels = np.asarray(y).astype(int)
        if groups is None:
            splitter = StratifiedShuffleSplit(
                n_splits=1, test_size=self.validation_fraction, random_state=self._random_state
            )
            try:
                return next(splitter.split(everything, labels))
            except ValueError as exc:
                raise ValueError(
                    f"cannot hold out validation_fraction={self.validation_fraction} of "
                    f"{len(y)} samples with every class on both sides ({exc}); use more "
                    "data or validation_fraction=0"
                ) from None
        n_groups = np.unique(groups).size
        if n_groups < 2:
            raise ValueError(
                "a validation split by patient needs at least 2 distinct groups, got "
                f"{n_groups}; pass more patients or set validation_fraction=0"
            )
        n_splits = min(n_groups, max(2, round(1 / self.validation_fraction)))
        splitter = StratifiedGroupKFold(
            n_splits=n_splits, shuffle=True, random_state=self._random_state
        )
        return next(splitter.split(everything, labels, groups))

    def _training_weights(self, y_encoded: np.ndarray, sample_weight) -> np.ndarray | None:
        weights = None if sample_weight is None else np.asarray(sample_weight, dtype=np.float32)
        if self.class_weight is not None:
            labels = self.classes_[np.asarray(y_encoded).astype(int)]
            class_weights = compute_sample_weight(self.class_weight, labels).astype(np.float32)
            weights = class_weights if weights is None else weights * class_weights
        return weights

    # -- prediction -----------------------------------------------------------------

    def _predict_raw(self, X, **kwargs):
        check_is_fitted(self)
        X, _ = self._validate_data(X=X, y=None)
        # One compiled inference call per batch: the same computation as
        # model_.predict (inference mode), without its per-call data-pipeline and
        # callback machinery, which cost about as much as the network on CPU.
        return _predict_in_batches(self.model_, X, symmetric=bool(self.test_time_augmentation))

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


def _check_pixel_dtype(X):
    """Reject dtypes that cannot be pixel values instead of silently casting them."""
    dtype = getattr(X, "dtype", None)
    if dtype is not None and np.dtype(dtype).kind in "bmMV":
        raise ValueError(f"X has dtype {np.dtype(dtype)}; pass pixels as uint8 (0-255) or floats")
    return X


def _recalibrate_batch_norm(model: keras.Model, X: np.ndarray) -> None:
    """Set each BatchNormalization layer's moving statistics to their exact values on X.

    Layers are visited in order, each measured with the ones before it already fixed,
    and everything in inference mode (no augmentation, no dropout), which is how the
    network will be used.
    """
    import tensorflow as tf

    networks = [layer for layer in model.layers if isinstance(layer, keras.Model)] or [model]
    for network in networks:
        for layer in network.layers:
            if not isinstance(layer, keras.layers.BatchNormalization):
                continue
            probe = keras.Model(network.input, layer.input)
            moments = _moments_function(probe, tf.TensorSpec((None, *X.shape[1:]), X.dtype))
            # Streaming: memory stays at one batch of activations. Each batch's mean and
            # centred sum of squares are pooled exactly, in float64 (Chan et al.).
            per_sample = math.prod(probe.output.shape[1:-1])
            count, mean, sum_sq = 0, 0.0, 0.0
            for start in range(0, len(X), PREDICT_BATCH_SIZE):
                batch = X[start : start + PREDICT_BATCH_SIZE]
                batch_mean, batch_var = (np.float64(m) for m in moments(batch))
                n_batch = len(batch) * per_sample
                delta = batch_mean - mean
                total = count + n_batch
                mean = mean + delta * (n_batch / total)
                sum_sq = sum_sq + batch_var * n_batch + delta**2 * (count * n_batch / total)
                count = total
            variance = np.maximum(sum_sq / count, 0.0)
            layer.moving_mean.assign(mean.astype(np.float32))
            layer.moving_variance.assign(variance.astype(np.float32))


def _moments_function(probe: keras.Model, signature):
    """Compiled per-channel mean and variance of ``probe``'s output on one batch.

    One graph per layer, traced once (the batch dimension is free). The moments are
    taken inside TensorFlow, centred (no cancellation), rather than as float64 NumPy
    copies of every activation, which cost more than the network itself.
    """
    import tensorflow as tf

    @tf.function(input_signature=[signature])
    def moments(batch):
        acts = probe(batch, training=False)
        acts = tf.reshape(acts, (-1, acts.shape[-1]))
        return tf.nn.moments(acts, axes=[0])

    return moments


#: Compiled inference function of each model, made on first use. Weak keys: the cache
#: never keeps a model alive, and nothing is added to the model (which is pickled).
_INFERENCE_FUNCTIONS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _predict_in_batches(model: keras.Model, X: np.ndarray, symmetric: bool = False) -> np.ndarray:
    """``model.predict(X)`` as compiled calls on batches of ``PREDICT_BATCH_SIZE``.

    With ``symmetric``, each batch's output is the mean over its symmetric views
    (:func:`_symmetric_views`).
    """
    import tensorflow as tf

    key = (X.dtype.str, tuple(X.shape[1:]), symmetric)
    functions = _INFERENCE_FUNCTIONS.setdefault(model, {})
    function = functions.get(key)
    if function is None:
        # The traced graph holds the model's variables, not the model: a weak reference
        # here keeps the cache from keeping its own key alive.
        model_ref = weakref.ref(model)

        def infer(batch):
            if not symmetric:
                return model_ref()(batch, training=False)
            views = _symmetric_views(batch)
            return tf.add_n([model_ref()(view, training=False) for view in views]) / len(views)

        signature = tf.TensorSpec((None, *X.shape[1:]), X.dtype)
        function = functions[key] = tf.function(infer, input_signature=[signature])
    outputs = [
        function(X[start : start + PREDICT_BATCH_SIZE]).numpy()
        for start in range(0, len(X), PREDICT_BATCH_SIZE)
    ]
    return np.concatenate(outputs) if len(outputs) > 1 else outputs[0]


def _symmetric_views(batch) -> list:
    """The flips and quarter turns of a batch of images: 8 views if square, else 4."""
    import tensorflow as tf

    height, width = batch.shape[1], batch.shape[2]
    turns = range(4) if height == width else (0, 2)
    views = []
    for turn in turns:
        turned = tf.image.rot90(batch, turn)
        views += [turned, tf.reverse(turned, axis=[2])]
    return views


@contextlib.contextmanager
def _seeded(seed: int | None):
    """Seed Python, NumPy, TensorFlow and Keras, with deterministic ops, then restore.

    Does nothing when ``seed`` is None. The previous global seeds and the op
    determinism switch are put back afterwards, so user code that runs after a fit
    is not left with seeded generators or with determinism enabled (under which
    unseeded random ops raise).
    """
    if seed is None:
        yield
        return
    import tensorflow as tf
    from tensorflow.python.eager import context
    from tensorflow.python.framework import config

    # The legacy global NumPy state is what keras.utils.set_random_seed reseeds.
    python_state, numpy_state = random.getstate(), np.random.get_state()  # noqa: NPY002
    tf_seed = context.global_seed()
    was_deterministic = config.is_op_determinism_enabled()
    keras.utils.set_random_seed(seed)
    config.enable_op_determinism()
    try:
        yield
    finally:
        if not was_deterministic:
            config.disable_op_determinism()  # no public switch-off exists
        tf.random.set_seed(tf_seed)
        random.setstate(python_state)
        np.random.set_state(numpy_state)  # noqa: NPY002


def _seed_from(random_state) -> int | None:
    if random_state is None or isinstance(random_state, numbers.Integral):
        return random_state
    if isinstance(random_state, np.random.RandomState):
        # Copy the state so that drawing a seed leaves the user's generator untouched.
        generator = np.random.RandomState()
        generator.set_state(random_state.get_state())
        return int(generator.randint(np.iinfo(np.int32).max))
    raise ValueError(f"random_state must be None, an int or a RandomState, got {random_state!r}")


class _BestEpochTracker(keras.callbacks.Callback):
    """Record the history, remember the best weights, and stop early if asked.

    Kept by the estimator rather than taken from ``model.fit``'s return value so that
    the history and best weights survive an interrupted fit.
    """

    def __init__(
        self,
        monitor: str,
        patience: int | None,
        validation: tuple[np.ndarray, np.ndarray] | None = None,
        recalibration_X: np.ndarray | None = None,
    ):
        super().__init__()
        self.monitor = monitor
        self.patience = patience
        self.validation = validation
        self.recalibration_X = recalibration_X
        self.history: dict[str, list[float]] = {}
        self.best = math.inf
        self.best_epoch: int | None = None
        self.best_weights = None

    def on_epoch_end(self, epoch, logs=None):
        logs = {} if logs is None else logs
        if self.validation is not None:
            # Validation here rather than through Keras' validation_data: the running
            # batch-norm statistics lag behind the weights, which makes the network
            # look far worse than it is; scoring with re-estimated statistics shows what
            # the fitted model will do. Updating ``logs`` in place lets the progress bar,
            # which runs after this callback, print the figures.
            if self.recalibration_X is not None:
                _recalibrate_batch_norm(self.model, self.recalibration_X)
            X_val, y_val = self.validation
            scores = self.model.evaluate(
                X_val, y_val, batch_size=PREDICT_BATCH_SIZE, verbose=0, return_dict=True
            )
            logs.update({f"val_{name}": value for name, value in scores.items()})
        for key, value in logs.items():
            self.history.setdefault(key, []).append(float(value))
        value = logs.get(self.monitor)
        if value is not None and value < self.best:
            self.best, self.best_epoch = float(value), epoch + 1
            self.best_weights = self.model.get_weights()
        elif self.patience is not None and self.best_epoch is not None:
            if epoch + 1 - self.best_epoch >= self.patience:
                self.model.stop_training = True


class _Checkpoint(keras.callbacks.Callback):
    """Save model, optimizer and tracker state after every epoch; restore them on resume."""

    MODEL = "model.keras"
    STATE = "state.json"

    def __init__(self, folder, fingerprint: dict):
        super().__init__()
        self.folder = os.fspath(folder)
        self.fingerprint = fingerprint
        self.tracker: _BestEpochTracker | None = None

    def restore(self, model: keras.Model, tracker: _BestEpochTracker) -> int:
        """Load a matching checkpoint into ``model`` and ``tracker``; return its epoch."""
        self.tracker = tracker
        os.makedirs(self.folder, exist_ok=True)
        state_path = os.path.join(self.folder, self.STATE)
        if not os.path.exists(state_path):
            if os.listdir(self.folder):
                raise ValueError(
                    f"checkpoint_dir={self.folder!r} is not empty and holds no idcclf "
                    "checkpoint; choose an empty or new folder"
                )
            return 0
        with open(state_path, encoding="utf-8") as handle:
            state = json.load(handle)
        if state.get("fingerprint") != self.fingerprint:
            raise ValueError(
                f"checkpoint_dir={self.folder!r} holds a checkpoint of other settings or "
                "other training data; use another folder or delete it to start afresh"
            )
        saved = keras.saving.load_model(os.path.join(self.folder, self.MODEL))
        model.set_weights(saved.get_weights())
        model.optimizer.build(model.trainable_variables)
        for variable, value in zip(
            model.optimizer.variables, saved.optimizer.variables, strict=True
        ):
            variable.assign(value)
        tracker.history = state["history"]
        tracker.best = state["best"] if state["best"] is not None else math.inf
        tracker.best_epoch = state["best_epoch"]
        if state["best_epoch"] is not None:
            best = keras.saving.load_model(os.path.join(self.folder, "best.keras"))
            tracker.best_weights = best.get_weights()
        return int(state["epoch"])

    def on_epoch_end(self, epoch, logs=None):
        tracker = self.tracker
        with atomic_path(os.path.join(self.folder, self.MODEL)) as tmp:
            self.model.save(_with_suffix(tmp, ".keras"))
            os.replace(_with_suffix(tmp, ".keras"), tmp)
        if tracker.best_epoch == epoch + 1:
            with atomic_path(os.path.join(self.folder, "best.keras")) as tmp:
                self.model.save(_with_suffix(tmp, ".keras"))
                os.replace(_with_suffix(tmp, ".keras"), tmp)
        state = {
            "epoch": epoch + 1,
            "history": tracker.history,
            "best": None if math.isinf(tracker.best) else tracker.best,
            "best_epoch": tracker.best_epoch,
            "fingerprint": self.fingerprint,
        }
        # The state file is written last: it is what makes a checkpoint count.
        atomic_write_text(os.path.join(self.folder, self.STATE), json.dumps(state))


def _with_suffix(path, suffix: str) -> str:
    # Keras insists on the file extension; the temporary name gets one added.
    return os.fspath(path) + suffix
