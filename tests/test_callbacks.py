"""The Keras callbacks of IDCClassifier.fit: best-epoch tracking and checkpoints."""

import keras
import numpy as np
import pytest

from idcclf import IDCClassifier
from idcclf.callbacks import BestEpochTracker, fingerprint


def _tracked(patience):
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    tracker = BestEpochTracker(monitor="loss", patience=patience)
    tracker.set_model(model)
    model.stop_training = False  # as Model.fit sets it
    return model, tracker


def test_tracker_keeps_the_best_epoch_and_stops_after_the_patience():
    model, tracker = _tracked(patience=2)
    for epoch, loss in enumerate([3.0, 2.0, 2.5, 2.6]):
        model.set_weights([w + 1 for w in model.get_weights()])  # each epoch changes them
        if epoch == 1:
            best = [w.copy() for w in model.get_weights()]
        assert not model.stop_training
        tracker.on_epoch_end(epoch, {"loss": loss})
    assert tracker.history == {"loss": [3.0, 2.0, 2.5, 2.6]}
    assert tracker.best_epoch == 2 and tracker.best == 2.0
    for kept, expected in zip(tracker.best_weights, best, strict=True):
        np.testing.assert_array_equal(kept, expected)
    assert model.stop_training  # 2 epochs without improvement


def test_tracker_without_patience_never_stops():
    model, tracker = _tracked(patience=None)
    for epoch, loss in enumerate([1.0, 2.0, 3.0, 4.0]):
        tracker.on_epoch_end(epoch, {"loss": loss})
    assert tracker.best_epoch == 1 and not model.stop_training


def test_fingerprint_depends_on_settings_labels_and_patients():
    y = np.array([0, 1, 1, 1])
    base = fingerprint({"epochs": 2}, y)
    assert base == fingerprint({"epochs": 2}, y.copy())
    assert base != fingerprint({"epochs": 3}, y)
    assert base != fingerprint({"epochs": 2}, y[::-1])
    assert base != fingerprint({"epochs": 2}, y, groups=["a", "a", "b", "b"])


def test_ctrl_c_keeps_the_best_weights_so_far(tiny_sample, monkeypatch, tiny_params):
    from idcclf.callbacks import BestEpochTracker

    X, y, groups = tiny_sample
    record = BestEpochTracker.on_epoch_end

    def interrupt_after_two(self, epoch, logs=None):
        record(self, epoch, logs)
        if epoch + 1 == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(BestEpochTracker, "on_epoch_end", interrupt_after_two)
    clf = IDCClassifier(**{**tiny_params, "epochs": 5})
    with pytest.warns(UserWarning, match="interrupted after 2 epoch"):
        clf.fit(X, y, groups=groups)
    assert len(clf.history_["loss"]) == 2
    assert clf.best_epoch_ == int(np.argmin(clf.history_["val_loss"])) + 1
    assert clf.predict_proba(X[:5]).shape == (5, 2)


def test_checkpoint_dir_resumes_training(tiny_sample, tmp_path, tiny_params):
    X, y, groups = tiny_sample
    folder = tmp_path / "ckpt"
    first = IDCClassifier(**tiny_params, checkpoint_dir=folder).fit(X, y, groups=groups)
    assert (folder / "state.json").exists() and (folder / "model.keras").exists()
    resumed = IDCClassifier(**{**tiny_params, "epochs": 3}, checkpoint_dir=folder).fit(
        X, y, groups=groups
    )
    assert len(resumed.history_["loss"]) == 3
    assert resumed.history_["loss"][:2] == first.history_["loss"]
    assert not list(folder.glob(".*.tmp*")), "temporary files left behind"


def test_checkpoint_of_other_settings_is_refused(tiny_sample, tmp_path, tiny_params):
    X, y, groups = tiny_sample
    folder = tmp_path / "ckpt"
    IDCClassifier(**{**tiny_params, "epochs": 1}, checkpoint_dir=folder).fit(X, y, groups=groups)
    with pytest.raises(ValueError, match="checkpoint_dir.*other settings"):
        IDCClassifier(**{**tiny_params, "epochs": 1}, learning_rate=0.5, checkpoint_dir=folder).fit(
            X, y, groups=groups
        )
    # a cosine schedule depends on the number of epochs, so more of them is another run
    cosine = tmp_path / "cosine"
    IDCClassifier(**{**tiny_params, "epochs": 1}, lr_schedule="cosine", checkpoint_dir=cosine).fit(
        X, y, groups=groups
    )
    with pytest.raises(ValueError, match="checkpoint_dir.*other settings"):
        IDCClassifier(
            **{**tiny_params, "epochs": 2}, lr_schedule="cosine", checkpoint_dir=cosine
        ).fit(X, y, groups=groups)
    stranger = tmp_path / "stranger"
    stranger.mkdir()
    (stranger / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="not empty"):
        IDCClassifier(**tiny_params, checkpoint_dir=stranger).fit(X, y)
    assert (stranger / "notes.txt").read_text() == "mine"
