"""Compiled inference and exact batch-norm re-estimation for a fitted Keras model.

Both run the network in inference mode as one compiled call per batch, rather than
through ``model.predict``, whose per-call data pipeline and callback machinery cost
about as much as the network on CPU (``docs/benchmarks_training.md``, changes 1-2).
"""

from __future__ import annotations

import math
import weakref

import keras
import numpy as np

#: Batch size for inference and batch-norm re-estimation: the fastest on CPU, where 64
#: patches' first-block activations stay in cache (docs/benchmarks_training.md).
PREDICT_BATCH_SIZE = 64

#: Compiled inference function of each model, made on first use. Weak keys: the cache
#: never keeps a model alive, and nothing is added to the model (which is pickled).
_INFERENCE_FUNCTIONS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def predict_in_batches(model: keras.Model, X: np.ndarray, symmetric: bool = False) -> np.ndarray:
    """``model.predict(X)`` as compiled calls on batches of ``PREDICT_BATCH_SIZE``.

    With ``symmetric``, each batch's output is the mean over its symmetric views
    (:func:`symmetric_views`).
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
            views = symmetric_views(batch)
            return tf.add_n([model_ref()(view, training=False) for view in views]) / len(views)

        signature = tf.TensorSpec((None, *X.shape[1:]), X.dtype)
        function = functions[key] = tf.function(infer, input_signature=[signature])
    outputs = [
        function(X[start : start + PREDICT_BATCH_SIZE]).numpy()
        for start in range(0, len(X), PREDICT_BATCH_SIZE)
    ]
    return np.concatenate(outputs) if len(outputs) > 1 else outputs[0]


def symmetric_views(batch) -> list:
    """The flips and quarter turns of a batch of images: 8 views if square, else 4."""
    import tensorflow as tf

    height, width = batch.shape[1], batch.shape[2]
    turns = range(4) if height == width else (0, 2)
    views = []
    for turn in turns:
        turned = tf.image.rot90(batch, turn)
        views += [turned, tf.reverse(turned, axis=[2])]
    return views


def recalibrate_batch_norm(model: keras.Model, X: np.ndarray) -> None:
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
