"""IDCClassifier on real patches from the bundled sample."""

import io
import warnings
from pathlib import Path

import joblib
import numpy as np
import pytest
from sklearn import config_context
from sklearn.base import clone, is_classifier
from sklearn.model_selection import GridSearchCV, GroupKFold
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer

from idcclf import IDCClassifier
from idcclf.estimator import TrainingDivergedError


def test_is_a_classifier_with_tags():
    clf = IDCClassifier()
    assert is_classifier(clf)
    tags = clf.__sklearn_tags__()
    assert tags.estimator_type == "classifier"
    assert tags.target_tags.required
    assert not tags.input_tags.allow_nan


def test_params_stored_unchanged_and_cloned():
    clf = IDCClassifier(filters=(8, 16), optimizer="adam", learning_rate=1e-4, epochs=3)
    params = clf.get_params()
    assert params["filters"] == (8, 16) and params["optimizer"] == "adam"
    assert params["learning_rate"] == 1e-4 and params["epochs"] == 3
    assert set(params) == set(IDCClassifier.__init__.__code__.co_varnames[1:]) & set(params)
    assert "model" not in params and "loss" not in params
    twin = clone(clf)
    assert twin.get_params() == params
    twin.set_params(block_dropout=0.25)
    assert twin.block_dropout == 0.25 and clf.block_dropout == 0.1


def test_fit_learns_classes_history_and_probabilities(tiny_classifier, tiny_sample, tiny_params):
    X, y, _ = tiny_sample
    np.testing.assert_array_equal(tiny_classifier.classes_, [0, 1])
    assert set(tiny_classifier.history_) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert all(len(v) == tiny_params["epochs"] for v in tiny_classifier.history_.values())
    proba = tiny_classifier.predict_proba(X[:20])
    assert proba.shape == (20, 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-5)
    np.testing.assert_array_equal(tiny_classifier.predict(X[:20]), proba.argmax(axis=1))
    assert 0.0 <= tiny_classifier.score(X, y) <= 1.0


def test_rows_and_images_give_the_same_model(tiny_sample, tiny_params):
    X, y, _ = tiny_sample
    a = IDCClassifier(**tiny_params, validation_fraction=0).fit(X, y)
    b = IDCClassifier(**tiny_params, validation_fraction=0).fit(X.reshape(len(X), -1), y)
    np.testing.assert_array_equal(a.predict_proba(X[:10]), b.predict_proba(X[:10]))
    # a model tiny_classifier on images also accepts rows at predict time, and vice versa
    np.testing.assert_array_equal(a.predict_proba(X[:10].reshape(10, -1)), b.predict_proba(X[:10]))


def test_same_seed_same_predictions_other_seed_differs(tiny_classifier, tiny_sample, tiny_params):
    X, y, groups = tiny_sample
    again = IDCClassifier(**tiny_params).fit(X, y, groups=groups)
    np.testing.assert_array_equal(
        again.predict_proba(X[:30]), tiny_classifier.predict_proba(X[:30])
    )
    other = IDCClassifier(**{**tiny_params, "random_state": 1}).fit(X, y, groups=groups)
    assert not np.array_equal(other.predict_proba(X[:30]), tiny_classifier.predict_proba(X[:30]))


def test_joblib_round_trip_predicts_identically(tiny_classifier, tiny_sample):
    X, _, _ = tiny_sample
    buffer = io.BytesIO()
    joblib.dump(tiny_classifier, buffer)
    buffer.seek(0)
    loaded = joblib.load(buffer)
    np.testing.assert_array_equal(loaded.predict_proba(X), tiny_classifier.predict_proba(X))
    assert loaded.history_ == tiny_classifier.history_


def test_string_labels(tiny_sample, tiny_params):
    X, y, _ = tiny_sample
    labels = np.where(y == 1, "IDC", "benign")
    clf = IDCClassifier(**tiny_params, validation_fraction=0).fit(X, labels)
    np.testing.assert_array_equal(clf.classes_, ["IDC", "benign"])
    assert set(clf.predict(X[:20])) <= {"IDC", "benign"}


def test_uint8_input_is_not_copied(tiny_classifier, tiny_sample):
    X, _, _ = tiny_sample
    images, _ = tiny_classifier._validate_data(X)
    assert images.dtype == np.uint8 and np.shares_memory(images, X)
    rows = X.reshape(len(X), -1)
    images, _ = tiny_classifier._validate_data(rows)
    assert np.shares_memory(images, X)


def test_float_pixels_on_255_scale_match_uint8(tiny_classifier, tiny_sample):
    X, _, _ = tiny_sample
    np.testing.assert_allclose(
        tiny_classifier.predict_proba(X[:10].astype(np.float64)),
        tiny_classifier.predict_proba(X[:10]),
        rtol=1e-5,
    )


def test_prescaled_floats_warn_about_rescale(tiny_sample, tiny_params):
    X, y, _ = tiny_sample
    with pytest.warns(UserWarning, match="rescale=None"):
        IDCClassifier(**{**tiny_params, "epochs": 1}, validation_fraction=0).fit(
            X[:64] / 255.0, y[:64]
        )


def test_early_stopping_restores_best_epoch(tiny_sample, tiny_params):
    X, y, groups = tiny_sample
    clf = IDCClassifier(
        **{**tiny_params, "epochs": 6}, early_stopping=True, n_iter_no_change=1, learning_rate=0.5
    ).fit(X, y, groups=groups)
    val_loss = clf.history_["val_loss"]
    assert clf.best_epoch_ == int(np.argmin(val_loss)) + 1
    assert len(val_loss) <= 6


def test_groups_reach_fit_through_pipeline_and_grid_search(tiny_sample, tiny_params):
    X, y, groups = tiny_sample
    with config_context(enable_metadata_routing=True):
        pipe = Pipeline(
            [
                ("identity", FunctionTransformer()),
                ("clf", IDCClassifier(**{**tiny_params, "epochs": 1})),
            ]
        )
        pipe.fit(X.reshape(len(X), -1), y, groups=groups)
        assert pipe[-1].validation_groups_ is not None

        search = GridSearchCV(
            IDCClassifier(**{**tiny_params, "epochs": 1}),
            {"block_dropout": [0.25]},
            cv=GroupKFold(n_splits=2),
        )
        search.fit(X, y, groups=groups)
        assert search.best_estimator_.validation_groups_ is not None


def test_nan_loss_stops_with_a_clear_error(tiny_params):
    rng = np.random.default_rng(0)
    # near float32's largest value: the first convolution overflows, the loss is NaN
    wild = rng.uniform(1e38, 3e38, (64, 50, 50, 3)).astype(np.float32)
    y = np.arange(64) % 2
    clf = IDCClassifier(
        **{**tiny_params, "epochs": 3},
        batch_norm=False,
        rescale=None,
        optimizer="sgd",
        learning_rate=1e6,
        validation_fraction=0,
        augment=False,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(TrainingDivergedError, match="learning_rate"):
            clf.fit(wild, y)


@pytest.mark.parametrize(
    "make_X, make_y, match",
    [
        (lambda X: X[:, :40], lambda y: y, r"shape \(40, 50, 3\)"),
        (lambda X: X.reshape(len(X), -1)[:, :100], lambda y: y, "100 features"),
        (lambda X: X[:, :, :, :2], lambda y: y, r"\(50, 50, 2\)"),
        (lambda X: X[:0], lambda y: y[:0], "0 sample"),
        (lambda X: X, lambda y: y[:-1], "inconsistent numbers of samples"),
        (lambda X: X, lambda y: np.zeros_like(y), "single class"),
        (lambda X: X[:1], lambda y: y[:1], "single class|n_samples = 1"),
        (lambda X: X.astype(bool), lambda y: y, "dtype bool"),
        (lambda X: np.where(X > 100, np.nan, X.astype(float)), lambda y: y, "NaN"),
        (lambda X: np.where(X > 100, np.inf, X.astype(float)), lambda y: y, "infinity"),
    ],
)
def test_bad_fit_input_names_the_culprit(tiny_sample, make_X, make_y, match, tiny_params):
    X, y, _ = tiny_sample
    with pytest.raises(ValueError, match=match):
        IDCClassifier(**tiny_params).fit(make_X(X), make_y(y))


def test_bad_predict_input_names_the_shape(tiny_classifier, tiny_sample):
    X, _, _ = tiny_sample
    with pytest.raises(ValueError, match=r"expecting images of shape \(50, 50, 3\)"):
        tiny_classifier.predict_proba(X[:, :48, :48])
    with pytest.raises(ValueError, match="expecting 7500 features"):
        tiny_classifier.predict(X.reshape(len(X), -1)[:, :-3])
    with pytest.raises(ValueError, match="NaN"):
        tiny_classifier.predict(np.full((2, 50, 50, 3), np.nan))


@pytest.mark.parametrize(
    "params, match",
    [
        (dict(optimizer="adamw"), "optimizer must be one of"),
        (dict(lr_schedule="linear"), "lr_schedule must be one of"),
        (dict(learning_rate=0), "learning_rate"),
        (dict(epochs=0), "epochs"),
        (dict(validation_fraction=1.5), "validation_fraction"),
        (dict(early_stopping=True, validation_fraction=0), "validation_fraction"),
        (dict(class_weight="heavy"), "class_weight"),
    ],
)
def test_bad_parameters_name_the_parameter(tiny_sample, params, match, tiny_params):
    X, y, _ = tiny_sample
    with pytest.raises(ValueError, match=match):
        IDCClassifier(**{**tiny_params, **params}).fit(X, y)


def test_cosine_schedule_decays_the_learning_rate_every_epoch(tiny_sample, tiny_params):
    X, y, _ = tiny_sample
    clf = IDCClassifier(**{**tiny_params, "epochs": 4}, learning_rate=0.02, lr_schedule="cosine")
    clf.fit(X[:64], y[:64])
    expected = [0.02 * (1 + np.cos(np.pi * epoch / 4)) / 2 for epoch in range(4)]
    np.testing.assert_allclose(clf.history_["learning_rate"], expected, rtol=1e-6)
    np.testing.assert_allclose(
        float(clf.model_.optimizer.learning_rate.numpy()), expected[-1], rtol=1e-6
    )
    constant = IDCClassifier(**{**tiny_params, "epochs": 2}, learning_rate=0.02).fit(X[:64], y[:64])
    assert "learning_rate" not in constant.history_
    np.testing.assert_allclose(float(constant.model_.optimizer.learning_rate.numpy()), 0.02)


def test_one_cycle_warms_up_then_decays_before_every_batch(tiny_sample, tiny_params):
    from idcclf._training import one_cycle

    rates = [one_cycle(0.02, e, 10) for e in np.linspace(0, 10, 101)]
    peak = int(np.argmax(rates))
    assert rates[0] == pytest.approx(0.02 / 25) and rates[peak] == pytest.approx(0.02)
    assert peak == 30  # 30 % of the epochs
    assert np.all(np.diff(rates[: peak + 1]) > 0) and np.all(np.diff(rates[peak:]) < 0)
    assert rates[-1] == pytest.approx(0.02 / 1e4)

    X, y, _ = tiny_sample
    params = {**tiny_params, "epochs": 2, "batch_size": 16, "learning_rate": 0.02}
    clf = IDCClassifier(**params, lr_schedule="one_cycle")
    clf.fit(X[:64], y[:64])  # 4 batches an epoch: the last one starts at 3/4 of the epoch
    expected = [one_cycle(0.02, epoch + 3 / 4, 2) for epoch in range(2)]
    np.testing.assert_allclose(clf.history_["learning_rate"], expected, rtol=1e-5)
    assert expected[0] != expected[1]


def test_test_time_augmentation_averages_the_symmetric_views(tiny_classifier, tiny_sample):
    X, _, _ = tiny_sample
    X = X[:10]
    views = [np.rot90(X, turn, axes=(1, 2)) for turn in range(4)]
    views += [view[:, :, ::-1] for view in views]
    plain = [tiny_classifier.predict_proba(np.ascontiguousarray(view)) for view in views]
    assert np.abs(plain[0] - plain[5]).max() > 1e-4, "views should differ for this check"
    # a prediction-only setting: it can be switched on a tiny_classifier model
    tiny_classifier.set_params(test_time_augmentation=True)
    try:
        np.testing.assert_allclose(
            tiny_classifier.predict_proba(X), np.mean(plain, axis=0), atol=1e-5
        )
    finally:
        tiny_classifier.set_params(test_time_augmentation=False)
    np.testing.assert_allclose(tiny_classifier.predict_proba(X), plain[0], atol=1e-6)


def test_test_time_augmentation_of_rows_uses_the_four_flips(tiny_sample, tiny_params):
    X, y, _ = tiny_sample
    rows = X[:64, :2].reshape(64, 1, -1)[:, 0]  # 64 rows of 300 values: 1 x 300 images
    clf = IDCClassifier(**tiny_params, input_shape=None, validation_fraction=0).fit(rows, y[:64])
    flips = [rows, rows[:, ::-1]]
    expected = np.mean([clf.predict_proba(np.ascontiguousarray(v)) for v in flips], axis=0)
    # a 1-pixel-high image is its own upside-down flip, so the 4 flips are 2 pairs
    clf.set_params(test_time_augmentation=True)
    np.testing.assert_allclose(clf.predict_proba(rows), expected, atol=1e-5)


def test_model_saved_before_a_parameter_existed_loads_with_its_default(
    tiny_classifier, tiny_sample
):
    X, _, _ = tiny_sample
    state = tiny_classifier.__getstate__()
    del state["test_time_augmentation"], state["lr_schedule"]
    old = IDCClassifier.__new__(IDCClassifier)
    old.__setstate__(state)
    assert old.get_params()["test_time_augmentation"] is False
    assert old.get_params()["lr_schedule"] == "constant"
    np.testing.assert_array_equal(old.predict_proba(X[:5]), tiny_classifier.predict_proba(X[:5]))


def test_groups_must_match_samples(tiny_sample, tiny_params):
    X, y, groups = tiny_sample
    with pytest.raises(ValueError, match="groups"):
        IDCClassifier(**tiny_params).fit(X, y, groups=groups[:-1])


def test_no_partial_fit():
    assert not hasattr(IDCClassifier(), "partial_fit")


def test_one_patch_gives_one_row(tiny_classifier, tiny_sample):
    X, _, _ = tiny_sample
    proba = tiny_classifier.predict_proba(X[:1])
    assert proba.shape == (1, 2)
    np.testing.assert_allclose(
        proba, tiny_classifier.predict_proba(X[:3])[:1], rtol=1e-5, atol=1e-6
    )
    assert tiny_classifier.predict(X[:1]).shape == (1,)


def test_score_refuses_labels_never_seen_at_fit(tiny_classifier, tiny_sample):
    X, y, _ = tiny_sample
    with pytest.raises(ValueError, match=r"labels never seen at fit: \[7\].*classes \[0, 1\]"):
        tiny_classifier.score(X, np.where(y == 1, 7, y))
    with pytest.raises(ValueError, match=r"never seen at fit: \['0', '1'\]"):
        tiny_classifier.score(X, y.astype(str))
    assert 0 <= tiny_classifier.score(X, y) <= 1


def test_object_arrays_of_numbers_work_and_of_text_fail(tiny_classifier, tiny_sample):
    X, _, _ = tiny_sample
    np.testing.assert_allclose(
        tiny_classifier.predict_proba(X[:4].astype(object)),
        tiny_classifier.predict_proba(X[:4]),
        rtol=1e-5,
    )
    text = X[:4].astype(object)
    text[0, 0, 0, 0] = "pixel"
    with pytest.raises(ValueError, match="pixel"):
        tiny_classifier.predict_proba(text)


def test_values_beyond_float32_are_refused(tiny_classifier, tiny_sample):
    X, _, _ = tiny_sample
    huge = X[:2].astype(np.float64)
    huge[0, 0, 0, 0] = 1e39
    with pytest.raises(ValueError, match="beyond float32"):
        tiny_classifier.predict_proba(huge)


def test_stain_jitter_is_a_training_layer(tiny_sample, tiny_params):
    from keras.src.trainers.trainer import model_supports_jit

    from idcclf.stain import RandomStainJitter

    X, y, groups = tiny_sample
    clf = IDCClassifier(**{**tiny_params, "epochs": 1}, stain_jitter=0.05).fit(X, y, groups=groups)
    layers = [layer for layer in clf.model_.layers if isinstance(layer, RandomStainJitter)]
    assert len(layers) == 1 and layers[0].value_range == (0.0, 255.0)
    assert layers[0].scale == layers[0].shift == 0.05
    # Identity at inference: the same weights without the layer predict the same.
    assert clf.predict_proba(X[:8]).shape == (8, 2)
    plain = IDCClassifier(**{**tiny_params, "epochs": 1}).fit(X, y)
    assert not any(isinstance(layer, RandomStainJitter) for layer in plain.model_.layers)
    # The geometric augmentation has no XLA kernel, so Keras must not try XLA (its
    # default on a GPU); without augmentation nothing stops it.
    assert not model_supports_jit(plain.model_)
    no_aug = IDCClassifier(**{**tiny_params, "epochs": 1}, augment=False).fit(X, y)
    assert model_supports_jit(no_aug.model_)
    with pytest.raises(ValueError, match="stain_jitter"):
        IDCClassifier(**tiny_params, stain_jitter=1.5).fit(X, y)


LEGACY = Path(__file__).resolve().parent / "data"


def test_model_pickled_by_an_earlier_version_predicts_the_same():
    # tests/data/make_legacy_model.py wrote these with the code of an earlier version:
    # the pickle path and the saved state must keep loading and predicting.
    clf = joblib.load(LEGACY / "legacy_model.joblib")
    assert type(clf) is IDCClassifier
    with np.load(LEGACY / "legacy_model.npz") as saved:
        X, proba, proba_tta = saved["X"], saved["proba"], saved["proba_tta"]
    np.testing.assert_allclose(clf.predict_proba(X), proba, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(clf.predict(X), clf.classes_[proba.argmax(axis=1)])
    clf.set_params(test_time_augmentation=True)
    np.testing.assert_allclose(clf.predict_proba(X), proba_tta, rtol=1e-5, atol=1e-6)


def test_pretrained_folder_of_the_previous_release_predicts_as_before():
    from idcclf import load_pretrained

    # written by the previous release's save_pretrained (tests/data/make_legacy_model.py)
    clf = load_pretrained(LEGACY / "legacy_pretrained")
    with np.load(LEGACY / "legacy_model.npz") as saved:
        X, proba = saved["X"], saved["pretrained_folder_proba"]
    np.testing.assert_allclose(clf.predict_proba(X), proba, rtol=1e-5, atol=1e-6)
    assert clf.input_range_ is None  # not recorded then: nothing to check


def test_predict_refuses_patches_on_another_scale(tiny_classifier, tiny_sample):
    X, y, _ = tiny_sample
    assert tiny_classifier.input_range_ == (float(X.min()), float(X.max()))
    scaled = X[:8] / 255.0
    for method in (tiny_classifier.predict_proba, tiny_classifier.predict):
        with pytest.raises(ValueError, match="trained on 0-255 pixels.*X \\* 255"):
            method(scaled)
    with pytest.raises(ValueError, match="trained on 0-255 pixels"):
        tiny_classifier.score(scaled, y[:8])
    # dark patches are fine: uint8 of small values, and float black
    assert tiny_classifier.predict_proba(np.ones_like(X[:4])).shape == (4, 2)
    assert tiny_classifier.predict_proba(np.zeros(X[:4].shape, np.float32)).shape == (4, 2)
    tiny_classifier.set_params(input_range_check="warn")
    try:
        with pytest.warns(UserWarning, match="X \\* 255"):
            assert tiny_classifier.predict_proba(scaled).shape == (8, 2)
    finally:
        tiny_classifier.set_params(input_range_check="error")


def test_model_trained_on_unit_floats_refuses_pixels(tiny_sample, tiny_params):
    X, y, _ = tiny_sample
    clf = IDCClassifier(**{**tiny_params, "epochs": 1}, rescale=None, validation_fraction=0)
    clf.fit(X[:64] / 255.0, y[:64])
    assert clf.input_range_[1] <= 1.0
    with pytest.raises(ValueError, match="trained on values in \\[0, 1\\].*X / 255"):
        clf.predict(X[:4])
    assert clf.predict(X[:4] / 255.0).shape == (4,)


def test_bad_weights_are_refused_naming_the_parameter(tiny_sample, tiny_params):
    X, y, _ = tiny_sample
    weights = np.ones(len(y))
    for bad, match in ((-1.0, "Negative values.*sample_weight"), (np.nan, "sample_weight.*NaN")):
        weights[3] = bad
        with pytest.raises(ValueError, match=match):
            IDCClassifier(**tiny_params).fit(X, y, sample_weight=weights)
    with pytest.raises(ValueError, match=r"class_weight\[1\]=-1"):
        IDCClassifier(**tiny_params, class_weight={0: 1, 1: -1}).fit(X, y)


def test_zero_weights_with_patients(tiny_sample, tiny_params):
    # scikeras drops zero-weighted samples: the patients must follow them
    X, y, groups = tiny_sample
    weights = np.where(np.arange(len(y)) % 4 == 0, 0.0, 1.0)
    clf = IDCClassifier(**{**tiny_params, "epochs": 1}).fit(
        X, y, sample_weight=weights, groups=groups
    )
    assert set(clf.training_groups_) | set(clf.validation_groups_) == set(groups)


def test_dataframe_column_names_are_recorded_and_checked(tiny_sample, tiny_params):
    pd = pytest.importorskip("pandas")
    X, y, _ = tiny_sample
    frame = pd.DataFrame(X[:64].reshape(64, -1), columns=[f"v{i}" for i in range(7500)])
    clf = IDCClassifier(**{**tiny_params, "epochs": 1}, validation_fraction=0).fit(frame, y[:64])
    np.testing.assert_array_equal(clf.feature_names_in_, frame.columns)
    assert clf.predict_proba(frame[:3]).shape == (3, 2)
    with pytest.raises(ValueError, match="feature names should match"):
        clf.predict(frame[frame.columns[::-1]])
    with pytest.raises(ValueError, match="feature names should match"):
        clf.predict(frame.rename(columns={"v0": "red"}))


def test_channels_first_images_are_refused(tiny_classifier, tiny_sample, tiny_params):
    X, y, _ = tiny_sample
    first = X.transpose(0, 3, 1, 2)
    with pytest.raises(ValueError, match=r"channels last.*np\.moveaxis\(X, 1, -1\)"):
        IDCClassifier(**tiny_params, input_shape=None).fit(first, y)
    with pytest.raises(ValueError, match="channels-first"):
        tiny_classifier.predict(first[:2])


def test_training_and_validation_patients_are_recorded(tiny_classifier, tiny_sample):
    _, _, groups = tiny_sample
    train, val = set(tiny_classifier.training_groups_), set(tiny_classifier.validation_groups_)
    assert train and val and not train & val and train | val == set(groups)


def test_label_smoothing_reaches_the_loss_and_pickles(tiny_sample, tiny_params):
    X, y, groups = tiny_sample
    assert IDCClassifier().get_params()["label_smoothing"] == 0.0
    clf = IDCClassifier(**{**tiny_params, "epochs": 1}, label_smoothing=0.2).fit(
        X, y, groups=groups
    )
    assert clf.model_.loss.label_smoothing == 0.2
    loaded = joblib.load(_dumped(clf))
    assert loaded.model_.loss.label_smoothing == 0.2
    np.testing.assert_array_equal(loaded.predict_proba(X[:8]), clf.predict_proba(X[:8]))


def test_weight_decay_shrinks_the_kernels_only_and_pickles(tiny_sample, tiny_params):
    X, y, groups = tiny_sample
    assert IDCClassifier().get_params()["weight_decay"] == 0.0
    clf = IDCClassifier(**{**tiny_params, "epochs": 1}, weight_decay=0.5).fit(X, y, groups=groups)
    assert float(clf.model_.optimizer.weight_decay) == 0.5
    # A step with zero gradients moves nothing but what the decay shrinks.
    optimizer = clf.model_.optimizer
    variables = clf.model_.trainable_variables
    before = [v.numpy() for v in variables]
    optimizer.apply_gradients([(np.zeros(v.shape, "float32"), v) for v in variables])
    rate = float(optimizer.learning_rate)
    for variable, old in zip(variables, before, strict=True):
        factor = 1.0 - rate * 0.5 if variable.name.endswith("kernel") else 1.0
        np.testing.assert_allclose(variable.numpy(), old * factor, rtol=1e-6, err_msg=variable.path)
    assert any(v.name.endswith("kernel") for v in variables)
    assert any(v.name in ("bias", "gamma", "beta") for v in variables)
    loaded = joblib.load(_dumped(clf))
    assert loaded.weight_decay == 0.5
    np.testing.assert_array_equal(loaded.predict_proba(X[:8]), clf.predict_proba(X[:8]))


def test_mixup_trains_on_blends_and_pickles(tiny_sample, tiny_params):
    X, y, groups = tiny_sample
    assert IDCClassifier().get_params()["mixup"] == 0.0
    clf = IDCClassifier(**{**tiny_params, "epochs": 1}, mixup=0.4).fit(X, y, groups=groups)
    assert np.isfinite(clf.history_["loss"]).all() and np.isfinite(clf.history_["val_loss"]).all()
    proba = clf.predict_proba(X[:8])
    assert proba.shape == (8, 2) and np.allclose(proba.sum(axis=1), 1, atol=1e-5)
    loaded = joblib.load(_dumped(clf))
    assert loaded.mixup == 0.4
    np.testing.assert_array_equal(loaded.predict_proba(X[:8]), proba)


def test_undersampling_trains_on_balanced_epochs(tiny_sample, tiny_params):
    X, y, _ = tiny_sample
    keep = np.flatnonzero(y == 0)[:60].tolist() + np.flatnonzero(y == 1)[:20].tolist()
    X, y = X[keep], y[keep]
    clf = IDCClassifier(**{**tiny_params, "batch_size": 8}, undersample=True, validation_fraction=0)
    clf.fit(X, y)
    # each epoch: the 20 patches of the rarer class and 20 of the other, 5 batches of 8
    assert int(clf.model_.optimizer.iterations.numpy()) == 2 * 5
    # the epochs are balanced already: 'balanced' weights are all 1, the same fit as None
    params = {**tiny_params, "batch_size": 8, "undersample": True, "validation_fraction": 0}
    unweighted = IDCClassifier(**params, class_weight=None).fit(X, y)
    weighted = IDCClassifier(**params, class_weight="balanced").fit(X, y)
    np.testing.assert_array_equal(weighted.predict_proba(X), unweighted.predict_proba(X))
    with pytest.raises(ValueError, match="undersample=True"):
        IDCClassifier(undersample=True, class_weight={0: 1.0, 1: 3.0}).fit(X, y)


def test_legacy_model_has_no_range_to_check():
    clf = joblib.load(LEGACY / "legacy_model.joblib")
    with np.load(LEGACY / "legacy_model.npz") as saved:
        X = saved["X"]
    assert clf.input_range_ is None and clf.training_groups_ is None
    assert clf.predict_proba(X / 255.0).shape == (len(X), 2)  # not checked, no error


def _dumped(clf):
    buffer = io.BytesIO()
    joblib.dump(clf, buffer)
    buffer.seek(0)
    return buffer
