"""IDCClassifier(weight_averaging=...): a moving average of the trained weights."""

import keras
import numpy as np
import pytest
from sklearn.metrics import log_loss

from idcclf import IDCClassifier, _training
from idcclf._training import averaging_momentum


class _WeightsAfterEveryBatch(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.weights = []

    def on_train_batch_end(self, batch, logs=None):
        self.weights.append([v.numpy().astype(np.float64) for v in self.model.trainable_variables])


def _recording(monkeypatch) -> _WeightsAfterEveryBatch:
    """Add a recorder of the trained weights to the callbacks of the next fits."""
    recorder = _WeightsAfterEveryBatch()
    build = _training.build_callbacks

    def build_and_record(*args, **kwargs):
        tracker, callbacks, initial_epoch = build(*args, **kwargs)
        return tracker, [*callbacks, recorder], initial_epoch

    monkeypatch.setattr(_training, "build_callbacks", build_and_record)
    return recorder


def test_momentum_spans_the_asked_epochs():
    assert averaging_momentum(1.0, 100) == pytest.approx(0.99)
    assert averaging_momentum(0.5, 100) == pytest.approx(0.98)
    assert averaging_momentum(0.001, 100) == 0.0  # under one batch: no averaging


def test_fit_ends_with_the_moving_average_of_the_trained_weights(
    tiny_sample, tiny_params, monkeypatch
):
    X, y, groups = tiny_sample
    recorder = _recording(monkeypatch)
    clf = IDCClassifier(**tiny_params, weight_averaging=0.5).fit(X, y, groups=groups)
    batches_per_epoch = len(recorder.weights) // tiny_params["epochs"]
    momentum = averaging_momentum(0.5, batches_per_epoch)
    assert clf.model_.optimizer.ema_momentum == pytest.approx(momentum)
    average = recorder.weights[0]  # Keras starts the average at the first step's weights
    for weights in recorder.weights[1:]:
        average = [momentum * a + (1 - momentum) * w for a, w in zip(average, weights, strict=True)]
    final = [v.numpy() for v in clf.model_.trainable_variables]
    for kept, expected in zip(final, average, strict=True):
        np.testing.assert_allclose(kept, expected, rtol=1e-4, atol=1e-6)
    last = recorder.weights[-1]
    assert max(np.abs(k - w).max() for k, w in zip(final, last, strict=True)) > 1e-3, "not averaged"


def test_averaging_leaves_the_training_path_alone(tiny_sample, tiny_params):
    X, y, groups = tiny_sample
    plain = IDCClassifier(**tiny_params).fit(X, y, groups=groups)
    averaged = IDCClassifier(**tiny_params, weight_averaging=0.5).fit(X, y, groups=groups)
    assert averaged.history_["loss"] == pytest.approx(plain.history_["loss"], rel=1e-5)
    assert not np.allclose(averaged.predict_proba(X), plain.predict_proba(X))


def test_each_epoch_is_validated_with_the_averaged_weights(tiny_sample, tiny_params):
    X, y, groups = tiny_sample
    clf = IDCClassifier(**tiny_params, weight_averaging=0.5).fit(X, y, groups=groups)
    held_out = np.isin(groups, clf.validation_groups_)
    assert 0 < held_out.sum() < 1024  # every re-estimation then sees all training patches
    # The last epoch's validation loss is the fitted (averaged) model's loss.
    proba = clf.predict_proba(X[held_out])
    assert clf.history_["val_loss"][-1] == pytest.approx(
        log_loss(y[held_out], proba, labels=[0, 1]), rel=1e-4
    )


def test_early_stopping_keeps_averaged_weights_and_pickles(tiny_sample, tiny_params, tmp_path):
    import joblib

    X, y, groups = tiny_sample
    clf = IDCClassifier(
        **{**tiny_params, "epochs": 3},
        weight_averaging=1.0,
        early_stopping=True,
        n_iter_no_change=1,
    ).fit(X, y, groups=groups)
    held_out = np.isin(groups, clf.validation_groups_)
    best = clf.best_epoch_
    assert clf.history_["val_loss"][best - 1] == pytest.approx(
        log_loss(y[held_out], clf.predict_proba(X[held_out]), labels=[0, 1]), rel=1e-4
    )
    joblib.dump(clf, tmp_path / "model.joblib")
    loaded = joblib.load(tmp_path / "model.joblib")
    np.testing.assert_allclose(loaded.predict_proba(X[:8]), clf.predict_proba(X[:8]), rtol=1e-5)


def test_a_finished_checkpoint_resumes_to_the_averaged_model(tiny_sample, tiny_params, tmp_path):
    X, y, groups = tiny_sample
    folder = tmp_path / "ckpt"
    first = IDCClassifier(**tiny_params, weight_averaging=1.0, checkpoint_dir=folder)
    first.fit(X, y, groups=groups)
    # Nothing is left to train: the average must come from the checkpoint's optimizer.
    again = IDCClassifier(**tiny_params, weight_averaging=1.0, checkpoint_dir=folder)
    again.fit(X, y, groups=groups)
    assert again.history_["loss"] == first.history_["loss"]
    np.testing.assert_allclose(again.predict_proba(X), first.predict_proba(X), rtol=1e-4, atol=1e-6)
