"""What IDCClassifier.fit trains on: the validation split, weights and subsets."""

import itertools

import numpy as np
import pytest

from idcclf._training import EpochBatches, random_subset, training_weights, validation_split


def test_validation_split_is_grouped_by_patient(tiny_classifier, tiny_sample):
    X, y, groups = tiny_sample
    held_out = set(tiny_classifier.validation_groups_)
    assert 0 < len(held_out) < len(np.unique(groups))
    train, val = validation_split(y, groups, tiny_classifier.validation_fraction, 0)
    assert set(groups[train]).isdisjoint(groups[val])
    assert set(groups[val]) == held_out


def test_validation_split_without_groups_is_stratified(tiny_sample):
    _, y, _ = tiny_sample
    train, val = validation_split(y, None, 0.25, 0)
    assert len(val) == pytest.approx(0.25 * len(y), abs=1)
    assert y[val].mean() == pytest.approx(y.mean(), abs=0.02)
    assert len(np.intersect1d(train, val)) == 0


def test_class_weight_balanced_and_dict(tiny_sample):
    _, y, _ = tiny_sample
    classes = np.array([0, 1])
    weights = training_weights(classes, y.astype(float), None, "balanced")
    n, n_pos = len(y), y.sum()
    assert weights[y == 1][0] == pytest.approx(n / (2 * n_pos))
    assert weights[y == 0][0] == pytest.approx(n / (2 * (n - n_pos)))
    weights = training_weights(classes, y.astype(float), np.full(len(y), 2.0), {0: 1.0, 1: 3.0})
    assert set(np.unique(weights)) == {2.0, 6.0}


def test_validation_split_by_patient_needs_two_patients():
    y = np.array([0, 1] * 10)
    with pytest.raises(ValueError, match="at least 2 distinct groups"):
        validation_split(y, np.zeros(20), 0.2, 0)
    train, val = validation_split(y, None, 0.0, 0)
    assert val is None and len(train) == 20


def test_validation_split_too_small_says_so():
    with pytest.raises(ValueError, match="validation_fraction=0.1 of 4 samples"):
        validation_split(np.array([0, 0, 0, 1]), None, 0.1, 0)


def test_random_subset_keeps_order_and_is_seeded():
    X = np.arange(100)[:, None]
    subset = random_subset(X, 10, seed=3)
    assert len(subset) == 10 and np.all(np.diff(subset[:, 0]) > 0)
    np.testing.assert_array_equal(subset, random_subset(X, 10, seed=3))
    np.testing.assert_array_equal(random_subset(X, 1000, seed=3), X)


def test_epoch_batches_cover_every_patch_in_a_new_order_each_epoch():
    y = np.array([0] * 30 + [1] * 10)
    X = np.arange(40)
    batches = EpochBatches(X, y, None, batch_size=8, seed=0)
    assert len(batches) == 5
    first = np.concatenate([batches[i][0] for i in range(len(batches))])
    np.testing.assert_array_equal(np.sort(first), X)
    # the order of an epoch depends on the seed and the epoch alone (a resume continues it)
    resumed = EpochBatches(X, y, None, batch_size=8, seed=0, epoch=1)
    second = np.concatenate([resumed[i][0] for i in range(len(resumed))])
    np.testing.assert_array_equal(np.sort(second), X)
    assert not np.array_equal(first, second)
    streamed = list(itertools.islice(batches.stream(), 2 * len(batches)))
    np.testing.assert_array_equal(np.concatenate([b[0] for b in streamed]), [*first, *second])


def test_the_stream_and_dataset_give_the_batches_of_each_epoch_in_turn():
    y = np.array([0] * 30 + [1] * 10)
    X, weights = np.arange(40), np.linspace(1, 2, 40).astype(np.float32)
    expected = []
    for epoch in (2, 3, 4):
        of_epoch = EpochBatches(X, y, weights, batch_size=8, seed=0, epoch=epoch)
        expected += [of_epoch[i] for i in range(len(of_epoch))]
    batches = EpochBatches(X, y, weights, batch_size=8, seed=0, epoch=2)
    dataset = batches.dataset()
    # an autotuned iterator stalls fit for up to a minute when it is destroyed
    assert dataset.options().autotune.enabled is False
    n = len(expected)
    for streamed in (itertools.islice(batches.stream(), n), dataset.take(n)):
        got = list(streamed)
        assert len(got) == len(expected)
        for batch, want in zip(got, expected, strict=True):
            assert len(batch) == 3
            for part, wanted in zip(batch, want, strict=True):
                np.testing.assert_array_equal(np.asarray(part), wanted)
    assert batches.epoch == 2  # reading the stream changes nothing


def test_fit_trains_on_the_dataset_one_epoch_after_another(tiny_sample, tiny_params, monkeypatch):
    import keras

    from idcclf import IDCClassifier

    X, y, groups = tiny_sample
    seen = {}
    original = keras.Model.fit

    def fit(self, x=None, *args, **kwargs):
        seen.update(kwargs, x=x)
        return original(self, x, *args, **kwargs)

    monkeypatch.setattr(keras.Model, "fit", fit)
    clf = IDCClassifier(**{**tiny_params, "epochs": 2}).fit(X, y, groups=groups)
    assert len(clf.history_["loss"]) == 2
    assert seen["x"].options().autotune.enabled is False
    n_training = np.isin(groups, clf.training_groups_).sum()
    assert 0 < n_training < len(y)  # a validation part was held out
    assert seen["steps_per_epoch"] == -(-n_training // clf.batch_size)
    assert seen["shuffle"] is False  # the batches come shuffled


def test_fit_traces_its_training_step_once(tiny_sample, tiny_params, monkeypatch):
    # Variables made inside the first step (optimizer slots, the accuracy metric's
    # totals) would make TensorFlow trace it twice.
    import keras

    from idcclf import IDCClassifier

    X, y, groups = tiny_sample
    traced = []
    original = keras.Model.train_step

    def train_step(self, data):
        traced.append(len(self.optimizer.variables))
        return original(self, data)

    monkeypatch.setattr(keras.Model, "train_step", train_step)
    clf = IDCClassifier(**{**tiny_params, "epochs": 2}).fit(X, y, groups=groups)
    assert len(traced) == 1
    # every slot of the optimizer existed when the step was traced (2 before it is built)
    assert traced[0] == len(clf.model_.optimizer.variables) > 2
    assert np.isfinite(clf.history_["accuracy"]).all()


def test_building_the_training_state_first_changes_no_result(tiny_sample, tiny_params, monkeypatch):
    from idcclf import IDCClassifier, _training

    X, y, groups = tiny_sample
    params = {**tiny_params, "epochs": 2}
    built = IDCClassifier(**params).fit(X, y, groups=groups)
    monkeypatch.setattr(_training, "build_training_state", lambda model, batch: None)
    lazy = IDCClassifier(**params).fit(X, y, groups=groups)
    assert built.history_ == lazy.history_
    for a, b in zip(built.model_.get_weights(), lazy.model_.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_batches_and_subsets_of_rows_match_those_of_a_copy():
    # fit trains on the rows of X outside its validation part, without copying them
    X = np.arange(60) * 10
    rows = np.sort(np.random.default_rng(1).choice(60, 40, replace=False))
    y = np.array([0, 1] * 20)
    of_rows = EpochBatches(X, y, None, batch_size=8, seed=0, rows=rows)
    of_copy = EpochBatches(X[rows], y, None, batch_size=8, seed=0)
    n = 2 * len(of_copy)  # two epochs
    for a, b in zip(
        itertools.islice(of_rows.stream(), n), itertools.islice(of_copy.stream(), n), strict=True
    ):
        np.testing.assert_array_equal(a[0], b[0])
        np.testing.assert_array_equal(a[1], b[1])
    np.testing.assert_array_equal(random_subset(X, 10, 3, rows), random_subset(X[rows], 10, 3))
    assert set(random_subset(X, 100, 3, rows)) == set(X[rows])


def test_fit_holds_out_validation_rows_without_copying_the_training_patches(tiny_sample):
    from idcclf import IDCClassifier
    from idcclf._training import split

    X, y, groups = tiny_sample
    clf = IDCClassifier(validation_fraction=0.25, random_state=0)
    clf.classes_, clf._random_state = np.array([0, 1]), 0
    data = split(clf, X, y, None, groups)
    assert data.X is X
    assert set(groups[data.rows]) == set(data.training_groups)
    assert set(groups[data.rows]).isdisjoint(data.validation_groups)
    np.testing.assert_array_equal(data.y, y[data.rows])
    assert len(data.rows) + len(data.validation[1]) == len(y)


def test_undersampled_epochs_are_balanced_and_use_every_patch():
    y = np.array([0] * 25 + [1] * 10)
    X, weights = np.arange(35), np.linspace(1, 2, 35)
    assert len(EpochBatches(X, y, weights, 8, seed=3, undersample=True)) == 3  # 20 a epoch
    seen = []
    for epoch in range(3):
        batches = EpochBatches(X, y, weights, batch_size=8, seed=3, undersample=True, epoch=epoch)
        parts = [batches[i] for i in range(len(batches))]
        x = np.concatenate([p[0] for p in parts])
        np.testing.assert_array_equal(np.concatenate([p[2] for p in parts]), weights[x])
        assert np.sum(y[x] == 1) == np.sum(y[x] == 0) == 10
        assert set(x[y[x] == 1]) == set(range(25, 35))  # the rare class: all, every epoch
        seen += list(x[y[x] == 0])
    # 3 epochs of 10 draws cover the 25 common patches, none twice within a pass of 25
    assert set(seen) == set(range(25))
    assert len(set(seen[:20])) == 20


def test_mixup_blends_patch_label_and_weight_alike():
    # Class-1 patches are all 100, class-0 ones 0: a blend's value is 100 times its
    # class-1 probability, and its weight 1 + 2 times it (weights 1 and 3).
    y = np.array([0] * 30 + [1] * 10)
    X = np.where(y == 1, 100, 0).astype(np.uint8).reshape(-1, 1, 1, 1) * np.ones(
        (1, 2, 2, 3), np.uint8
    )
    weights = np.where(y == 1, 3.0, 1.0).astype(np.float32)
    batches = EpochBatches(X, y, weights, batch_size=8, seed=0, mixup=0.4, n_classes=2)
    parts = list(itertools.islice(batches.stream(), 2 * len(batches)))
    patches = np.concatenate([p[0] for p in parts])
    labels = np.concatenate([p[1] for p in parts])
    mixed_weights = np.concatenate([p[2] for p in parts])
    assert patches.dtype == labels.dtype == np.float32 and labels.shape == (80, 2)
    np.testing.assert_allclose(labels.sum(axis=1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(patches[:, 0, 0, 0], 100 * labels[:, 1], rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(mixed_weights, 1 + 2 * labels[:, 1], rtol=1e-5)
    assert np.all(patches == patches[:, :1, :1, :1])  # each patch blended as a whole
    assert 0.1 < np.mean((labels[:, 1] > 0.01) & (labels[:, 1] < 0.99)) < 0.9
    # seeded by the epoch and the place in it, so a resumed fit blends alike
    resumed = EpochBatches(X, y, weights, batch_size=8, seed=0, epoch=1, mixup=0.4, n_classes=2)
    for i in range(len(resumed)):
        for part, want in zip(resumed[i], parts[len(batches) + i], strict=True):
            np.testing.assert_array_equal(part, want)
    for part, want in zip(batches.first(), (patches[:1], labels[:1]), strict=False):
        assert part.dtype == want.dtype and part.shape[1:] == want.shape[1:]


FIT_CHILD = r"""
import sys
import numpy as np
from idcclf import IDCClassifier, load_sample

bunch = load_sample(patients=["8863", "8867", "8914", "8950"])
keep = np.sort(np.random.default_rng(0).choice(len(bunch.target), 200, replace=False))
X, y, groups = bunch.data[keep], bunch.target[keep], bunch.groups[keep]
clf = IDCClassifier(filters=(4, 8, 8), dense_units=8, epochs=EPOCHS, random_state=0)
print("fit starts", file=sys.stderr, flush=True)
clf.fit(X, y, groups=groups)
print("fit ends", file=sys.stderr, flush=True)
"""


def test_a_fit_prints_nothing_from_tensorflow_per_epoch():
    import os
    import re
    import subprocess
    import sys
    from collections import Counter

    epochs = 3
    result = subprocess.run(
        [sys.executable, "-c", FIT_CHILD.replace("EPOCHS", str(epochs))],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "0"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    during = result.stderr.split("fit starts\n", 1)[1].split("fit ends\n", 1)[0]
    # The two messages that used to come per epoch (or per layer and epoch):
    assert "retracing" not in during, during
    assert "use_unbounded_threadpool" not in during, during
    # ... and no other line comes once per epoch either (timestamps and ids aside).
    lines = [
        re.sub(r"^[IWEF]\d{4} [\d:.]+\s+\d+ |0x[0-9a-f]+", "", line) for line in during.splitlines()
    ]
    assert all(count < epochs for count in Counter(lines).values()), during


def test_fit_re_estimates_batch_norm_on_a_subset_of_the_training_part(tiny_sample, monkeypatch):
    from _tiny import TINY_FIT

    from idcclf import IDCClassifier, _training

    X, y, groups = tiny_sample
    seen = []
    monkeypatch.setattr(_training, "RECALIBRATION_SAMPLES", 50)
    monkeypatch.setattr(_training, "recalibrate_batch_norm", lambda model, X: seen.append(X))
    clf = IDCClassifier(**{**TINY_FIT, "validation_fraction": 0.3}).fit(X, y, groups=groups)
    (subset,) = seen  # the one after training (each epoch's goes through idcclf.callbacks)
    assert subset.shape == (50, *X.shape[1:])
    rows = {row.tobytes(): patient for row, patient in zip(X, groups, strict=True)}
    patients = {rows[row.tobytes()] for row in subset}
    assert patients <= set(clf.training_groups_)
    assert patients.isdisjoint(clf.validation_groups_)
