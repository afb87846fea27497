"""Seeding every random generator a fit uses, and putting them back afterwards."""

import random

import numpy as np
import pytest

from idcclf import IDCClassifier
from idcclf._seeding import seed_from, seeded


def test_seeded_draws_repeat_and_the_global_state_comes_back():
    import tensorflow as tf
    from tensorflow.python.framework import config

    random.seed(5)
    np.random.seed(5)
    before = (random.random(), np.random.rand())
    random.seed(5)
    np.random.seed(5)
    draws = []
    for _ in range(2):
        with seeded(11):
            assert config.is_op_determinism_enabled()
            draws.append((random.random(), np.random.rand(), float(tf.random.uniform(()))))
    assert draws[0] == draws[1]
    assert (random.random(), np.random.rand()) == before
    assert not config.is_op_determinism_enabled()


def test_seeded_none_changes_nothing():
    np.random.seed(5)
    expected = np.random.rand()
    np.random.seed(5)
    with seeded(None):
        pass
    assert np.random.rand() == expected


def test_seed_from_leaves_a_random_state_untouched():
    state = np.random.RandomState(0)
    first = seed_from(state)
    assert first == seed_from(state) and isinstance(first, int)
    assert state.randint(10**6) == np.random.RandomState(0).randint(10**6)
    assert seed_from(7) == 7 and seed_from(None) is None
    with pytest.raises(ValueError, match="random_state must be"):
        seed_from("seven")


def test_seeded_fit_leaves_global_random_state_alone(tiny_sample, tiny_params):
    from tensorflow.python.framework import config

    X, y, _ = tiny_sample
    np.random.seed(123)
    expected = np.random.rand()
    np.random.seed(123)
    IDCClassifier(**{**tiny_params, "epochs": 1}, validation_fraction=0).fit(X[:64], y[:64])
    assert np.random.rand() == expected
    assert not config.is_op_determinism_enabled()
    # an unseeded fit right after a seeded one must work (unseeded ops under
    # deterministic mode would raise)
    IDCClassifier(**{**tiny_params, "epochs": 1, "random_state": None}).fit(X[:64], y[:64])
