"""Compiled inference and exact batch-norm re-estimation (idcclf._ops)."""

import gc
import weakref

import keras
import numpy as np
import pytest

from idcclf import build_cancernet
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


def test_the_inference_cache_does_not_keep_a_model_alive(patches):
    model = small_net()
    predict_in_batches(model, patches[:4])
    ref = weakref.ref(model)
    del model
    gc.collect()
    assert ref() is None
