"""Training-time augmentation as Keras preprocessing layers.

Histology patches have no canonical orientation, so every flip and 90-degree rotation
of a patch is an equally valid patch. On top of those exact symmetries the tutorial's
small rotations, zooms and shifts are kept. All layers are identity at inference.
"""

from __future__ import annotations

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


def build_augmentation(input_shape: Sequence[int], seed: int | None = None) -> keras.Sequential:
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

    Returns
    -------
    keras.Sequential
        Layers that transform a batch in training and pass it through unchanged
        otherwise.
    """
    height, width = int(input_shape[0]), int(input_shape[1])

    def layer_seed(offset: int) -> int | None:
        return None if seed is None else int(seed) + offset

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
