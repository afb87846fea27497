"""Compiled inference and exact batch-norm re-estimation for a fitted Keras model.

Both run the network in inference mode as one compiled call per batch, rather than
through ``model.predict``, whose per-call data pipeline and callback machinery cost
about as much as the network on CPU (``docs/benchmarks_training.md``, changes 1-2).
"""

from __future__ import annotations

import functools
import math
import weakref
from typing import NamedTuple

import keras
import numpy as np

from ._allocator import keep_tensor_buffers

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

    keep_tensor_buffers()
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
    return _map_batches(function, X)


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


#: Memory for an activation that batch-norm re-estimation keeps between layers (see
#: :func:`recalibrate_batch_norm`): enough for CancerNet's block-2 output (12 x 12 x 64
#: floats a patch, 151 MB) on 4,096 patches, and on the 2,048 re-estimated after a fit
#: also for the block-1 output (24 x 24 x 32 floats, 151 MB). Up to twice this is held
#: while the next kept activation is computed from the last.
RECALIBRATION_CACHE_BYTES = 192 * 2**20


def recalibrate_batch_norm(model: keras.Model, X: np.ndarray) -> None:
    """Set each BatchNormalization layer's moving statistics to their exact values on X.

    Layers are visited in order, each measured with the ones before it already fixed,
    and everything in inference mode (no augmentation, no dropout), which is how the
    network will be used.

    Each layer's input is computed from the last kept activations rather than from X:
    once a layer is fixed, the smallest activation between it and the next batch-norm
    layer (in CancerNet, a block's pooled output) is computed once for all of X and
    kept, if it fits in ``RECALIBRATION_CACHE_BYTES``, so later layers do not rerun
    the blocks before it. The values are the same either way.
    """
    for network in _networks(model):
        plan = _plan(network, X)
        if plan is None:  # no batch-norm layer, e.g. a nested augmentation model
            continue
        # Flat float32 rows, whatever X's dtype and shape: one graph serves every segment.
        inputs = np.reshape(X, (len(X), -1))
        index = 0
        for segment, layers in enumerate(plan.segments):
            if segment:
                enter = functools.partial(plan.enter, segment - 1)
                inputs = _map_batches(lambda batch, enter=enter: enter(_float32(batch)), inputs)
            for layer, per_sample in layers:
                mean, variance = _pooled_moments(
                    functools.partial(plan.moments, index), inputs, per_sample
                )
                layer.moving_mean.assign(mean.astype(np.float32))
                layer.moving_variance.assign(variance.astype(np.float32))
                index += 1


def _networks(model: keras.Model) -> list[keras.Model]:
    """The networks whose batch-norm layers are re-estimated: nested models, or the model."""
    return [layer for layer in model.layers if isinstance(layer, keras.Model)] or [model]


def _map_batches(function, X: np.ndarray) -> np.ndarray:
    """``function`` applied to X in batches of ``PREDICT_BATCH_SIZE``, as one array.

    Written batch by batch into one array: the outputs are held once, not twice.
    """
    if not len(X):
        raise ValueError("no samples to run the network on: X is empty")
    out = None
    for start in range(0, len(X), PREDICT_BATCH_SIZE):
        batch = function(X[start : start + PREDICT_BATCH_SIZE]).numpy()
        if out is None:
            out = np.empty((len(X), *batch.shape[1:]), batch.dtype)
        out[start : start + len(batch)] = batch
    return out


def _float32(batch: np.ndarray) -> np.ndarray:
    return batch.astype(np.float32, copy=False)


def _pooled_moments(moments, X: np.ndarray, per_sample: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean and variance over all of ``X``, pooled exactly from per-batch ``moments``.

    Streaming: memory stays at one batch of activations. Each batch's mean and centred
    sum of squares are pooled in float64 (Chan et al.).
    """
    count, mean, sum_sq = 0, 0.0, 0.0
    for start in range(0, len(X), PREDICT_BATCH_SIZE):
        batch = X[start : start + PREDICT_BATCH_SIZE]
        batch_mean, batch_var = (np.float64(m) for m in moments(_float32(batch)))
        n_batch = len(batch) * per_sample
        delta = batch_mean - mean
        total = count + n_batch
        mean = mean + delta * (n_batch / total)
        sum_sq = sum_sq + batch_var * n_batch + delta**2 * (count * n_batch / total)
        count = total
    return mean, np.maximum(sum_sq / count, 0.0)


class _Plan(NamedTuple):
    """How one network's batch-norm layers are measured, for one choice of kept activations.

    ``segments`` lists, per segment, its layers, each with its values per channel in
    one sample; a segment starts at the network's input or at a kept activation.
    ``moments(index, batch)`` gives the per-channel mean and variance of the input of
    the ``index``-th layer over all segments, and ``enter(segment, batch)`` computes
    the kept activation that starts segment ``segment + 1`` from the start of
    ``segment``; both take and ``enter`` returns flat float32 rows.
    """

    segments: list
    moments: object
    enter: object


#: Per network: its batch-norm layers, the activation that could be kept after each
#: one (or None), and the plan for each choice of kept activations. Made on first use
#: and kept for the model's life: re-estimation runs every epoch, and functions made
#: anew would be traced again and again, which TensorFlow warns about.
_PLANS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _plan(network: keras.Model, X: np.ndarray) -> _Plan | None:
    """The network's plan for X, None if it has no batch-norm layer.

    An activation is kept if it fits ``RECALIBRATION_CACHE_BYTES`` for all of X. The
    two graphs of a plan are traced once per network, input shape and choice of kept
    activations. The moments are taken in TensorFlow, centred (no cancellation),
    rather than as float64 NumPy copies of every activation, which cost more than the
    network itself.
    """
    entry = _PLANS.get(network)
    if entry is None:
        norms = [
            item for item in network.layers if isinstance(item, keras.layers.BatchNormalization)
        ]
        points = [_cache_point(network, a, b) for a, b in zip(norms, norms[1:], strict=False)]
        entry = _PLANS[network] = {"norms": norms, "points": points, "plans": {}}
    if not entry["norms"]:
        return None
    kept = tuple(
        point is not None and 4 * math.prod(point.shape[1:]) * len(X) <= RECALIBRATION_CACHE_BYTES
        for point in entry["points"]
    )
    key = (tuple(X.shape[1:]), kept)
    if key not in entry["plans"]:
        points = [
            point if keep else None for point, keep in zip(entry["points"], kept, strict=True)
        ]
        entry["plans"][key] = _compile_plan(network, X.shape[1:], entry["norms"], points)
    return entry["plans"][key]


def _compile_plan(network: keras.Model, input_shape, norms: list, points: list) -> _Plan:
    """The plan that starts a new segment at every point that is not None."""
    import tensorflow as tf

    starts, groups = [network.input], [[]]
    for layer, point in zip(norms, [*points, None], strict=True):
        groups[-1].append(layer)
        if point is not None:
            starts.append(point)
            groups.append([])
    shapes = [tuple(input_shape)] + [tuple(start.shape[1:]) for start in starts[1:]]

    def unflatten(batch, segment):
        return tf.reshape(batch, (-1, *shapes[segment]))

    def moments_branch(probe, segment, batch):
        def moments():
            acts = probe(unflatten(batch, segment), training=False)
            return tf.nn.moments(tf.reshape(acts, (-1, acts.shape[-1])), axes=[0])

        return moments

    def enter_branch(model, segment, batch):
        def enter():
            acts = model(unflatten(batch, segment), training=False)
            return tf.reshape(acts, (tf.shape(acts)[0], -1))

        return enter

    probes = [
        (keras.Model(start, layer.input), segment)
        for segment, (start, layers) in enumerate(zip(starts, groups, strict=True))
        for layer in layers
    ]
    enters = [keras.Model(a, b) for a, b in zip(starts, starts[1:], strict=False)]
    signature = [tf.TensorSpec((), tf.int32), tf.TensorSpec((None, None), tf.float32)]

    @tf.function(input_signature=signature)
    def moments(index, batch):
        branches = [moments_branch(probe, segment, batch) for probe, segment in probes]
        return tf.switch_case(index, branches)

    @tf.function(input_signature=signature)
    def enter(segment, batch):
        branches = [enter_branch(model, i, batch) for i, model in enumerate(enters)]
        return tf.switch_case(segment, branches)

    sizes = iter(math.prod(probe.output.shape[1:-1]) for probe, _ in probes)
    segments = [[(layer, next(sizes)) for layer in layers] for layers in groups]
    return _Plan(segments=segments, moments=moments, enter=enter if enters else None)


def _cache_point(network: keras.Model, layer, next_layer):
    """The activation that could be kept once ``layer`` is fixed, or None.

    The smallest output of the layers from ``layer`` up to (not including)
    ``next_layer``, if ``next_layer``'s input can be computed from it alone.
    """
    layers = network.layers
    between = layers[layers.index(layer) : layers.index(next_layer)]
    # next_layer's input itself would make an empty probe, which Keras cannot build.
    candidates = [
        item.output
        for item in between
        if isinstance(item.output, keras.KerasTensor) and item.output is not next_layer.input
    ]
    if not candidates:
        return None
    point = min(reversed(candidates), key=lambda tensor: math.prod(tensor.shape[1:]))
    try:
        keras.Model(point, next_layer.input)
    except ValueError:  # next_layer also depends on other activations (not a chain)
        return None
    return point
