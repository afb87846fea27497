"""build_cancernet: the default pinned against a hand count, and every knob."""

import keras
import numpy as np
import pytest

from idcclf import build_cancernet


def _separable(c_in, c_out):
    # depthwise 3x3 per input channel + pointwise 1x1 + bias
    return 9 * c_in + c_in * c_out + c_out


def _trainable(model):
    return int(sum(np.prod(w.shape) for w in model.trainable_weights))


# The tutorial's CancerNet at 50x50x3, counted by hand: conv blocks 3->32, 32->64->64,
# 64->128->128->128, BatchNorm (gamma, beta) after each ReLU; 'valid' 2x2 pooling takes
# 50 -> 25 -> 12 -> 6, so the head sees 6*6*128 = 4608 values -> Dense 256 -> BN -> 2.
HAND_COUNT = (
    _separable(3, 32)
    + 2 * 32
    + _separable(32, 64)
    + _separable(64, 64)
    + 2 * 2 * 64
    + _separable(64, 128)
    + 2 * _separable(128, 128)
    + 3 * 2 * 128
    + (4608 * 256 + 256)
    + 2 * 256
    + (256 * 2 + 2)
)

BN = "FusedBatchNormalization"
DEFAULT_SEQUENCE = (
    ["InputLayer", "Rescaling"]
    + ["SeparableConv2D", "Activation", BN, "MaxPooling2D", "Dropout"]
    + ["SeparableConv2D", "Activation", BN] * 2
    + ["MaxPooling2D", "Dropout"]
    + ["SeparableConv2D", "Activation", BN] * 3
    + ["MaxPooling2D", "Dropout"]
    + ["Flatten", "Dense", "Activation", BN, "Dropout", "Dense", "Activation"]
)


def layer_types(model):
    return [type(layer).__name__ for layer in model.layers]


@pytest.fixture(scope="module")
def default_net():
    return build_cancernet()


def test_default_layer_sequence(default_net):
    assert layer_types(default_net) == DEFAULT_SEQUENCE


def test_default_trainable_parameters_match_hand_count(default_net):
    assert HAND_COUNT == 1_233_533  # 219 + 7,392 + 44,992 + 1,180,416 + 514
    assert _trainable(default_net) == HAND_COUNT


def test_default_hyperparameters(default_net):
    convs = [layer for layer in default_net.layers if type(layer).__name__ == "SeparableConv2D"]
    assert [c.filters for c in convs] == [32, 64, 64, 128, 128, 128]
    assert all(c.kernel_size == (3, 3) and c.padding == "same" for c in convs)
    dropouts = [layer.rate for layer in default_net.layers if type(layer).__name__ == "Dropout"]
    assert dropouts == [0.25, 0.25, 0.25, 0.5]
    assert default_net.get_layer("dense").units == 256
    assert default_net.output_shape == (None, 2)
    assert default_net.get_layer("softmax").activation.__name__ == "softmax"


def test_outputs_are_probabilities(default_net):
    x = np.random.default_rng(0).integers(0, 256, (4, 50, 50, 3)).astype("float32")
    proba = np.asarray(default_net(x, training=False))
    assert proba.shape == (4, 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-5)


def test_dropout_placement_before_pool_moves_dropout():
    net = build_cancernet(dropout_placement="before_pool")
    types = layer_types(net)
    first_pool = types.index("MaxPooling2D")
    assert types[first_pool - 1] == "Dropout"
    assert types[first_pool + 1] == "SeparableConv2D"
    assert _trainable(net) == HAND_COUNT  # placement changes no weights


def test_no_batch_norm_removes_all_bn_layers():
    net = build_cancernet(batch_norm=False)
    assert not any("BatchNormalization" in name for name in layer_types(net))
    n_bn_units = 32 + 2 * 64 + 3 * 128 + 256
    assert _trainable(net) == HAND_COUNT - 2 * n_bn_units


def test_keras_batch_norm_instead_of_fused():
    net = build_cancernet(fused_batch_norm=False)
    assert layer_types(net) == [
        "BatchNormalization" if name == BN else name for name in DEFAULT_SEQUENCE
    ]
    assert _trainable(net) == HAND_COUNT


def test_plain_conv_instead_of_separable():
    net = build_cancernet(separable=False)
    types = layer_types(net)
    assert "SeparableConv2D" not in types and types.count("Conv2D") == 6
    assert _trainable(net) > HAND_COUNT


def test_filters_convs_dense_and_classes_knobs():
    net = build_cancernet(filters=(8, 16), convs_per_block=(2, 1), dense_units=32, n_classes=3)
    convs = [layer for layer in net.layers if type(layer).__name__ == "SeparableConv2D"]
    assert [c.filters for c in convs] == [8, 8, 16]
    assert net.get_layer("dense").units == 32
    assert net.output_shape == (None, 3)


def test_dropout_rates_and_zero_dropout():
    net = build_cancernet(block_dropout=0.1, head_dropout=0.3)
    rates = [layer.rate for layer in net.layers if type(layer).__name__ == "Dropout"]
    assert rates == [0.1, 0.1, 0.1, 0.3]
    net = build_cancernet(block_dropout=0.0, head_dropout=0.0)
    assert "Dropout" not in layer_types(net)


def test_input_shape_and_rescale_knobs():
    net = build_cancernet(input_shape=(48, 48, 3), rescale=None)
    assert net.input_shape == (None, 48, 48, 3)
    assert "Rescaling" not in layer_types(net)
    tiny = build_cancernet(input_shape=(1, 5, 1))  # pooling never shrinks below 1 pixel
    assert tiny(np.zeros((2, 1, 5, 1), "float32")).shape == (2, 2)


def test_rescale_is_applied_inside_the_model():
    net = build_cancernet()
    rescaled = keras.Model(net.input, net.get_layer("rescale").output)
    out = np.asarray(rescaled(np.full((1, 50, 50, 3), 255.0, "float32")))
    np.testing.assert_allclose(out, 1.0)


@pytest.mark.parametrize(
    "kwargs, culprit",
    [
        (dict(input_shape=(50, 50)), "input_shape"),
        (dict(n_classes=1), "n_classes"),
        (dict(filters=(32, 64), convs_per_block=(1,)), "convs_per_block"),
        (dict(block_dropout=1.0), "block_dropout"),
        (dict(head_dropout=-0.1), "head_dropout"),
        (dict(dropout_placement="middle"), "dropout_placement"),
        (dict(dense_units=0), "dense_units"),
    ],
)
def test_bad_architecture_names_the_parameter(kwargs, culprit):
    with pytest.raises(ValueError, match=culprit):
        build_cancernet(**kwargs)


def test_smoothed_sparse_crossentropy_matches_keras_categorical():
    from idcclf.model import SparseCategoricalCrossentropy, training_loss

    assert training_loss(0.0) == "sparse_categorical_crossentropy"
    y = np.array([0, 1, 1, 0])
    proba = np.array([[0.9, 0.1], [0.3, 0.7], [0.6, 0.4], [0.5, 0.5]], np.float32)
    one_hot = np.eye(2, dtype=np.float32)[y]
    for smoothing in (0.0, 0.1, 0.3):
        loss = training_loss(smoothing) if smoothing else SparseCategoricalCrossentropy(0.0)
        expected = keras.losses.CategoricalCrossentropy(label_smoothing=smoothing)(one_hot, proba)
        np.testing.assert_allclose(float(loss(y, proba)), float(expected), rtol=1e-6)
    # smoothing raises the loss of confident right answers
    assert float(training_loss(0.3)(y[:1], proba[:1])) > float(
        SparseCategoricalCrossentropy(0.0)(y[:1], proba[:1])
    )
    config = keras.losses.serialize(training_loss(0.2))
    assert keras.losses.deserialize(config).label_smoothing == 0.2


def test_crossentropy_takes_class_probabilities_for_mixup():
    from idcclf.model import training_loss

    loss = training_loss(0.0, mixup=0.4)
    assert loss != "sparse_categorical_crossentropy"
    proba = np.array([[0.9, 0.1], [0.3, 0.7], [0.6, 0.4]], np.float32)
    blended = np.array([[1.0, 0.0], [0.25, 0.75], [0.5, 0.5]], np.float32)
    for smoothing in (0.0, 0.2):
        expected = keras.losses.CategoricalCrossentropy(label_smoothing=smoothing)(blended, proba)
        got = training_loss(smoothing, mixup=0.4)(blended, proba)
        np.testing.assert_allclose(float(got), float(expected), rtol=1e-6)
    # class indices still work: the validation data and evaluate give them
    np.testing.assert_allclose(
        float(loss(np.array([0, 1, 1]), proba)),
        float(keras.losses.SparseCategoricalCrossentropy()(np.array([0, 1, 1]), proba)),
        rtol=1e-6,
    )
