"""Compiled inference and exact batch-norm re-estimation (idcclf._ops)."""

import gc
import weakref

import keras
import numpy as np
import pytest

from idcclf import _ops, build_cancernet
from idcclf._ops import PREDICT_BATCH_SIZE, predict_in_batches, recalibrate_batch_norm

SMALL = dict(filters=(2, 4), convs_per_block=(1, 1), dense_units=4)


def small_net(shape=(8, 8, 3)):
    keras.utils.set_random_seed(0)
    return build_cancernet(shape, **SMALL)


@pytest.fixture(scope="module")
def patches():
    # more than two inference batches, the last one partial
    return np.random.default_rng(0).integers(
        0, 256, (2 * PREDICT_BATCH_SIZE + 22, 8, 8, 3), np.uint8
    )


def test_batched_inference_equals_keras_predict(patches):
    model = small_net()
    np.testing.assert_allclose(
        predict_in_batches(model, patches), model.predict(patches, verbose=0), atol=1e-6
    )
    assert predict_in_batches(model, patches[:1]).shape == (1, 2)


@pytest.mark.parametrize("shape, n_views", [((8, 8, 3), 8), ((6, 10, 3), 4)])
def test_symmetric_inference_averages_the_flips_and_quarter_turns(shape, n_views):
    X = np.random.default_rng(1).integers(0, 256, (20, *shape), np.uint8)
    model = small_net(shape)
    turns = range(4) if shape[0] == shape[1] else (0, 2)
    views = [np.rot90(X, turn, axes=(1, 2)) for turn in turns]
    views += [view[:, :, ::-1] for view in views]
    assert len(views) == n_views
    expected = np.mean([model.predict(np.ascontiguousarray(v), verbose=0) for v in views], axis=0)
    np.testing.assert_allclose(predict_in_batches(model, X, symmetric=True), expected, atol=1e-6)


def test_recalibration_sets_the_exact_statistics_of_each_layer_input(patches):
    model = small_net()
    layers = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    assert len(layers) == 3
    recalibrate_batch_norm(model, patches)
    assert_exact_statistics(model, layers, patches)


def assert_exact_statistics(model, layers, patches):
    for layer in layers:
        # Earlier layers are already re-estimated, as they were when this one was.
        acts = keras.Model(model.input, layer.input).predict(patches, verbose=0)
        acts = acts.reshape(-1, acts.shape[-1]).astype(np.float64)
        np.testing.assert_allclose(
            layer.moving_mean.numpy(), acts.mean(axis=0), rtol=1e-4, atol=1e-5
        )
        np.testing.assert_allclose(
            layer.moving_variance.numpy(), acts.var(axis=0), rtol=1e-3, atol=1e-5
        )


def batch_norm_statistics(model):
    return [
        (layer.moving_mean.numpy(), layer.moving_variance.numpy())
        for layer in model.layers
        if isinstance(layer, keras.layers.BatchNormalization)
    ]


def test_cached_activations_give_the_same_statistics(patches, monkeypatch):
    # Kept activations (the default here, the network being small) against none kept.
    model = small_net()
    recalibrate_batch_norm(model, patches)
    (plan,) = _ops._PLANS[model]["plans"].values()
    # The second pass keeps its layer's input, where the third starts.
    assert [step.source for step in plan.passes] == [None, None, 1]
    assert [step.kept for step in plan.passes] == [None, model.get_layer("block2_bn1").input, None]
    cached = batch_norm_statistics(model)
    monkeypatch.setattr(_ops, "RECALIBRATION_CACHE_BYTES", 0)
    model = small_net()
    recalibrate_batch_norm(model, patches)
    (plan,) = _ops._PLANS[model]["plans"].values()
    # nothing fits: every layer is measured from the patches
    assert [(step.source, step.kept) for step in plan.passes] == [(None, None)] * 3
    for (mean_a, var_a), (mean_b, var_b) in zip(cached, batch_norm_statistics(model), strict=True):
        np.testing.assert_allclose(mean_a, mean_b, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(var_a, var_b, rtol=1e-5, atol=1e-6)


def test_a_skip_connection_past_a_batch_norm_layer_is_measured_exactly(patches):
    # The second layer's input also needs the first convolution's output (from before
    # the first layer), and the second pass is measured from the patches.
    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 3))
    scaled = keras.layers.Rescaling(1 / 255)(inputs)
    conv = keras.layers.Conv2D(4, 3, padding="same", activation="relu")(scaled)
    first = keras.layers.BatchNormalization()(conv)
    pooled = keras.layers.Conv2D(4, 1)(first)
    second = keras.layers.BatchNormalization()(keras.layers.Add()([pooled, conv]))
    model = keras.Model(inputs, keras.layers.GlobalAveragePooling2D()(second))
    recalibrate_batch_norm(model, patches)
    (plan,) = _ops._PLANS[model]["plans"].values()
    # nothing kept: both layers measured from the patches
    assert [(step.source, step.kept) for step in plan.passes] == [(None, None)] * 2
    layers = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    assert len(layers) == 2
    assert_exact_statistics(model, layers, patches)


def test_a_pass_keeps_only_an_activation_the_next_layer_can_be_computed_from(patches):
    # The third layer's input also needs the first layer's output, so the second pass
    # cannot keep its own layer's input (the latest activation on its way); it keeps
    # the first layer's output, from which the rest follows.
    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 3))
    scaled = keras.layers.Rescaling(1 / 255)(inputs)
    first = keras.layers.BatchNormalization()(keras.layers.Conv2D(4, 3, padding="same")(scaled))
    second_input = keras.layers.Conv2D(4, 3, padding="same", activation="relu")(first)
    second = keras.layers.BatchNormalization()(second_input)
    third_input = keras.layers.Add()([keras.layers.Conv2D(4, 1)(second), first])
    third = keras.layers.BatchNormalization()(third_input)
    model = keras.Model(inputs, keras.layers.GlobalAveragePooling2D()(third))
    recalibrate_batch_norm(model, patches)
    (plan,) = _ops._PLANS[model]["plans"].values()
    assert [step.source for step in plan.passes] == [None, None, 1]
    assert [step.kept for step in plan.passes] == [None, first, None]
    layers = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    assert_exact_statistics(model, layers, patches)


def test_recalibration_refuses_no_patches():
    with pytest.raises(ValueError, match="X is empty"):
        recalibrate_batch_norm(small_net(), np.zeros((0, 8, 8, 3), np.uint8))


def test_the_inference_cache_does_not_keep_a_model_alive(patches):
    model = small_net()
    predict_in_batches(model, patches[:4])
    ref = weakref.ref(model)
    del model
    gc.collect()
    assert ref() is None
