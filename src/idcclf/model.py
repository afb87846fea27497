"""CancerNet: the small depthwise-separable CNN of the IDC tutorial, as a Keras builder."""

from __future__ import annotations

from collections.abc import Sequence

import keras
from keras import layers, ops

DROPOUT_PLACEMENTS = ("after_pool", "before_pool")

#: The parameters of an ``IDCClassifier`` that it passes on to :func:`build_cancernet`.
ARCHITECTURE = (
    "filters convs_per_block block_dropout head_dropout dropout_placement batch_norm "
    "separable dense_units rescale"
).split()


def build_cancernet(
    input_shape: Sequence[int] = (50, 50, 3),
    n_classes: int = 2,
    *,
    filters: Sequence[int] = (32, 64, 128),
    convs_per_block: Sequence[int] = (1, 2, 3),
    block_dropout: float = 0.25,
    head_dropout: float = 0.5,
    dropout_placement: str = "after_pool",
    batch_norm: bool = True,
    separable: bool = True,
    dense_units: int = 256,
    rescale: float | None = 1.0 / 255.0,
    fused_batch_norm: bool = True,
    name: str = "cancernet",
) -> keras.Model:
    """Build CancerNet, uncompiled.

    The default is the tutorial's network: blocks of 3x3 'same' convolutions
    (depthwise separable) with 32, 64 and 128 filters, repeated 1, 2 and 3 times;
    every convolution is followed by ReLU and batch normalization; every block ends
    with 2x2 max-pooling and dropout 0.25. The head is Flatten, Dense 256, ReLU,
    batch normalization, dropout 0.5 and a softmax over ``n_classes``.

    Parameters
    ----------
    input_shape : sequence of 3 ints, default=(50, 50, 3)
        Height, width and channels of one patch.
    n_classes : int, default=2
        Number of softmax outputs.
    filters : sequence of int, default=(32, 64, 128)
        Filters of the convolutions in each block; its length is the number of blocks.
    convs_per_block : sequence of int, default=(1, 2, 3)
        Number of convolutions in each block; same length as ``filters``.
    block_dropout : float, default=0.25
        Dropout rate at the end of each convolutional block (0 disables it).
    head_dropout : float, default=0.5
        Dropout rate after the dense layer (0 disables it).
    dropout_placement : {'after_pool', 'before_pool'}, default='after_pool'
        Where each block's dropout sits relative to its max-pooling. The tutorial
        places it after pooling.
    batch_norm : bool, default=True
        Batch normalization after every ReLU. ``False`` removes all of them.
    separable : bool, default=True
        Depthwise separable convolutions (``SeparableConv2D``) as in the tutorial, or
        plain ``Conv2D``.
    dense_units : int, default=256
        Units of the dense layer of the head.
    rescale : float or None, default=1/255
        Factor applied to the input inside the model, so that uint8 pixels can be fed
        as they are. ``None`` feeds the input unchanged.
    fused_batch_norm : bool, default=True
        Batch normalization as :class:`FusedBatchNormalization` (the same statistics,
        computed by one TensorFlow kernel in training) or as Keras' own
        ``BatchNormalization``, with which a CancerNet epoch trained about 2x slower
        on a CPU (``benchmarks/bench_batch_norm.py``).
    name : str, default='cancernet'
        Name of the Keras model.

    Returns
    -------
    keras.Model
        The uncompiled network mapping ``(batch, *input_shape)`` to class probabilities.

    Notes
    -----
    Pooling never shrinks a dimension below one pixel (a 1-pixel-high input is pooled
    along its width only), so tiny inputs such as 1 x n rows still build.
    """
    input_shape = tuple(int(d) for d in input_shape)
    _check_architecture(
        input_shape,
        n_classes,
        filters,
        convs_per_block,
        block_dropout,
        head_dropout,
        dropout_placement,
        dense_units,
    )
    conv_layer = layers.SeparableConv2D if separable else layers.Conv2D
    norm_layer = FusedBatchNormalization if fused_batch_norm else layers.BatchNormalization

    inputs = keras.Input(shape=input_shape, name="patch")
    x = inputs
    if rescale is not None:
        x = layers.Rescaling(rescale, name="rescale")(x)
    height, width = input_shape[0], input_shape[1]
    blocks = zip(filters, convs_per_block, strict=True)
    for block, (n_filters, n_convs) in enumerate(blocks, start=1):
        for conv in range(1, n_convs + 1):
            x = conv_layer(n_filters, 3, padding="same", name=f"block{block}_conv{conv}")(x)
            x = layers.Activation("relu", name=f"block{block}_relu{conv}")(x)
            if batch_norm:
                x = norm_layer(name=f"block{block}_bn{conv}")(x)
        pool_size = (min(2, height), min(2, width))
        height, width = max(1, height // pool_size[0]), max(1, width // pool_size[1])
        pool = layers.MaxPooling2D(pool_size, name=f"block{block}_pool")
        dropout = layers.Dropout(block_dropout, name=f"block{block}_dropout")
        if block_dropout == 0:
            x = pool(x)
        elif dropout_placement == "after_pool":
            x = dropout(pool(x))
        else:
            x = pool(dropout(x))

    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(dense_units, name="dense")(x)
    x = layers.Activation("relu", name="dense_relu")(x)
    if batch_norm:
        x = norm_layer(name="dense_bn")(x)
    if head_dropout > 0:
        x = layers.Dropout(head_dropout, name="dense_dropout")(x)
    x = layers.Dense(n_classes, name="logits")(x)
    # float32 softmax keeps probabilities exact even under a mixed-precision policy.
    outputs = layers.Activation("softmax", dtype="float32", name="softmax")(x)
    return keras.Model(inputs, outputs, name=name)


@keras.saving.register_keras_serializable(package="idcclf")
class FusedBatchNormalization(layers.BatchNormalization):
    """Keras' ``BatchNormalization``, trained with TensorFlow's fused kernel.

    In training, Keras 3 normalizes with separate operations (the batch's moments, then
    the normalization), each a pass over the activations forward and more backward. On
    the TensorFlow backend this layer does the same with one ``FusedBatchNormV3`` op and
    its gradient op: the same normalization, gradients and moving statistics, up to
    float32 rounding, in fewer passes over the activations. Its weights and
    configuration are those of ``BatchNormalization``.

    Inference, and every case the fused kernel does not cover (another backend, a
    mask, renormalization, synchronized statistics, no ``scale`` or ``center``, an
    axis other than the last, inputs other than 2-D or 4-D, float64), run Keras' own
    code.
    """

    def call(self, inputs, training=None, mask=None):
        if not self._fusable(inputs, training, mask):
            return super().call(inputs, training=training, mask=mask)
        import tensorflow as tf

        flat = len(inputs.shape) == 2
        x = ops.cast(inputs, "float32")
        x = x[:, None, None, :] if flat else x
        y, mean, unbiased_variance, *_ = tf.raw_ops.FusedBatchNormV3(
            x=x,
            scale=ops.cast(self.gamma, "float32"),
            offset=ops.cast(self.beta, "float32"),
            mean=ops.zeros_like(self.moving_mean),
            variance=ops.ones_like(self.moving_variance),
            epsilon=self.epsilon,
            exponential_avg_factor=1.0,
            data_format="NHWC",
            is_training=True,
        )
        # The kernel returns the sample variance; Keras averages the population one.
        count = ops.cast(ops.size(x) // ops.shape(x)[-1], "float32")
        variance = unbiased_variance * (count - 1.0) / count
        momentum = self.momentum
        self.moving_mean.assign(self.moving_mean * momentum + mean * (1.0 - momentum))
        self.moving_variance.assign(self.moving_variance * momentum + variance * (1.0 - momentum))
        y = y[:, 0, 0, :] if flat else y
        return ops.cast(y, self.compute_dtype)

    def _fusable(self, inputs, training, mask) -> bool:
        rank = len(inputs.shape)
        return bool(
            training
            and self.trainable
            and mask is None
            and keras.backend.backend() == "tensorflow"
            and rank in (2, 4)
            and self.axis in (-1, rank - 1)
            and self.scale
            and self.center
            and not self.renorm
            and not self.synchronized
            and keras.backend.result_type(inputs.dtype, "float32") == "float32"
        )


@keras.saving.register_keras_serializable(package="idcclf")
class SparseCategoricalCrossentropy(keras.losses.Loss):
    """Cross-entropy of class-index labels against probabilities, with label smoothing.

    Keras' own sparse cross-entropy has no label smoothing: this one turns each label
    into its one-hot row, smoothed (``1 - s + s / n`` for the class, ``s / n`` for the
    others, for ``n`` classes), as ``keras.losses.CategoricalCrossentropy`` does.
    Labels given as rows of ``n`` class probabilities (mixup's blends) are taken as
    they are, then smoothed the same way.

    Parameters
    ----------
    label_smoothing : float, default=0.0
        Smoothing ``s`` in [0, 1); 0 gives the plain sparse cross-entropy.
    """

    def __init__(self, label_smoothing: float = 0.0, name: str = "smoothed_crossentropy", **kw):
        super().__init__(name=name, **kw)
        self.label_smoothing = float(label_smoothing)

    def call(self, y_true, y_pred):
        if _holds_probabilities(y_true, y_pred):
            target = ops.cast(y_true, y_pred.dtype)
        else:
            labels = ops.cast(ops.reshape(y_true, (-1,)), "int32")
            target = ops.one_hot(labels, ops.shape(y_pred)[-1], dtype=y_pred.dtype)
        return keras.losses.categorical_crossentropy(
            target, y_pred, label_smoothing=self.label_smoothing
        )

    def get_config(self) -> dict:
        return {**super().get_config(), "label_smoothing": self.label_smoothing}


def _holds_probabilities(y_true, y_pred) -> bool:
    """Whether ``y_true`` is a row of class probabilities per sample (mixup), not indices."""
    return len(y_true.shape) == 2 and y_true.shape[-1] == y_pred.shape[-1] > 1


def training_loss(label_smoothing: float = 0.0, mixup: float = 0.0):
    """The loss CancerNet is compiled with: Keras' sparse cross-entropy, or ours.

    Ours (:class:`SparseCategoricalCrossentropy`) smooths the labels, and also takes
    the class probabilities that mixup trains on.
    """
    if not label_smoothing and not mixup:
        return "sparse_categorical_crossentropy"
    return SparseCategoricalCrossentropy(label_smoothing)


def _check_architecture(
    input_shape,
    n_classes,
    filters,
    convs_per_block,
    block_dropout,
    head_dropout,
    dropout_placement,
    dense_units,
) -> None:
    """Refuse an impossible architecture, naming the parameter at fault."""
    if len(input_shape) != 3 or min(input_shape) < 1:
        raise ValueError(
            f"input_shape must be (height, width, channels) with positive sizes, got {input_shape}"
        )
    if int(n_classes) < 2:
        raise ValueError(f"n_classes must be at least 2, got {n_classes}")
    if len(filters) == 0 or len(filters) != len(convs_per_block):
        raise ValueError(
            "filters and convs_per_block must be non-empty and of equal length, got "
            f"filters={tuple(filters)} and convs_per_block={tuple(convs_per_block)}"
        )
    if min(filters) < 1 or min(convs_per_block) < 1:
        raise ValueError(
            f"filters and convs_per_block must be positive, got filters={tuple(filters)} "
            f"and convs_per_block={tuple(convs_per_block)}"
        )
    for param, rate in (("block_dropout", block_dropout), ("head_dropout", head_dropout)):
        if not 0.0 <= rate < 1.0:
            raise ValueError(f"{param} must be in [0, 1), got {rate}")
    if dropout_placement not in DROPOUT_PLACEMENTS:
        raise ValueError(
            f"dropout_placement must be one of {DROPOUT_PLACEMENTS}, got {dropout_placement!r}"
        )
    if int(dense_units) < 1:
        raise ValueError(f"dense_units must be positive, got {dense_units}")
