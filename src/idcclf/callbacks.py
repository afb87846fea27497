"""The Keras callbacks of ``IDCClassifier.fit``: best-epoch tracking, checkpoints and
a learning rate set before every batch."""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os

import keras
import numpy as np

from ._io import atomic_path, atomic_write_text
from ._ops import evaluate, recalibrate_batch_norm


class BatchRateSchedule(keras.callbacks.Callback):
    """Set the learning rate before every batch to ``schedule(epoch + done, epochs)``.

    ``done`` is the fraction of the epoch's batches already trained, so the rate moves
    smoothly within an epoch (Keras' ``LearningRateScheduler`` changes it per epoch
    only). The epoch's last rate is logged as ``learning_rate``, as that callback does.
    """

    def __init__(self, schedule, epochs: int):
        super().__init__()
        self.schedule = schedule
        self.epochs = epochs
        self.epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_begin(self, batch, logs=None):
        steps = self.params.get("steps") or 1
        rate = self.schedule(self.epoch + batch / steps, self.epochs)
        self.model.optimizer.learning_rate.assign(rate)

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["learning_rate"] = float(self.model.optimizer.learning_rate.numpy())


@contextlib.contextmanager
def averaged_weights(model: keras.Model):
    """Within the block, ``model`` holds its optimizer's moving average of its weights.

    Without a moving average (``use_ema``), or before the optimizer has one, the
    weights are left as they are. The trained weights are put back on leaving.
    """
    optimizer = getattr(model, "optimizer", None)  # None: never compiled
    if not (getattr(optimizer, "use_ema", False) and optimizer.built):
        yield
        return
    trained = [variable.numpy() for variable in model.trainable_variables]
    optimizer.finalize_variable_values(model.trainable_variables)
    try:
        yield
    finally:
        for variable, value in zip(model.trainable_variables, trained, strict=True):
            variable.assign(value)


class BestEpochTracker(keras.callbacks.Callback):
    """Record the history, remember the best weights, and stop early if asked.

    Kept by the estimator rather than taken from ``model.fit``'s return value so that
    the history and best weights survive an interrupted fit.

    Parameters
    ----------
    monitor : str
        Logged value to minimise (``'val_loss'`` or ``'loss'``).
    patience : int or None
        Epochs without improvement before training stops; None never stops.
    validation : tuple of ndarray or None
        ``(X_val, y_val)`` scored at the end of every epoch into ``val_*`` logs.
    recalibration_X : ndarray or None
        Patches on which the batch-norm statistics are re-estimated before that
        scoring (see :func:`idcclf._ops.recalibrate_batch_norm`).
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
        # With a moving average of the weights, the average is what fit returns, so it
        # is what is scored and kept.
        with averaged_weights(self.model):
            self._score_and_keep(epoch, logs)

    def _score_and_keep(self, epoch: int, logs: dict) -> None:
        if self.validation is not None:
            # Validation here rather than through Keras' validation_data: the running
            # batch-norm statistics lag behind the weights, which makes the network
            # look far worse than it is; scoring with re-estimated statistics shows what
            # the fitted model will do. Updating ``logs`` in place lets the progress bar,
            # which runs after this callback, print the figures. Compiled batches rather
            # than model.evaluate, which builds a new tf.data pipeline at every call.
            if self.recalibration_X is not None:
                recalibrate_batch_norm(self.model, self.recalibration_X)
            scores = evaluate(self.model, *self.validation)
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


class Checkpoint(keras.callbacks.Callback):
    """Save model, optimizer and tracker state after every epoch; restore them on resume.

    Parameters
    ----------
    folder : str or path
        Where the checkpoint lives; created if missing.
    fingerprint : dict
        What must match for a saved checkpoint to be resumed (JSON-serializable).
    """

    MODEL = "model.keras"
    BEST = "best.keras"
    STATE = "state.json"

    def __init__(self, folder, fingerprint: dict):
        super().__init__()
        self.folder = os.fspath(folder)
        self.fingerprint = fingerprint
        self.tracker: BestEpochTracker | None = None

    def restore(self, model: keras.Model, tracker: BestEpochTracker) -> int:
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
            best = keras.saving.load_model(os.path.join(self.folder, self.BEST))
            tracker.best_weights = best.get_weights()
        return int(state["epoch"])

    def on_epoch_end(self, epoch, logs=None):
        tracker = self.tracker
        self._save(self.MODEL)
        if tracker.best_epoch == epoch + 1:
            self._save(self.BEST)
        state = {
            "epoch": epoch + 1,
            "history": tracker.history,
            "best": None if math.isinf(tracker.best) else tracker.best,
            "best_epoch": tracker.best_epoch,
            "fingerprint": self.fingerprint,
        }
        # The state file is written last: it is what makes a checkpoint count.
        atomic_write_text(os.path.join(self.folder, self.STATE), json.dumps(state))

    def _save(self, name: str) -> None:
        with atomic_path(os.path.join(self.folder, name)) as tmp:
            # Keras insists on the file extension; the temporary name gets one added.
            named = os.fspath(tmp) + ".keras"
            self.model.save(named)
            os.replace(named, tmp)


def fingerprint(params: dict, y: np.ndarray, groups=None) -> dict:
    """What must match for a checkpoint to be resumed: settings and training labels.

    ``params`` are the settings that matter (their ``repr`` is compared), ``y`` the
    encoded training labels and ``groups`` the patients, if any.
    """
    labels = hashlib.sha256(np.ascontiguousarray(y).tobytes())
    if groups is not None:
        labels.update(np.asarray(groups).astype(str).tobytes())
    return {
        "params": {key: repr(value) for key, value in params.items()},
        "n_samples": int(len(y)),
        "labels": labels.hexdigest(),
    }
