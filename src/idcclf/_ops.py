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
#: :func:`recalibrate_batch_norm`). On the 2,048 patches re-estimated after a fit it
#: holds CancerNet's block-1 output (25 x 25 x 32 floats a patch, 164 MB) and each
#: block-3 layer's input (12 x 12 x 128, 151 MB); on the 1,024 re-estimated before each
#: validation also each block-2 layer's input (25 x 25 x 64, 164 MB). Up to twice this
#: is held while the next kept activation is computed from the last.
RECALIBRATION_CACHE_BYTES = 192 * 2**20


def recalibrate_batch_norm(model: keras.Model, X: np.ndarray) -> None:
    """Set each BatchNormalization layer's moving statistics to their exact values on X.

    Layers are visited in order, each measured with the ones before it already fixed,
    and everything in inference mode (no augmentation, no dropout), which is how the
    network will be used.

    One pass over X measures each layer. A pass starts from X or from an activation
    kept by an earlier pass, and while it measures its layer it keeps the latest
    activation on its way (from the previous layer's output up to its own layer's
    input) that fits in ``RECALIBRATION_CACHE_BYTES`` for all of X and from which the
    next layer's input can be computed alone: the next pass starts there, so the
    layers before it are not run again. The values are the same either way.
    """
    if not len(X):
        raise ValueError("no samples to re-estimate batch normalization on: X is empty")
    for network in _networks(model):
        plan = _plan(network, X)
        if plan is None:  # no batch-norm layer, e.g. a nested augmentation model
            continue
        # Flat rows, whatever X's shape: one graph serves every pass.
        patches = np.reshape(X, (len(X), -1))
        kept: np.ndarray | None = None
        for index, step in enumerate(plan.passes):
            inputs = patches if step.source is None else kept
            mean, variance, activation = _measure(
                functools.partial(plan.run, index), inputs, step.per_sample, step.kept is not None
            )
            step.layer.moving_mean.assign(mean.astype(np.float32))
            step.layer.moving_variance.assign(variance.astype(np.float32))
            if activation is not None:
                kept = activation  # the earlier one is never read again


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


def _measure(run, X: np.ndarray, per_sample: int, keeps: bool):
    """Mean and variance of a layer's input over all of ``X``, and the activation kept.

    ``run(batch)`` gives a batch's per-channel mean and variance of the layer's input
    and, if the pass ``keeps`` one, the activation to keep as flat rows (else an
    empty array). Streaming: besides the kept activation, memory stays at one batch.
    Each batch's mean and centred sum of squares are pooled in float64 (Chan et al.).
    """
    count, mean, sum_sq, kept = 0, 0.0, 0.0, None
    for start in range(0, len(X), PREDICT_BATCH_SIZE):
        batch = X[start : start + PREDICT_BATCH_SIZE]
        batch_mean, batch_var, activation = run(_float32(batch))
        if keeps:
            activation = activation.numpy()
            if kept is None:
                kept = np.empty((len(X), activation.shape[1]), activation.dtype)
            kept[start : start + len(batch)] = activation
        batch_mean, batch_var = np.float64(batch_mean.numpy()), np.float64(batch_var.numpy())
        n_batch = len(batch) * per_sample
        delta = batch_mean - mean
        total = count + n_batch
        mean = mean + delta * (n_batch / total)
        sum_sq = sum_sq + batch_var * n_batch + delta**2 * (count * n_batch / total)
        count = total
    return mean, np.maximum(sum_sq / count, 0.0), kept


class _Pass(NamedTuple):
    """One pass over the re-estimated patches, measuring one batch-norm layer.

    ``per_sample`` is the layer input's number of values per channel in one sample;
    ``source`` the index of the pass whose kept activation this one starts from (None:
    the patches); ``kept`` the activation this pass keeps (None: none).
    """

    layer: keras.layers.Layer
    per_sample: int
    source: int | None
    kept: keras.KerasTensor | None


class _Plan(NamedTuple):
    """How one network's batch-norm layers are measured, for one choice of kept activations.

    ``run(index, batch)`` runs pass ``index`` on a batch of flat float32 rows of its
    source and gives the per-channel mean and variance of its layer's input, and the
    activation it keeps as flat rows (an empty array if it keeps none).
    """

    passes: list
    run: object


#: Per network: its batch-norm layers, the activations each pass could keep, and the
#: plan for each choice of kept activations. Made on first use and kept for the
#: model's life: re-estimation runs every epoch, and functions made anew would be
#: traced again and again, which TensorFlow warns about.
_PLANS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _plan(network: keras.Model, X: np.ndarray) -> _Plan | None:
    """The network's plan for X, None if it has no batch-norm layer.

    An activation can be kept if it fits ``RECALIBRATION_CACHE_BYTES`` for all of X.
    The plan's graph is traced once per network, input shape and choice of what fits.
    The moments are taken in TensorFlow, centred (no cancellation), rather than as
    float64 NumPy copies of every activation, which cost more than the network itself.
    """
    entry = _PLANS.get(network)
    if entry is None:
        norms = [
            item for item in network.layers if isinstance(item, keras.layers.BatchNormalization)
        ]
        entry = _PLANS[network] = {
            "norms": norms,
            "candidates": _candidates(network, norms),
            "plans": {},
        }
    if not entry["norms"]:
        return None
    fits = tuple(
        tuple(_fits(tensor, len(X)) for tensor in candidates) for candidates in entry["candidates"]
    )
    key = (tuple(X.shape[1:]), fits)
    if key not in entry["plans"]:
        kept = _choose(network, entry["norms"], entry["candidates"], fits)
        entry["plans"][key] = _compile_plan(network, X.shape[1:], entry["norms"], kept)
    return entry["plans"][key]


def _fits(tensor, n: int) -> bool:
    shape = tensor.shape[1:]
    if any(size is None for size in shape):
        return False
    return 4 * math.prod(shape) * n <= RECALIBRATION_CACHE_BYTES


def _candidates(network: keras.Model, norms: list) -> list[list]:
    """Per batch-norm layer, the activations the pass measuring it could keep, in order.

    The outputs of the layers from the previous batch-norm layer (fixed by then) up to
    this layer's input; none for the first layer (nothing before it is fixed yet) and
    the last (no pass follows).
    """
    layers = network.layers
    candidates = [[] for _ in norms]
    for index in range(1, len(norms) - 1):
        between = layers[layers.index(norms[index - 1]) : layers.index(norms[index])]
        candidates[index] = [
            item.output for item in between if isinstance(item.output, keras.KerasTensor)
        ]
    return candidates


def _choose(network: keras.Model, norms: list, candidates: list, fits: tuple) -> list:
    """Per pass, the activation it keeps (None: none): the latest that fits and serves.

    It serves if the pass can compute it from where the pass starts and the next
    layer's input can be computed from it alone (not where a skip connection also
    needs an activation from before it).
    """
    kept, source = [], network.input
    for index, layer in enumerate(norms):
        chosen = None
        options = [tensor for tensor, ok in zip(candidates[index], fits[index], strict=True) if ok]
        for tensor in reversed(options):
            following = norms[index + 1].input
            if tensor is following:  # the next pass would compute nothing
                continue
            try:
                keras.Model(source, [layer.input, tensor])
                keras.Model(tensor, following)
            except ValueError:  # not a cut of the graph
                continue
            chosen = tensor
            break
        kept.append(chosen)
        source = source if chosen is None else chosen
    return kept


def _compile_plan(network: keras.Model, input_shape, norms: list, kept: list) -> _Plan:
    """The plan whose pass ``i`` keeps ``kept[i]`` (None: nothing)."""
    import tensorflow as tf

    passes, models = [], []
    source, source_index, source_shape = network.input, None, tuple(input_shape)
    for index, (layer, keep) in enumerate(zip(norms, kept, strict=True)):
        outputs = [layer.input] if keep is None else [layer.input, keep]
        models.append((keras.Model(source, outputs), source_shape))
        per_sample = math.prod(layer.input.shape[1:-1])
        passes.append(_Pass(layer, per_sample, source_index, keep))
        if keep is not None:
            source, source_index, source_shape = keep, index, tuple(keep.shape[1:])

    def branch(model, shape, batch):
        def run():
            acts = model(tf.reshape(batch, (-1, *shape)), training=False)
            acts = acts if isinstance(acts, (list, tuple)) else [acts]
            mean, variance = tf.nn.moments(tf.reshape(acts[0], (-1, acts[0].shape[-1])), [0])
            if len(acts) == 1:
                return mean, variance, tf.zeros((tf.shape(batch)[0], 0), tf.float32)
            return mean, variance, tf.reshape(acts[1], (tf.shape(batch)[0], -1))

        return run

    signature = [tf.TensorSpec((), tf.int32), tf.TensorSpec((None, None), tf.float32)]

    @tf.function(input_signature=signature)
    def run(index, batch):
        return tf.switch_case(index, [branch(model, shape, batch) for model, shape in models])

    return _Plan(passes=passes, run=run)
