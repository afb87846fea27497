"""Seeding every random generator a fit uses, and putting them back afterwards."""

from __future__ import annotations

import contextlib
import numbers
import random

import keras
import numpy as np


@contextlib.contextmanager
def seeded(seed: int | None):
    """Seed Python, NumPy, TensorFlow and Keras, with deterministic ops, then restore.

    Does nothing when ``seed`` is None. The previous global seeds and the op
    determinism switch are put back afterwards, so user code that runs after a fit
    is not left with seeded generators or with determinism enabled (under which
    unseeded random ops raise).
    """
    if seed is None:
        yield
        return
    import tensorflow as tf
    from tensorflow.python.eager import context
    from tensorflow.python.framework import config

    # The legacy global NumPy state is what keras.utils.set_random_seed reseeds.
    python_state, numpy_state = random.getstate(), np.random.get_state()  # noqa: NPY002
    tf_seed = context.global_seed()
    was_deterministic = config.is_op_determinism_enabled()
    keras.utils.set_random_seed(seed)
    config.enable_op_determinism()
    try:
        yield
    finally:
        if not was_deterministic:
            config.disable_op_determinism()  # no public switch-off exists
        tf.random.set_seed(tf_seed)
        random.setstate(python_state)
        np.random.set_state(numpy_state)  # noqa: NPY002


def seed_from(random_state) -> int | None:
    """The integer seed (or None) that a ``random_state`` parameter stands for."""
    if random_state is None or isinstance(random_state, numbers.Integral):
        return random_state
    if isinstance(random_state, np.random.RandomState):
        # Copy the state so that drawing a seed leaves the user's generator untouched.
        generator = np.random.RandomState()
        generator.set_state(random_state.get_state())
        return int(generator.randint(np.iinfo(np.int32).max))
    raise ValueError(f"random_state must be None, an int or a RandomState, got {random_state!r}")
