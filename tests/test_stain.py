"""The H&E stain-jitter layer on real patches."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from idcclf import load_sample
from idcclf.stain import HED_FROM_RGB, RGB_FROM_HED, RandomStainJitter


@pytest.fixture(scope="module")
def patches():
    bunch = load_sample(patients=["8863"])
    return bunch.data[:16].astype("float32")


def _stains(rgb255: np.ndarray) -> np.ndarray:
    density = -np.log(np.clip(rgb255 / 255.0, 1 / 255, 1))
    return density @ HED_FROM_RGB


def test_identity_at_inference_and_without_range(patches):
    layer = RandomStainJitter(scale=0.3, shift=0.3, seed=0)
    np.testing.assert_array_equal(np.asarray(layer(patches, training=False)), patches)
    still = RandomStainJitter(scale=0, shift=0, seed=0)
    np.testing.assert_array_equal(np.asarray(still(patches, training=True)), patches)


def test_deconvolution_round_trip_is_exact():
    rgb = np.random.default_rng(0).integers(1, 256, (4, 5, 5, 3)).astype(np.float64)
    density = _stains(rgb) @ RGB_FROM_HED
    np.testing.assert_allclose(np.exp(-density) * 255, rgb, rtol=1e-9)


def test_training_changes_each_stain_within_its_range(patches):
    scale, shift = 0.2, 0.05
    out = np.asarray(RandomStainJitter(scale=scale, shift=shift, seed=1)(patches, training=True))
    assert out.shape == patches.shape and out.dtype == np.float32
    assert out.min() >= 0 and out.max() <= 255
    assert not np.allclose(out, patches, atol=1)
    # Where nothing was clipped, the new stains are an affine map of the old ones
    # with one factor and one offset per patch and stain, inside the ranges.
    before, after = _stains(patches), _stains(out)
    for i in range(len(patches)):
        ok = (
            (out[i] > 1.5).all(axis=-1)
            & (out[i] < 254.5).all(axis=-1)
            & (patches[i] > 1.5).all(axis=-1)
        )
        for stain in range(3):
            x, y = before[i][ok][:, stain], after[i][ok][:, stain]
            factor, offset = np.polyfit(x, y, 1)
            assert 1 - scale - 0.02 <= factor <= 1 + scale + 0.02
            assert -shift - 0.02 <= offset <= shift + 0.02
    # Patches get different draws.
    shifts = [np.mean(out[i] - patches[i]) for i in range(len(patches))]
    assert np.std(shifts) > 0.1


def test_unit_range_and_seeded_draws(patches):
    unit = patches / 255.0
    a = RandomStainJitter(value_range=(0, 1), seed=3)(unit, training=True)
    b = RandomStainJitter(value_range=(0, 1), seed=3)(unit, training=True)
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert 0 <= float(np.min(a)) and float(np.max(a)) <= 1


def test_serializes(patches):
    inputs = keras.Input((50, 50, 3))
    model = keras.Model(inputs, RandomStainJitter(scale=0.1, shift=0.02, seed=5)(inputs))
    clone = keras.Model.from_config(model.get_config())
    layer = clone.layers[-1]
    assert isinstance(layer, RandomStainJitter)
    assert (layer.scale, layer.shift, layer.value_range, layer.seed) == (0.1, 0.02, (0.0, 255.0), 5)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"scale": 1.5}, "scale"), ({"shift": -1}, "shift"), ({"value_range": (1, 0)}, "value_range")],
)
def test_bad_parameters_name_themselves(kwargs, match):
    with pytest.raises(ValueError, match=match):
        RandomStainJitter(**kwargs)
