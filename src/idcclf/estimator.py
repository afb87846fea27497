"""IDCClassifier: CancerNet as a scikit-learn classifier.

This module holds the estimator, and with its mixin ``idcclf._conventions`` (the
scikit-learn conventions it adds on top of scikeras: tags, parameters, old pickles,
input checks, no ``partial_fit``) everything that depends on scikeras (0.13 is its last
release, so keeping it here keeps a move to another base cheap). The Keras
callbacks live in :mod:`idcclf.callbacks`, compiled inference and batch-norm
re-estimation in ``idcclf._ops``, the checks of settings and input in
``idcclf._inputs``, the validation split, weights, batches and the steps of a fit in
``idcclf._training``, and seeding in ``idcclf._seeding``. Design notes and
measurements: ``docs/estimator.md``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import keras
import numpy as np
import scikeras  # noqa: F401  (registers pickling support for Keras models)
from scikeras.wrappers import KerasClassifier
from sklearn.metrics import accuracy_score
from sklearn.utils.validation import (
    _num_samples,
    check_consistent_length,
    check_is_fitted,
    column_or_1d,
)

from . import _inputs, _training
from ._conventions import ScikitLearnConventions
from ._ops import predict_in_batches
from ._seeding import seed_from, seeded
from ._training import OPTIMIZERS, TrainingDivergedError  # noqa: F401  (public here)
from .augment import build_augmentation
from .model import ARCHITECTURE, build_cancernet, training_loss
from .stain import stain_jitter
from .standardize import check_patients_given, normalize_stains


class IDCClassifier(ScikitLearnConventions, KerasClassifier):
    """CancerNet invasive ductal carcinoma classifier with the scikit-learn API.

    A scikeras ``KerasClassifier`` that builds :func:`idcclf.build_cancernet`, trains
    it with optional augmentation, class weights, a stratified (and, given
    ``groups``, patient-grouped) validation split and early stopping. Design notes:
    ``docs/estimator.md``.

    Parameters
    ----------
    input_shape : tuple of 3 ints or None, default=(50, 50, 3)
        Shape of one patch; ``X`` may be images or flattened rows (as imbalanced-learn
        samplers need). ``None`` takes it from ``X`` at fit (channels last); rows of
        ``d`` values are then ``1 x d`` single-channel images.
    filters, convs_per_block, head_dropout, dropout_placement, batch_norm, \
separable, dense_units
        Architecture knobs, passed to :func:`idcclf.build_cancernet` (defaults are
        the tutorial's CancerNet).
    block_dropout : float, default=0.1
        Share of each convolution block's outputs dropped in training, passed to
        :func:`idcclf.build_cancernet`. Lower than the tutorial's 0.25, which scored
        lower in patient-grouped cross-validation over 151 patients
        (``docs/evaluation.md``).
    rescale : float or None, default=1/255
        Factor applied to ``X`` inside the network, so that uint8 patches are fed as
        they are; ``None`` for ``X`` already scaled (floats in [0, 1]).
    augment : bool, default=True
        Random flips, 90-degree rotations, small rotations, zooms and shifts, applied
        in training only (see :mod:`idcclf.augment`).
    stain_jitter : float, default=0.0
        Strength of random H&E stain jitter in training (:mod:`idcclf.stain`); 0
        turns it off, 0.05 is the usual "light" setting.
    normalize_stains : bool, default=False
        Redraw every patient's patches with reference H&E stains
        (:func:`idcclf.normalize_stains`, Macenko's method) before the network sees
        them, in training and in prediction. The stains are measured per patient, so
        :meth:`fit` then needs ``groups``, and :meth:`predict_proba`, :meth:`predict`
        and :meth:`score` need ``groups`` too, with all of a patient's patches (or a
        representative share) in one call; without them they raise a ValueError.
        ``idcclf predict``, ``evaluate``, ``heatmap`` and
        :func:`idcclf.predict_patients` pass the patients themselves; scikit-learn's
        scorers cannot, so cross-validate on ``normalize_stains(X, groups)`` with this
        left False (``docs/estimator.md``).
    optimizer : {'adagrad', 'adam', 'sgd', 'rmsprop'}, default='adagrad'
        Optimizer; the tutorial uses Adagrad.
    learning_rate : float, default=1e-2
        Learning rate of the optimizer.
    lr_schedule : {'constant', 'cosine', 'one_cycle'}, default='constant'
        ``'cosine'`` decays the rate every epoch along a half cosine towards 0 at
        ``epochs``. ``'one_cycle'`` sets it before every batch: a warm-up from
        ``learning_rate / 25`` to ``learning_rate`` over the first 30 % of the
        ``epochs``, then a half-cosine decay to ``learning_rate / 10**4``. With
        either, ``history_`` also records each epoch's (last) ``learning_rate``.
    batch_size : int, default=32
        Mini-batch size for training.
    epochs : int, default=40
        Maximum number of passes over the training data.
    class_weight : None, 'balanced' or dict, default='balanced'
        Class weights, computed on the training part (after the validation split).
        Dict values must be finite and non-negative. 'balanced' (inverse class
        frequency, as the tutorial trains) lifts balanced accuracy at the 0.5
        threshold on unseen patients (``docs/evaluation.md``).
    undersample : bool, default=False
        Train every epoch on all patches of the rarest class and a fresh draw of as
        many of each other class, cycling so that every patch is used over the
        epochs (seeded by ``random_state``). Each epoch is then balanced, so
        'balanced' class weights are all 1 and a dict is refused.
    label_smoothing : float, default=0.0
        Label smoothing of the cross-entropy loss, in [0, 1): the target of each patch
        becomes ``1 - label_smoothing`` for its class, the rest shared by the others.
    weight_decay : float, default=0.0
        Decoupled weight decay (as AdamW, with any optimizer): each step shrinks the
        convolution and dense kernels (not biases or batch norm) by ``learning_rate *
        weight_decay`` of themselves. 0 turns it off.
    mixup : float, default=0.0
        Mixup: train on blends ``lam * own + (1 - lam) * partner`` of two patches of a
        batch, labels and weights alike, ``lam ~ Beta(mixup, mixup)`` per patch
        (seeded), before stain jitter and augmentation. 0 turns it off.
    weight_averaging : float, default=0.0
        End with a moving average of the weights over about this many last epochs
        instead of the last weights; per-epoch validation and early stopping score
        the average too. 0 turns it off (``docs/estimator.md``).
    test_time_augmentation : bool, default=False
        Average the predicted probabilities over the flips and quarter turns of each
        patch (8 views of a square patch, 4 flips otherwise), at 8 (or 4) times the
        cost. Prediction only: it can be switched on a fitted model.
    input_range_check : {'error', 'warn'}, default='error'
        What prediction does with patches on another scale than the training ones
        (see ``input_range_``): raise a ValueError, or only warn. Prediction only.
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
        After training (and before each epoch's validation), re-estimate the
        batch-norm statistics exactly on up to 2,048 (1,024) training patches: Keras'
        running values lag behind the weights on small data (``docs/estimator.md``).
    random_state : int, RandomState or None, default=None
        Seed for weights, augmentation, dropout, shuffling and the validation split.
        The same integer gives the same predictions.
    checkpoint_dir : str, path or None, default=None
        Folder where model, optimizer state and history are saved after every epoch;
        a later ``fit`` with the same settings and labels resumes there (``epochs``
        may grow, unless scheduled). Another run's checkpoint is refused.
    verbose : int, default=0
        0 is silent, 1 shows the Keras progress bar, 2 one line per epoch; both
        also say when the batch-norm statistics are re-estimated after training.

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
    feature_names_in_ : ndarray of str
        Column names of ``X`` at fit, when it was a DataFrame with string column
        names; prediction then refuses other (or reordered) columns.
    input_range_ : tuple of (float, float) or None
        Smallest and largest training value. Prediction refuses input clearly on
        another scale, e.g. ``X / 255`` after training on 0-255 pixels (the rule:
        ``docs/estimator.md``); None (a model saved before it existed) checks nothing.
    training_groups_ : ndarray or None
        Patients the network was trained on (after the validation split), when
        ``groups`` was passed to :meth:`fit`.
    validation_groups_ : ndarray or None
        Patients held out for validation, when ``groups`` was passed to :meth:`fit`.
    best_epoch_ : int or None
        1-based epoch whose weights were restored by early stopping (or kept after an
        interruption), else None.

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

    # With metadata routing on, routed groups reach prediction and score too (used by
    # normalize_stains, ignored otherwise); a method that takes groups without saying
    # whether it wants them would make routing refuse them.
    __metadata_request__fit = {"groups": True}
    __metadata_request__predict = {"groups": True}
    __metadata_request__predict_proba = {"groups": True}
    __metadata_request__score = {"groups": True}

    def __init__(
        self,
        *,
        input_shape: Sequence[int] | None = (50, 50, 3),
        filters: Sequence[int] = (32, 64, 128),
        convs_per_block: Sequence[int] = (1, 2, 3),
        block_dropout: float = 0.1,
        head_dropout: float = 0.5,
        dropout_placement: str = "after_pool",
        batch_norm: bool = True,
        separable: bool = True,
        dense_units: int = 256,
        rescale: float | None = 1.0 / 255.0,
        augment: bool = True,
        stain_jitter: float = 0.0,
        normalize_stains: bool = False,
        optimizer: str = "adagrad",
        learning_rate: float = 1e-2,
        lr_schedule: str = "constant",
        batch_size: int = 32,
        epochs: int = 40,
        class_weight: str | dict | None = "balanced",
        undersample: bool = False,
        label_smoothing: float = 0.0,
        weight_decay: float = 0.0,
        mixup: float = 0.0,
        weight_averaging: float = 0.0,
        test_time_augmentation: bool = False,
        input_range_check: str = "error",
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
        self.normalize_stains = normalize_stains
        self.optimizer = optimizer
        self.learning_rate = learning_rate
        self.lr_schedule = lr_schedule
        self.batch_size = batch_size
        self.epochs = epochs
        self.class_weight = class_weight
        self.undersample = undersample
        self.label_smoothing = label_smoothing
        self.weight_decay = weight_decay
        self.mixup = mixup
        self.weight_averaging = weight_averaging
        self.test_time_augmentation = test_time_augmentation
        self.input_range_check = input_range_check
        self.validation_fraction = validation_fraction
        self.early_stopping = early_stopping
        self.n_iter_no_change = n_iter_no_change
        self.recalibrate_batch_norm = recalibrate_batch_norm
        self.random_state = random_state
        self.checkpoint_dir = checkpoint_dir
        self.verbose = verbose

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
            Required with ``normalize_stains=True``.

        Returns
        -------
        self : IDCClassifier
        """
        self._check_params()
        groups = _inputs.check_groups(groups, _num_samples(X))
        if self.normalize_stains:
            check_patients_given(groups, "fit")
        if sample_weight is not None:
            sample_weight = _inputs.check_sample_weight(sample_weight, X)
            if groups is not None:
                groups = groups[sample_weight != 0]  # scikeras drops zero-weighted samples
        self.classes_ = None  # scikeras infers the classes again at every fit
        super(KerasClassifier, self).fit(X, y, sample_weight=sample_weight, groups=groups)
        return self

    def _check_params(self) -> None:
        _inputs.check_params(self.get_params())

    def _build_keras_model(self) -> keras.Model:
        """The compiled network: stain jitter and augmentation, then CancerNet."""
        shape, seed = self.image_shape_, self._random_state
        architecture = {name: getattr(self, name) for name in ARCHITECTURE}
        network = build_cancernet(shape, n_classes=len(self.classes_), **architecture)
        inputs = x = keras.Input(shape=shape, name="patch")
        if self.stain_jitter:
            x = stain_jitter(self.stain_jitter, self.rescale, None if seed is None else seed + 7)(x)
        if self.augment:
            x = build_augmentation(shape, seed=seed)(x)
        model = keras.Model(inputs, network(x), name="idc_classifier")
        model.compile(
            optimizer=_training.build_optimizer(self),
            loss=training_loss(self.label_smoothing, self.mixup),
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
        X = self._stains_normalized(X, groups)
        self.input_range_ = _inputs.value_range(X)
        fitted = _training.train(self, X, y, sample_weight, groups, epochs, initial_epoch)
        vars(self).update(fitted)

    # -- prediction -----------------------------------------------------------------

    def _stains_normalized(self, X: np.ndarray, groups) -> np.ndarray:
        """``X`` (validated images) with each patient's stains normalized, if asked."""
        if not self.normalize_stains:
            return X
        return normalize_stains(X, groups)

    def _predict_raw(self, X, groups=None, **kwargs):
        check_is_fitted(self)
        groups = _inputs.check_groups(groups, _num_samples(X))
        if self.normalize_stains:
            check_patients_given(groups, "predict_proba, predict and score")
        X, _ = self._validate_data(X=X, y=None)
        X = self._stains_normalized(X, groups)
        _inputs.check_input_range(X, getattr(self, "input_range_", None), self.input_range_check)
        return predict_in_batches(self.model_, X, symmetric=bool(self.test_time_augmentation))

    def predict_proba(self, X, groups=None) -> np.ndarray:
        """Class probabilities of each patch, columns in the order of ``classes_``.

        Parameters
        ----------
        X : array-like of shape (n_samples, H, W, C) or (n_samples, H*W*C)
            Patches in the form used at fit (images or rows).
        groups : array-like of shape (n_samples,), default=None
            Patient of each patch; required (and used) only with
            ``normalize_stains=True``.

        Returns
        -------
        ndarray of shape (n_samples, n_classes)
        """
        # scikeras squeezes its output, which turns one patch's (1, 2) into (2,).
        proba = super().predict_proba(X, groups=groups)
        return np.asarray(proba).reshape(-1, len(self.classes_))

    def predict(self, X, groups=None) -> np.ndarray:
        """Most probable class of each patch.

        Parameters
        ----------
        X : array-like of shape (n_samples, H, W, C) or (n_samples, H*W*C)
        groups : array-like of shape (n_samples,), default=None
            Patient of each patch; required (and used) only with
            ``normalize_stains=True``.

        Returns
        -------
        ndarray of shape (n_samples,)
            Labels from ``classes_``.
        """
        return np.asarray(super().predict(X, groups=groups)).reshape(-1)

    def score(self, X, y, sample_weight=None, groups=None) -> float:
        """Accuracy of ``predict(X)`` against ``y``.

        Parameters
        ----------
        X : array-like of shape (n_samples, H, W, C) or (n_samples, H*W*C)
        y : array-like of shape (n_samples,)
            True labels, all among ``classes_``.
        sample_weight : array-like of shape (n_samples,), default=None
        groups : array-like of shape (n_samples,), default=None
            Patient of each patch; required (and used) only with
            ``normalize_stains=True``.

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
        _inputs.check_known_labels(y, self.classes_)
        if sample_weight is not None:
            sample_weight = _inputs.check_sample_weight(sample_weight, X)
        if not self.normalize_stains:
            return super().score(X, y, sample_weight=sample_weight)
        # scikeras' score calls predict(X) without the patients.
        check_consistent_length(X, y)
        y_pred = self.predict(X, groups=groups)
        return float(accuracy_score(column_or_1d(y), y_pred, sample_weight=sample_weight))
