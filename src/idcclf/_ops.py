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


def evaluate(model: keras.Model, X: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """Loss and accuracy of ``model`` on ``(X, y)`` in inference mode, as ``evaluate``.

    The loss is the one ``model`` was compiled with; ``y`` holds class indices.
    """
    proba = predict_in_batches(model, X)
    loss = keras.losses.get(model.loss) if isinstance(model.loss, str) else model.loss
    # Loss functions give one value per sample, Loss objects their mean: both average.
    value = float(np.mean(keras.ops.convert_to_numpy(loss(y, proba))))
    accuracy = float(np.mean(proba.argmax(axis=1) == np.asarray(y).reshape(-1)))
    return {"loss": value, "accuracy": accuracy}


def recalibrate_batch_norm(model: keras.Model, X: np.ndarray) -> None:
    """Set each BatchNormalization layer's moving statistics to their exact values on X.

    Layers are visited in order, each measured with the ones before it already fixed,
    and everything in inference mode (no augmentation, no dropout), which is how the
    network will be used.
    """
    moments, layers = _moments_function(model, X)
    for index, (layer, per_sample) in enumerate(layers):
        mean, variance = _pooled_moments(
            lambda batch, index=index: moments(batch, index), X, per_sample
        )
        layer.moving_mean.assign(mean.astype(np.float32))
        layer.moving_variance.assign(variance.astype(np.float32))


def _pooled_moments(moments, X: np.ndarray, per_sample: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean and variance over all of ``X``, pooled exactly from per-batch ``moments``.

    Streaming: memory stays at one batch of activations. Each batch's mean and centred
    sum of squares are pooled in float64 (Chan et al.).
    """
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
    return mean, np.maximum(sum_sq / count, 0.0)


#: Compiled moments function of each model and input shape, made on first use and kept
#: for the model's life: re-estimation runs every epoch, and functions made anew (or one
#: per layer) would be traced again and again, which TensorFlow warns about.
_MOMENTS_FUNCTIONS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _moments_function(model: keras.Model, X: np.ndarray):
    """A compiled ``moments(batch, index)``, and the batch-norm layers it indexes.

    ``moments`` gives the per-channel mean and variance of the input of batch-norm
    layer ``index`` on one batch; each layer comes with its values per channel in one
    sample. One graph per model, input dtype and shape (the batch dimension is free),
    the layer chosen inside it. The moments are taken in TensorFlow, centred (no
    cancellation), rather than as float64 NumPy copies of every activation, which
    cost more than the network itself.
    """
    import tensorflow as tf

    key = (X.dtype.str, tuple(X.shape[1:]))
    functions = _MOMENTS_FUNCTIONS.setdefault(model, {})
    if key not in functions:
        networks = [layer for layer in model.layers if isinstance(layer, keras.Model)] or [model]
        probes, layers = [], []
        for network in networks:
            for layer in network.layers:
                if isinstance(layer, keras.layers.BatchNormalization):
                    probes.append(keras.Model(network.input, layer.input))
                    layers.append((layer, math.prod(probes[-1].output.shape[1:-1])))

        def branch(probe, batch):
            def moments():
                acts = probe(batch, training=False)
                return tf.nn.moments(tf.reshape(acts, (-1, acts.shape[-1])), axes=[0])

            return moments

        signature = [tf.TensorSpec((None, *X.shape[1:]), X.dtype), tf.TensorSpec((), tf.int32)]

        @tf.function(input_signature=signature)
        def moments(batch, index):
            return tf.switch_case(index, [branch(probe, batch) for probe in probes])

        functions[key] = moments, layers
    return functions[key]
