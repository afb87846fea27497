"""H&E stain jitter: random changes of stain colour and intensity, as a Keras layer.

Slides from different labs, scanners and staining batches differ mostly in how much
haematoxylin (nuclei, blue-purple) and eosin (stroma, pink) they took up and in the
exact shade of each. A model that has only seen one lab's colours can fail on
another's, which is the classic failure of pathology models. Jittering the stains in
training (Tellez et al. 2018, 2019, "HED" augmentation) teaches the model to ignore
those differences.

Each patch is split into its stains by colour deconvolution (Ruifrok & Johnston
2001, the H-E-DAB matrix of scikit-image's ``rgb2hed``): optical density
``-ln(RGB)`` times the inverse stain matrix gives one concentration per stain and
pixel. Every stain's concentration is multiplied by a random factor in
``[1 - scale, 1 + scale]`` and shifted by a random amount in ``[-shift, shift]``
(one pair per stain and patch), and the result is mixed back to RGB. With
``scale = shift = 0`` the patch comes back unchanged (to float precision, with pure
black lifted to 1/255 before the logarithm).
"""

from __future__ import annotations

import keras
import numpy as np
from keras import layers, ops

#: Stain optical-density vectors, one row per stain (H, E, DAB): scikit-image's
#: ``rgb_from_hed`` (Ruifrok & Johnston 2001).
RGB_FROM_HED = np.array(
    [[0.65, 0.70, 0.29], [0.07, 0.99, 0.11], [0.27, 0.57, 0.78]], dtype=np.float64
)
HED_FROM_RGB = np.linalg.inv(RGB_FROM_HED)


@keras.saving.register_keras_serializable(package="idcclf")
class RandomStainJitter(layers.Layer):
    """Random haematoxylin, eosin and DAB intensity changes, in training only.

    Parameters
    ----------
    scale : float, default=0.05
        Each stain's concentration is multiplied by a factor drawn uniformly from
        ``[1 - scale, 1 + scale]``, per patch.
    shift : float, default=0.05
        ... and shifted by an amount drawn uniformly from ``[-shift, shift]``
        (optical-density units, natural log), per patch.
    value_range : tuple of 2 floats, default=(0, 255)
        Range of the input pixels (``(0, 1)`` for pre-scaled floats); the output is
        in the same range and of the layer's compute dtype.
    seed : int or None, default=None
        Seed of the layer's random generator.

    Notes
    -----
    The ranges are the "light" HED setting of Tellez et al. (2019, "Quantifying the
    effects of data augmentation and stain color normalization in convolutional
    neural networks for computational pathology", Medical Image Analysis 58), which
    helped most across their four tasks; larger values change the tissue's look
    more than labs do.
    """

    def __init__(
        self,
        scale: float = 0.05,
        shift: float = 0.05,
        value_range: tuple[float, float] = (0.0, 255.0),
        seed: int | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if not 0 <= scale < 1:
            raise ValueError(f"scale must be in [0, 1), got {scale!r}")
        if shift < 0:
            raise ValueError(f"shift must be >= 0, got {shift!r}")
        low, high = (float(v) for v in value_range)
        if not high > low:
            raise ValueError(
                f"value_range must be (low, high) with high > low, got {value_range!r}"
            )
        self.scale = float(scale)
        self.shift = float(shift)
        self.value_range = (low, high)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, images, training=None):
        if not training or (self.scale == 0 and self.shift == 0):
            return images
        images = ops.convert_to_tensor(images, dtype=self.compute_dtype)
        low, high = self.value_range
        rgb = (ops.cast(images, "float32") - low) / (high - low)
        # Transmitted light can't be 0: a floor of one grey level keeps -ln finite.
        density = -ops.log(ops.clip(rgb, 1.0 / 255.0, 1.0))
        stains = ops.matmul(density, ops.convert_to_tensor(HED_FROM_RGB, "float32"))
        batch = ops.shape(images)[0]
        factor = keras.random.uniform(
            (batch, 1, 1, 3), 1 - self.scale, 1 + self.scale, seed=self.seed_generator
        )
        offset = keras.random.uniform(
            (batch, 1, 1, 3), -self.shift, self.shift, seed=self.seed_generator
        )
        density = ops.matmul(
            stains * factor + offset, ops.convert_to_tensor(RGB_FROM_HED, "float32")
        )
        rgb = ops.clip(ops.exp(-density), 0.0, 1.0)
        return ops.cast(rgb * (high - low) + low, self.compute_dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {
            **super().get_config(),
            "scale": self.scale,
            "shift": self.shift,
            "value_range": list(self.value_range),
            "seed": self.seed,
        }


def stain_jitter(strength: float, rescale: float | None, seed: int | None = None):
    """The stain jitter of ``IDCClassifier(stain_jitter=strength, rescale=rescale)``.

    A :class:`RandomStainJitter` of scale and shift ``strength`` for pixels fed as
    ``0 .. 1 / rescale`` (0-255 for the default rescale, 0-1 for None).
    """
    top = 1.0 / rescale if rescale else 1.0
    return RandomStainJitter(strength, strength, value_range=(0.0, top), seed=seed)
