"""How ``IDCClassifier.fit`` trains its network, apart from the scikeras plumbing.

What it trains on (the validation split, weights, subsets) and the three steps of
training: build the callbacks, run ``keras.Model.fit``, finish the model. The steps
take the estimator, read its settings and never set its attributes.
"""

from __future__ import annotations

import functools
import itertools
import math
import warnings
from typing import NamedTuple

import keras
import numpy as np
from sklearn.utils import compute_sample_weight

from ._allocator import keep_tensor_buffers
from ._ops import recalibrate_batch_norm
from ._seeding import seeded
from .callbacks import BatchRateSchedule, BestEpochTracker, Checkpoint, fingerprint
from .splits import validation_split

OPTIMIZERS = {
    "adagrad": keras.optimizers.Adagrad,
    "adam": keras.optimizers.Adam,
    "sgd": keras.optimizers.SGD,
    "rmsprop": keras.optimizers.RMSprop,
}


def one_cycle(rate: float, epoch: float, epochs: int) -> float:
    """The one-cycle rate at ``epoch`` (fractional: set before every batch).

    A half-cosine warm-up from ``rate / 25`` to ``rate`` over the first 30 % of the
    training, then a half-cosine decay to ``rate / 10**4`` (Smith & Topin 2019, with
    fastai's and PyTorch's ``OneCycleLR`` defaults).
    """
    progress, warm_up = epoch / epochs, 0.3
    low, high, end = rate / 25, rate, rate / 1e4
    if progress < warm_up:
        return low + (high - low) * (1 - math.cos(math.pi * progress / warm_up)) / 2
    rest = (progress - warm_up) / (1 - warm_up)
    return end + (high - end) * (1 + math.cos(math.pi * min(rest, 1.0))) / 2


#: Learning rate at an epoch (from 0), given the initial rate and the number of epochs.
LR_SCHEDULES = {
    "constant": lambda rate, epoch, epochs: rate,
    "cosine": lambda rate, epoch, epochs: rate * (1 + math.cos(math.pi * epoch / epochs)) / 2,
    "one_cycle": one_cycle,
}
#: Schedules set before every batch, at the fraction of the epoch done; the others per epoch.
PER_BATCH_SCHEDULES = frozenset({"one_cycle"})
#: Training patches used to re-estimate batch-normalization statistics after fit. The
#: re-estimation's time grows with them; on unseen patients 2,048 scored as well as
#: 4,096 or all the training patches (``benchmarks/bn_samples.py``, docs/benchmarks.md)
#: in less than half the time of 4,096.
RECALIBRATION_SAMPLES = 2048
#: The same, before each epoch's validation: enough for stable statistics, cheap per epoch.
EPOCH_RECALIBRATION_SAMPLES = 1024
#: Settings that only change prediction (or where files go): a checkpoint ignores them.
PREDICTION_ONLY = frozenset(
    {"verbose", "checkpoint_dir", "test_time_augmentation", "input_range_check"}
)


class TrainingDivergedError(FloatingPointError):
    """Raised when the training loss becomes NaN or infinite."""


class TrainingData(NamedTuple):
    """The part of a fit's data that trains, and the part that validates.

    ``X`` is every patch the fit was given, and ``rows`` the ones that train (None:
    all): indexing saves a copy of the training patches, which on a large set costs
    as much memory as the set and seconds before the first batch.
    """

    X: np.ndarray
    rows: np.ndarray | None
    y: np.ndarray
    weights: np.ndarray | None
    validation: tuple[np.ndarray, np.ndarray] | None
    training_groups: np.ndarray | None
    validation_groups: np.ndarray | None


def split(clf, X, y, sample_weight, groups) -> TrainingData:
    """Hold out ``clf``'s validation part of ``(X, y)``; weight the training part."""
    train, val = validation_split(y, groups, clf.validation_fraction, clf._random_state)
    rows, y_train = (None, y) if val is None else (train, y[train])
    # An undersampled epoch is balanced already: 'balanced' weights on it are all 1.
    class_weight = None if clf.undersample else clf.class_weight
    weights = training_weights(
        clf.classes_,
        y_train,
        None if sample_weight is None else sample_weight[train],
        class_weight,
    )
    return TrainingData(
        X,
        rows,
        y_train,
        weights,
        validation=None if val is None else (X[val], y[val]),
        training_groups=None if groups is None else np.unique(np.asarray(groups)[train]),
        validation_groups=(
            None if groups is None or val is None else np.unique(np.asarray(groups)[val])
        ),
    )


def training_weights(
    classes: np.ndarray, y_encoded: np.ndarray, sample_weight, class_weight
) -> np.ndarray | None:
    """Per-sample weights: ``sample_weight`` times ``class_weight``, or None if neither."""
    weights = None if sample_weight is None else np.asarray(sample_weight, dtype=np.float32)
    if class_weight is not None:
        labels = classes[np.asarray(y_encoded).astype(int)]
        class_weights = compute_sample_weight(class_weight, labels).astype(np.float32)
        weights = class_weights if weights is None else weights * class_weights
    return weights


def random_subset(X: np.ndarray, n: int, seed: int | None, rows=None) -> np.ndarray:
    """Up to ``n`` of ``X``'s ``rows`` (None: all) drawn without replacement, in order."""
    rng = np.random.default_rng(seed)
    size = len(X) if rows is None else len(rows)
    chosen = np.sort(rng.choice(size, size=min(size, n), replace=False))
    return X[chosen if rows is None else rows[chosen]]


class EpochBatches:
    """The mini-batches of every epoch from ``epoch`` on, in a fresh order every epoch.

    Every training patch once per epoch, shuffled; or, with ``undersample``, all the
    patches of the rarest class and as many of every other class, shuffled together.
    Each class's patches are taken in turn from shuffled passes through the class, so
    that over the epochs every patch is used. The batches of epoch ``e`` depend only
    on ``seed`` and ``e`` (a resumed fit goes on with the same sequence).

    The patches are ``X[rows]`` (``rows`` None: all of ``X``), read batch by batch;
    ``y`` and ``weights`` are those of the rows. ``batches[i]`` is batch ``i`` of epoch
    ``epoch``; ``keras.Model.fit`` gets every epoch in turn as :meth:`dataset`.

    With ``mixup`` (a Beta parameter ``alpha`` > 0), every batch is blended with a
    shuffled copy of itself: patch, one-hot label (of ``n_classes``) and weight each
    become ``lam * own + (1 - lam) * partner``, ``lam ~ Beta(alpha, alpha)`` per patch;
    the patches are then float32 and the labels class probabilities. The draws of a
    batch depend only on ``seed``, its epoch and its place in the epoch.
    """

    def __init__(
        self,
        X,
        y,
        weights,
        batch_size: int,
        seed,
        undersample=False,
        epoch=0,
        rows=None,
        mixup: float = 0.0,
        n_classes: int | None = None,
    ):
        self.X, self.y, self.weights, self.batch_size = X, y, weights, batch_size
        self.rows = rows
        self.mixup = mixup
        self.n_classes = int(np.max(y)) + 1 if n_classes is None else n_classes
        self.seed = int(np.random.SeedSequence().entropy) if seed is None else int(seed)
        self.by_class = [np.flatnonzero(y == label) for label in np.unique(y)]
        self.undersample = undersample
        self.epoch = epoch
        self.order = self.indices(epoch)

    def indices(self, epoch: int) -> np.ndarray:
        """The patches of ``epoch``, in the order they are trained on."""
        if self.undersample:
            n = min(len(members) for members in self.by_class)
            chosen = [
                members[self._passes(len(members), label, epoch * n, n)]
                for label, members in enumerate(self.by_class)
            ]
            everything = np.concatenate(chosen)
        else:
            everything = np.arange(len(self.y))
        return np.random.default_rng([self.seed, 0, epoch]).permutation(everything)

    def _passes(self, size: int, label: int, start: int, n: int) -> np.ndarray:
        """Positions ``start`` to ``start + n`` of endless shuffled passes over ``size``."""
        taken = []
        while n > 0:
            number, offset = divmod(start, size)
            shuffled = np.random.default_rng([self.seed, 1, label, number]).permutation(size)
            taken.append(shuffled[offset : offset + n])
            start, n = start + len(taken[-1]), n - len(taken[-1])
        return np.concatenate(taken)

    def __len__(self) -> int:
        return -(-len(self.order) // self.batch_size)

    def __getitem__(self, index: int):
        start = index * self.batch_size
        return self._batch(self.order[start : start + self.batch_size], self.epoch, start)

    def _batch(self, chosen: np.ndarray, epoch: int, start: int) -> tuple:
        patches = self.X[chosen if self.rows is None else self.rows[chosen]]
        batch = (patches, self.y[chosen])
        batch = batch if self.weights is None else (*batch, self.weights[chosen])
        return self._mixed(batch, epoch, start) if self.mixup else batch

    def _mixed(self, batch: tuple, epoch: int, start: int) -> tuple:
        """``batch`` blended with a shuffled copy of itself (see the class docstring)."""
        rng = np.random.default_rng([self.seed, 2, epoch, start])
        n = len(batch[1])
        partner = rng.permutation(n)
        lam = rng.beta(self.mixup, self.mixup, size=n).astype(np.float32)

        def blend(values: np.ndarray) -> np.ndarray:
            share = lam.reshape((n,) + (1,) * (values.ndim - 1))
            return share * values + (1 - share) * values[partner]

        labels = np.eye(self.n_classes, dtype=np.float32)[
            np.asarray(batch[1]).astype(int).reshape(-1)
        ]
        mixed = (blend(batch[0].astype(np.float32)), blend(labels))
        return mixed if len(batch) == 2 else (*mixed, blend(batch[2]))

    def first(self) -> tuple:
        """A batch of the first training row only, as the batches are (for shapes and types)."""
        return self._batch(self.order[:1], self.epoch, 0)

    def stream(self):
        """The batches of epoch ``epoch``, then of every later epoch, without end.

        A function of ``seed`` and ``epoch`` alone: every call starts the same sequence.
        """
        for epoch in itertools.count(self.epoch):
            order = self.indices(epoch)
            for start in range(0, len(order), self.batch_size):
                yield self._batch(order[start : start + self.batch_size], epoch, start)

    def dataset(self):
        """:meth:`stream` as a ``tf.data.Dataset``, read ahead by two batches.

        ``fit`` takes ``len(self)`` steps from it per epoch, from one iterator. Not
        autotuned: destroying an autotuned iterator can stall until its tuning
        thread's next round, up to a minute away, and ``keras.Model.fit`` destroys
        one at the end of every epoch of a ``keras.utils.PyDataset`` and at the end
        of the fit (``benchmarks/epoch_boundary.py``). Also not an array pipeline,
        which TensorFlow rewrites under op determinism with an error line per
        pipeline (``docs/estimator.md``).
        """
        import tensorflow as tf

        def spec(values: np.ndarray) -> tf.TensorSpec:
            return tf.TensorSpec((None, *values.shape[1:]), tf.as_dtype(values.dtype))

        signature = tuple(spec(v) for v in self.first())
        return read_ahead(tf.data.Dataset.from_generator(self.stream, output_signature=signature))


def read_ahead(dataset):
    """``dataset`` read ahead by two batches, with autotuning off (see ``EpochBatches.dataset``)."""
    import tensorflow as tf

    options = tf.data.Options()
    options.autotune.enabled = False
    return dataset.prefetch(2).with_options(options)


def build_callbacks(clf, data: TrainingData, y, groups, initial_epoch: int):
    """The callbacks of ``clf``'s fit, its tracker, and the epoch to start from.

    The start is ``initial_epoch``, or the epoch of a checkpoint being resumed; the
    checkpoint must match ``clf``'s settings and all the labels ``y`` (and ``groups``).
    """
    recalibrate = clf.recalibrate_batch_norm and clf.batch_norm
    tracker = BestEpochTracker(
        monitor="loss" if data.validation is None else "val_loss",
        patience=clf.n_iter_no_change if clf.early_stopping else None,
        validation=data.validation,
        recalibration_X=(
            random_subset(data.X, EPOCH_RECALIBRATION_SAMPLES, clf._random_state, data.rows)
            if recalibrate and data.validation is not None
            else None
        ),
    )
    callbacks = [keras.callbacks.TerminateOnNaN()]
    if clf.lr_schedule != "constant":
        # Before the tracker, so that the epoch's learning rate reaches history_.
        schedule = functools.partial(LR_SCHEDULES[clf.lr_schedule], clf.learning_rate)
        if clf.lr_schedule in PER_BATCH_SCHEDULES:
            callbacks.append(BatchRateSchedule(schedule, clf.epochs))
        else:
            callbacks.append(
                keras.callbacks.LearningRateScheduler(
                    lambda epoch, rate: schedule(epoch, clf.epochs)
                )
            )
    callbacks.append(tracker)
    if clf.checkpoint_dir is not None:
        # Prediction-only settings may change, and the number of epochs may grow
        # between resumes unless a schedule depends on it.
        ignored = PREDICTION_ONLY | ({"epochs"} if clf.lr_schedule == "constant" else set())
        params = {key: v for key, v in clf.get_params().items() if key not in ignored}
        checkpoint = Checkpoint(clf.checkpoint_dir, fingerprint(params, y, groups))
        initial_epoch = checkpoint.restore(clf.model_, tracker)
        callbacks.append(checkpoint)
    return tracker, callbacks, initial_epoch


def train(clf, X, y, sample_weight, groups, epochs: int, initial_epoch: int) -> dict:
    """Hold out the validation part, train ``clf.model_`` and finish it.

    Returns the fitted attributes this sets: ``training_groups_``,
    ``validation_groups_``, ``history_`` and ``best_epoch_``.
    """
    data = split(clf, X, y, sample_weight, groups)
    tracker, callbacks, initial_epoch = build_callbacks(clf, data, y, groups, initial_epoch)
    interrupted = run(clf, data, callbacks, epochs, initial_epoch)
    best_epoch = finish(clf, tracker, data, interrupted)
    return {
        "training_groups_": data.training_groups,
        "validation_groups_": data.validation_groups,
        "history_": tracker.history,
        "best_epoch_": best_epoch,
    }


def build_optimizer(clf) -> keras.optimizers.Optimizer:
    """The optimizer of ``clf``, keeping a moving average of the weights if asked."""
    # The average's momentum depends on the batches per epoch, known only once the
    # validation part is held out: run sets it before training.
    averaging = {"use_ema": True} if clf.weight_averaging else {}
    decay = {"weight_decay": clf.weight_decay} if clf.weight_decay else {}
    optimizer = OPTIMIZERS[clf.optimizer](learning_rate=clf.learning_rate, **averaging, **decay)
    if clf.weight_decay:
        # Decaying the batch-norm scales and the biases would only fight the
        # normalization; the kernels are what the decay is meant to keep small.
        optimizer.exclude_from_weight_decay(var_names=["bias", "gamma", "beta"])
    return optimizer


def averaging_momentum(span_epochs: float, batches_per_epoch: int) -> float:
    """Momentum of a moving average over about ``span_epochs`` epochs of batches."""
    return max(0.0, 1.0 - 1.0 / (span_epochs * batches_per_epoch))


def build_training_state(model: keras.Model, batch: tuple) -> None:
    """Create the optimizer's and the compiled metrics' variables before ``fit``.

    Keras on TensorFlow creates them while tracing the first training step, and
    TensorFlow traces a step that creates variables twice: 0.9 s more before the
    first batch on the 2-vCPU machines of ``docs/benchmarks.md``
    (``benchmarks/first_batch.py``). The metrics are built on ``batch`` in inference
    mode (nothing random is drawn, no weight changes), then reset.
    """
    if not model.optimizer.built:
        model.optimizer.build(model.trainable_variables)
    x, y = batch[:2]
    model.compute_metrics(x, y, model(x, training=False))
    model.reset_metrics()


def run(clf, data: TrainingData, callbacks, epochs: int, initial_epoch: int) -> bool:
    """Train ``clf.model_``, seeded by ``clf``; return whether Ctrl-C interrupted it."""
    batches = EpochBatches(
        data.X,
        data.y,
        data.weights,
        clf.batch_size,
        clf._random_state,
        undersample=clf.undersample,
        epoch=initial_epoch,
        rows=data.rows,
        mixup=clf.mixup,
        n_classes=len(clf.classes_),
    )
    if clf.weight_averaging:
        # Read when the training step is traced, at the first batch of fit.
        clf.model_.optimizer.ema_momentum = averaging_momentum(clf.weight_averaging, len(batches))
    build_training_state(clf.model_, batches.first())
    keep_tensor_buffers()
    try:
        if initial_epoch < epochs:
            with seeded(clf._random_state):
                clf.model_.fit(
                    batches.dataset(),
                    steps_per_epoch=len(batches),
                    shuffle=False,  # the batches come shuffled
                    epochs=epochs,
                    initial_epoch=initial_epoch,
                    verbose=clf.verbose,
                    callbacks=callbacks,
                )
    except KeyboardInterrupt:
        return True
    return False


def finish(clf, tracker: BestEpochTracker, data: TrainingData, interrupted: bool) -> int | None:
    """Restore the best weights if asked, re-estimate batch norm; return the kept epoch.

    The kept epoch (1-based) is None unless early stopping or an interruption chose it.
    A loss that became NaN or infinite raises :class:`TrainingDivergedError`.
    """
    losses = tracker.history.get("loss", [])
    bad = [i for i, loss in enumerate(losses, start=1) if not math.isfinite(loss)]
    if bad:
        raise TrainingDivergedError(
            f"training diverged: the loss became {losses[bad[0] - 1]} at epoch {bad[0]}; "
            f"lower learning_rate (now {clf.learning_rate}) or check X for extreme values"
        )
    keep_best = clf.early_stopping or interrupted
    if keep_best and tracker.best_weights is not None:
        clf.model_.set_weights(tracker.best_weights)
    elif clf.weight_averaging:
        # Keras ends its fit with the average, but not a fit with no epochs left to run
        # (a finished checkpoint resumed).
        clf.model_.optimizer.finalize_variable_values(clf.model_.trainable_variables)
    if clf.recalibrate_batch_norm and clf.batch_norm:
        subset = random_subset(data.X, RECALIBRATION_SAMPLES, clf._random_state, data.rows)
        if clf.verbose:  # seconds of work after the last epoch's line: say what it is
            print(
                f"re-estimating the batch-norm statistics on {len(subset)} training patches...",
                flush=True,
            )
        recalibrate_batch_norm(clf.model_, subset)
    if interrupted:
        if not tracker.history:
            raise KeyboardInterrupt("training interrupted before the first epoch ended")
        warnings.warn(
            f"training interrupted after {len(tracker.history['loss'])} epoch(s); keeping "
            f"the weights of epoch {tracker.best_epoch}, the best by {tracker.monitor}",
            UserWarning,
            stacklevel=6,
        )
    return tracker.best_epoch if keep_best else None
