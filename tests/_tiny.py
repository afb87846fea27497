"""The smallest CancerNet settings that still learn: for tests that fit real networks."""

#: One epoch of a 4-8-8 filter network with 8 dense units, no augmentation and no
#: internal validation split, seeded.
TINY_FIT = dict(
    filters=(4, 8, 8),
    dense_units=8,
    epochs=1,
    augment=False,
    validation_fraction=0,
    random_state=0,
)
