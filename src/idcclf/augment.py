"""Training-time augmentation as Keras preprocessing layers.

Histology patches have no canonical orientation, so every flip and 90-degree rotation
of a patch is an equally valid patch. On top of those exact symmetries the tutorial's
small rotations, zooms and shifts are kept. All layers are identity at inference.

By default the whole chain runs as *one* resampling per image
(:class:`RandomPatchTransform`): a random element of the dihedral group (flips and
quarter turns), a small rotation, a zoom and a shift compose into one affine map, so
the patch is interpolated once instead of three times. That is about five times
cheaper than Keras' separate ``RandomFlip``, ``RandomRotation``, ``RandomZoom`` and
``RandomTranslation`` layers (see ``docs/benchmarks_training.md``) and blurs the
patch less; ``build_augmentation(..., fused=False)`` still builds the separate layers.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import keras
from keras import layers, ops

#: Tutorial values: rotation_range=20 degrees, zoom_range=0.05, shifts of 10 %.
ROTATION_FACTOR = 20.0 / 360.0
ZOOM_FACTOR = 0.05
SHIFT_FACTOR = 0.1


@keras.saving.register_keras_serializable(package="idcclf")
class RandomRot90(layers.Layer):
    """Rotate each image of a batch by a random multiple of 90 degrees (training only).

    Parameters
    ----------
    seed : int or None, default=None
        Seed of the layer's random generator.
    """

    def __init__(self, seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, images, training=None):
        if not training:
            return images
        images = ops.convert_to_tensor(images, dtype=self.compute_dtype)
        batch = ops.shape(images)[0]
        quarter_turns = keras.random.randint((batch, 1, 1, 1), 0, 4, seed=self.seed_generator)
        transposed = ops.transpose(images, (0, 2, 1, 3))
        rotated = (
            images,
            ops.flip(transposed, axis=1),  # 90 degrees
            ops.flip(ops.flip(images, axis=1), axis=2),  # 180 degrees
            ops.flip(transposed, axis=2),  # 270 degrees
        )
        out = rotated[0]
        for turns in (1, 2, 3):
            out = ops.where(ops.equal(quarter_turns, turns), rotated[turns], out)
        return out

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "seed": self.seed}


@keras.saving.register_keras_serializable(package="idcclf")
class RandomPatchTransform(layers.Layer):
    """Flips, quarter turns, rotation, zoom and shift of each image in one resampling.

    In training, each image gets its own random affine map, the composition (in this
    order) of: a horizontal and a vertical flip, each with probability 1/2; a rotation
    by a uniform multiple of 90 degrees (square images only); a rotation by a uniform
    angle in ``[-rotation, rotation]`` (a fraction of a full turn, as in Keras'
    ``RandomRotation``); a zoom by a uniform factor in ``[1 - zoom, 1 + zoom]`` (the same
    on both axes, as ``RandomZoom(zoom)``); and a shift by a uniform fraction in
    ``[-shift, shift]`` of the height and, independently, of the width (as
    ``RandomTranslation(shift, shift)``). The image is then resampled once, with
    bilinear interpolation and reflected borders. At inference it is the identity.

    Parameters
    ----------
    rotation, zoom, shift : float
        Ranges as above; 0 disables a step.
    flips : bool, default=True
        Random horizontal and vertical flips and, for square images, quarter turns.
    seed : int or None, default=None
        Seed of the layer's random generator.
    """

    def __init__(
        self,
        rotation: float = ROTATION_FACTOR,
        zoom: float = ZOOM_FACTOR,
        shift: float = SHIFT_FACTOR,
        flips: bool = True,
        seed: int | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.rotation = float(rotation)
        self.zoom = float(zoom)
        self.shift = float(shift)
        self.flips = bool(flips)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)
        # TensorFlow has no XLA kernel for the projective transform it lowers to, and
        # Keras compiles with XLA by default on a GPU: this keeps it from trying.
        self.supports_jit = False

    def call(self, images, training=None):
        if not training:
            return images
        images = ops.convert_to_tensor(images, dtype=self.compute_dtype)
        shape = ops.shape(images)
        batch, height, width = shape[0], images.shape[1], images.shape[2]
        return ops.image.affine_transform(
            images,
            self._transforms(batch, height, width),
            interpolation="bilinear",
            fill_mode="reflect",
        )

    def _uniform(self, batch, low, high):
        return keras.random.uniform((batch,), low, high, seed=self.seed_generator)

    def _transforms(self, batch, height: int, width: int):
        """Per-image maps from output to input pixel coordinates, as 8 numbers each."""
        angle = self._uniform(batch, -2 * math.pi * self.rotation, 2 * math.pi * self.rotation)
        scale = self._uniform(batch, 1.0 - self.zoom, 1.0 + self.zoom)
        shift_x = self._uniform(batch, -self.shift * width, self.shift * width)
        shift_y = self._uniform(batch, -self.shift * height, self.shift * height)
        sign_x = sign_y = ops.ones((batch,))
        if self.flips:
            if height == width:
                turns = keras.random.randint((batch,), 0, 4, seed=self.seed_generator)
                angle = angle + (math.pi / 2) * ops.cast(turns, "float32")
            flips = keras.random.randint((2, batch), 0, 2, seed=self.seed_generator)
            sign_x, sign_y = ops.unstack(1.0 - 2.0 * ops.cast(flips, "float32"), axis=0)
        # Around the image centre c, a point p of the output is read at
        # c + F R(angle) scale (p - c - shift) of the input: the composition of the
        # inverse maps of shift, zoom, rotation(s) and flips.
        cos, sin = ops.cos(angle) * scale, ops.sin(angle) * scale
        a0, a1 = sign_x * cos, -sign_x * sin
        b0, b1 = sign_y * sin, sign_y * cos
        cx, cy = (width - 1) / 2.0, (height - 1) / 2.0
        px, py = cx + shift_x, cy + shift_y
        a2 = cx - a0 * px - a1 * py
        b2 = cy - b0 * px - b1 * py
        zeros = ops.zeros((batch,))
        return ops.stack([a0, a1, a2, b0, b1, b2, zeros, zeros], axis=1)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {
            **super().get_config(),
            "rotation": self.rotation,
            "zoom": self.zoom,
            "shift": self.shift,
            "flips": self.flips,
            "seed": self.seed,
        }


def build_augmentation(
    input_shape: Sequence[int], seed: int | None = None, *, fused: bool = True
) -> keras.Sequential:
    """Return the training augmentation for patches of ``input_shape``.

    Random horizontal and vertical flips, random 90-degree rotations (square patches
    only), then a small random rotation (up to 20 degrees), zoom (5 %) and shift
    (10 %), filling with reflected pixels so no artificial border appears.

    Parameters
    ----------
    input_shape : sequence of 3 ints
        Height, width and channels of one patch.
    seed : int or None, default=None
        Base seed; each layer gets its own seed derived from it.
    fused : bool, default=True
        One :class:`RandomPatchTransform` that resamples each patch once (fast), or,
        with False, the separate Keras layers ``RandomFlip``, :class:`RandomRot90`,
        ``RandomRotation``, ``RandomZoom`` and ``RandomTranslation`` (one resampling
        each; about five times slower on CPU).

    Returns
    -------
    keras.Sequential
        Layers that transform a batch in training and pass it through unchanged
        otherwise.
    """
    height, width = int(input_shape[0]), int(input_shape[1])

    def layer_seed(offset: int) -> int | None:
        return None if seed is None else int(seed) + offset

    if fused:
        return keras.Sequential(
            [RandomPatchTransform(seed=layer_seed(1), name="transform")], name="augmentation"
        )
    steps: list[layers.Layer] = [
        layers.RandomFlip("horizontal_and_vertical", seed=layer_seed(1), name="flip")
    ]
    if height == width:
        steps.append(RandomRot90(seed=layer_seed(2), name="rot90"))
    steps += [
        layers.RandomRotation(
            ROTATION_FACTOR, fill_mode="reflect", seed=layer_seed(3), name="rotate"
        ),
        layers.RandomZoom(ZOOM_FACTOR, fill_mode="reflect", seed=layer_seed(4), name="zoom"),
        layers.RandomTranslation(
            SHIFT_FACTOR, SHIFT_FACTOR, fill_mode="reflect", seed=layer_seed(5), name="shift"
        ),
    ]
    return keras.Sequential(steps, name="augmentation")
