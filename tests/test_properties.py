"""Property-based tests (hypothesis): patch file-name parsing and estimator input checks.

The estimator tests call ``IDCClassifier._validate_data`` directly, which is what
``fit``, ``predict`` and ``predict_proba`` run on ``X`` before anything reaches Keras;
only one tiny network is trained, once, outside the hypothesis loops.
"""

from __future__ import annotations

import math
import os
import re
import string
import warnings
from pathlib import Path

import numpy as np
import pytest
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from idcclf import IDCClassifier
from idcclf._inputs import check_pixel_dtype
from idcclf.datasets import parse_patch_filename

FAST = settings(max_examples=150, deadline=None)
MEDIUM = settings(max_examples=60, deadline=None)
PATTERN = "<patient>_idx5_x<X>_y<Y>_class<0|1>.png"

# ------------------------------------------------------------------ file names

# The parser takes the base name (after the last "/"), then fullmatches
# ``[^_/\\]+ _idx5_x \d+ _y \d+ _class [01] \.png`` case-insensitively: a patient id is
# any non-empty text without "_", "/" or "\\" (real ones are digits), coordinates are
# unbounded decimal numbers (leading zeros allowed) and the literal parts may be in any
# case.
patients = st.one_of(
    st.integers(0, 10**6).map(str),
    st.text(
        st.characters(exclude_characters="_/\\", exclude_categories=("Cs",)),
        min_size=1,
        max_size=12,
    ),
)
coords = st.integers(0, 10**15)
labels = st.sampled_from([0, 1])


@st.composite
def ascii_case(draw, token: str) -> str:
    """``token`` with the case of each ASCII letter chosen at random."""
    flips = draw(st.lists(st.booleans(), min_size=len(token), max_size=len(token)))
    return "".join(ch.swapcase() if flip else ch for ch, flip in zip(token, flips, strict=True))


@st.composite
def padded(draw, value: int) -> str:
    return "0" * draw(st.integers(0, 3)) + str(value)


@st.composite
def folder_prefixes(draw) -> str:
    parts = draw(
        st.lists(st.text(string.ascii_letters + string.digits + "._- ", min_size=1), max_size=3)
    )
    lead = draw(st.sampled_from(["", "/", "./", "../"]))
    return lead + "".join(f"{p}/" for p in parts)


def assert_rejected(name: str | os.PathLike[str]) -> None:
    base = os.path.basename(os.fspath(name))
    with pytest.raises(ValueError) as info:
        parse_patch_filename(name)
    message = str(info.value)
    assert repr(base) in message, message  # names the file
    assert PATTERN in message, message  # and says what was expected


@FAST
@given(
    patient=patients,
    x=coords,
    y=coords,
    label=labels,
    data=st.data(),
)
@example(patient="8863", x=51, y=1251, label=0, data=None)
def test_valid_names_round_trip(patient, x, y, label, data):
    name = f"{patient}_idx5_x{x}_y{y}_class{label}.png"
    expected = (patient, x, y, label)
    got = parse_patch_filename(name)
    assert got == expected
    assert [type(v) for v in got] == [str, int, int, int]
    if data is None:
        return
    # The literal parts in any case, zero-padded numbers, leading folders and path
    # objects all parse to the same tuple.
    variant = (
        f"{patient}_{data.draw(ascii_case('idx5'))}_{data.draw(ascii_case('x'))}"
        f"{data.draw(padded(x))}_{data.draw(ascii_case('y'))}{data.draw(padded(y))}"
        f"_{data.draw(ascii_case('class'))}{label}{data.draw(ascii_case('.png'))}"
    )
    assert parse_patch_filename(variant) == expected
    prefixed = data.draw(folder_prefixes()) + variant
    assert parse_patch_filename(prefixed) == expected
    assert parse_patch_filename(Path(prefixed)) == expected


@FAST
@given(text=st.text(max_size=60))
def test_random_text_not_ending_in_png_is_rejected(text):
    # The pattern ends in a case-insensitive ".png"; nothing else can match it.
    assume(text[-4:].lower() != ".png")
    assert_rejected(text)


@FAST
@given(text=st.text(st.characters(exclude_characters="_/"), max_size=40), suffix=ascii_case(".png"))
def test_text_without_underscores_is_rejected(text, suffix):
    # Every valid name has four "_"; this one has none.
    assert_rejected(text + suffix)


def _parts(patient: str, x: str, y: str, label: str, suffix: str = ".png") -> list[str]:
    return [patient, "_idx5", f"_x{x}", f"_y{y}", f"_class{label}", suffix]


# Coordinates that are not a plain decimal number: empty, signs, decimals,
# exponents, hex, spaces, letters (no "_" or "/", so the rest of the name stays put).
non_decimal = st.text(st.characters(codec="ascii", exclude_characters="_/"), max_size=8).filter(
    lambda s: not s.isdecimal()
)


@st.composite
def invalid_names(draw) -> str:
    patient = draw(patients)
    x, y, label = str(draw(coords)), str(draw(coords)), str(draw(labels))
    kind = draw(
        st.sampled_from(
            [
                "suffix",
                "missing",
                "negative",
                "non_decimal",
                "label",
                "patient",
                "idx",
                "extra",
            ]
        )
    )
    if kind == "suffix":
        suffix = draw(
            st.one_of(
                st.sampled_from(
                    ["", ".jpg", ".pn", ".pngx", ".png.bak", ".png ", " .png", ".tif", "png"]
                ),
                st.text(max_size=6).filter(lambda s: s.lower() != ".png"),
            )
        )
        return "".join(_parts(patient, x, y, label, suffix))
    if kind == "missing":
        parts = _parts(patient, x, y, label)
        del parts[draw(st.integers(0, len(parts) - 1))]
        return "".join(parts)
    if kind == "negative":
        neg = "-" + str(draw(st.integers(1, 10**6)))
        which = draw(st.sampled_from(["x", "y", "both"]))
        return "".join(
            _parts(
                patient,
                neg if which in ("x", "both") else x,
                neg if which in ("y", "both") else y,
                label,
            )
        )
    if kind == "non_decimal":
        junk = draw(non_decimal)
        if draw(st.booleans()):
            return "".join(_parts(patient, junk, y, label))
        return "".join(_parts(patient, x, junk, label))
    if kind == "label":
        bad = draw(
            st.one_of(
                st.integers(2, 99).map(str),
                st.sampled_from(["", "00", "01", "10", "11", "-1", "a", "0.0", "1 "]),
            )
        )
        return "".join(_parts(patient, x, y, bad))
    if kind == "patient":
        bad = draw(st.sampled_from(["", "a_b", "_", "88_63"]))
        return "".join(_parts(bad, x, y, label))
    if kind == "idx":
        idx = draw(st.sampled_from(["idx4", "idx", "idx55", "idx 5", "id5", "5"]))
        return f"{patient}_{idx}_x{x}_y{y}_class{label}.png"
    # "extra": something after or between the parts.
    parts = _parts(patient, x, y, label)
    parts.insert(draw(st.integers(1, len(parts))), draw(st.sampled_from(["_", "_extra", "__"])))
    return "".join(parts)


@FAST
@given(name=invalid_names(), prefix=folder_prefixes())
def test_invalid_names_raise_naming_the_file(name, prefix):
    assert_rejected(name)
    assert_rejected(prefix + name)


@FAST
@given(
    digit=st.characters(categories=["Nd"]).filter(lambda c: not c.isascii()),
    field=st.sampled_from(["x", "y"]),
)
def test_digits_of_other_scripts_are_not_coordinates(digit, field):
    # Python's int() reads "５" as 5, so without an ASCII-only pattern these names
    # would load with made-up coordinates.
    x, y = (digit, "0") if field == "x" else ("0", digit)
    assert_rejected(f"8863_idx5_x{x}_y{y}_class0.png")


@FAST
@given(lookalike=st.sampled_from(["claſſ", "İdx5", "ıdx5"]))
def test_unicode_case_folds_are_not_the_fixed_parts(lookalike):
    name = (
        f"8863_idx5_x1_y2_{lookalike}0.png"
        if "cla" in lookalike
        else f"8863_{lookalike}_x1_y2_class0.png"
    )
    assert_rejected(name)


# --------------------------------------------------------------- estimator input

shapes = st.tuples(st.integers(1, 6), st.integers(1, 6), st.integers(1, 4))
n_samples = st.integers(2, 5)
pixel_dtypes = st.sampled_from([np.uint8, np.float16, np.float32, np.float64, np.int64])


def pixels(dtype, shape):
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        elements = st.floats(0, 255, width=min(64, 8 * dtype.itemsize))
    else:
        elements = st.integers(0, 255)
    return hnp.arrays(dtype, shape, elements=elements)


def validate(clf: IDCClassifier, X, reset: bool = False) -> np.ndarray:
    with warnings.catch_warnings():
        # rescale=None everywhere, but keep any "prescaled" warning out of the output.
        warnings.simplefilter("ignore", UserWarning)
        out, _ = clf._validate_data(X, None, reset=reset)
    return out


def expected_images(X: np.ndarray, shape) -> np.ndarray:
    X = X.reshape((X.shape[0], *shape))
    return X.astype(np.float32) if X.dtype.kind == "f" else X


@MEDIUM
@given(shape=shapes, n=n_samples, dtype=pixel_dtypes, data=st.data())
def test_rows_and_images_give_the_same_images(shape, n, dtype, data):
    images = data.draw(pixels(dtype, (n, *shape)))
    rows = images.reshape(n, -1)
    want = expected_images(images, shape)

    for first, second in ((images, rows), (rows, images)):
        clf = IDCClassifier(input_shape=shape, rescale=None)
        got = validate(clf, first, reset=True)
        assert clf.image_shape_ == shape
        assert clf.n_features_in_ == math.prod(shape)
        # The form given at fit does not tie the estimator to it later.
        again = validate(clf, second)
        for out in (got, again):
            assert out.shape == (n, *shape)
            assert out.dtype == want.dtype
            np.testing.assert_array_equal(out, want)

    if images.dtype == np.uint8:
        # uint8 patches go in as they are: no float copy, not even a uint8 copy.
        clf = IDCClassifier(input_shape=shape, rescale=None)
        assert np.shares_memory(validate(clf, images, reset=True), images)
        assert np.shares_memory(validate(clf, rows), rows)


@MEDIUM
@given(shape=shapes, n=n_samples, data=st.data())
def test_input_shape_none_takes_the_shape_from_X(shape, n, data):
    images = data.draw(pixels(np.uint8, (n, *shape)))
    clf = IDCClassifier(input_shape=None, rescale=None)
    np.testing.assert_array_equal(validate(clf, images, reset=True), images)
    assert clf.image_shape_ == shape

    # Rows of d values are 1 x d single-channel images.
    rows = images.reshape(n, -1)
    d = rows.shape[1]
    clf = IDCClassifier(input_shape=None, rescale=None)
    out = validate(clf, rows, reset=True)
    assert clf.image_shape_ == (1, d, 1)
    assert clf.n_features_in_ == d
    np.testing.assert_array_equal(out, rows.reshape(n, 1, d, 1))


@MEDIUM
@given(shape=shapes, other=shapes, n=n_samples, reset=st.booleans())
def test_images_of_another_shape_raise_naming_both(shape, other, n, reset):
    assume(other != shape)
    clf = IDCClassifier(input_shape=shape, rescale=None)
    validate(clf, np.zeros((2, *shape), np.uint8), reset=True)
    with pytest.raises(ValueError) as info:
        validate(clf, np.zeros((n, *other), np.uint8), reset=reset)
    assert str(other) in str(info.value) and str(shape) in str(info.value)


@MEDIUM
@given(shape=shapes, channels=st.integers(1, 5), n=n_samples)
def test_wrong_channel_count_raises(shape, channels, n):
    h, w, c = shape
    assume(channels != c)
    clf = IDCClassifier(input_shape=shape, rescale=None)
    with pytest.raises(ValueError) as info:
        validate(clf, np.zeros((n, h, w, channels), np.uint8), reset=True)
    assert str((h, w, channels)) in str(info.value)


@MEDIUM
@given(shape=shapes, width=st.integers(1, 150), n=n_samples, reset=st.booleans())
def test_rows_of_another_length_raise_naming_it(shape, width, n, reset):
    expected = math.prod(shape)
    assume(width != expected)
    clf = IDCClassifier(input_shape=shape, rescale=None)
    validate(clf, np.zeros((2, *shape), np.uint8), reset=True)
    with pytest.raises(ValueError) as info:
        validate(clf, np.zeros((n, width), np.uint8), reset=reset)
    message = str(info.value)
    assert f"{width} features" in message and f"expecting {expected} features" in message


@MEDIUM
@given(
    dims=st.one_of(
        st.lists(st.integers(1, 4), min_size=3, max_size=3),
        st.lists(st.integers(1, 3), min_size=5, max_size=6),
    ),
    input_shape=st.sampled_from([None, (2, 2, 3)]),
    reset=st.booleans(),
)
def test_arrays_neither_images_nor_rows_raise_naming_the_shape(dims, input_shape, reset):
    X = np.zeros((2, *dims[1:]), np.uint8)
    clf = IDCClassifier(input_shape=input_shape, rescale=None)
    if not reset:
        validate(clf, np.zeros((2, 2, 2, 3), np.uint8), reset=True)
    with pytest.raises(ValueError, match=re.escape(str(X.shape))):
        validate(clf, X, reset=reset)


@MEDIUM
@given(n=st.integers(1, 20), reset=st.booleans())
def test_one_dimensional_X_is_refused(n, reset):
    clf = IDCClassifier(input_shape=(1, 1, 1), rescale=None)
    if not reset:
        validate(clf, np.zeros((2, 1), np.uint8), reset=True)
    with pytest.raises(ValueError, match="1D"):
        validate(clf, np.zeros(n, np.uint8), reset=reset)


@MEDIUM
@given(
    shape=shapes,
    n=n_samples,
    dtype=st.sampled_from([np.float16, np.float32, np.float64]),
    bad=st.sampled_from([np.nan, np.inf, -np.inf]),
    rows=st.booleans(),
    reset=st.booleans(),
    data=st.data(),
)
def test_nan_and_infinity_are_refused(shape, n, dtype, bad, rows, reset, data):
    X = data.draw(pixels(dtype, (n, *shape)))
    X[tuple(data.draw(st.integers(0, d - 1)) for d in X.shape)] = bad
    if rows:
        X = X.reshape(n, -1)
    clf = IDCClassifier(input_shape=shape, rescale=None)
    if not reset:
        validate(clf, np.zeros((2, *shape), np.uint8), reset=True)
    with pytest.raises(ValueError, match="NaN|infinity"):
        validate(clf, X, reset=reset)


@MEDIUM
@given(
    shape=shapes,
    n=n_samples,
    data=st.data(),
)
@example(shape=(1, 1, 1), n=2, data=None)
def test_finite_float64_input_never_comes_out_infinite(shape, n, data):
    # X is cast to float32 after the NaN/infinity check; a finite float64 value beyond
    # float32's range (about 3.4e38) must not slip through as infinity.
    if data is None:
        X = np.full((n, *shape), 1e39)
    else:
        X = data.draw(
            hnp.arrays(
                np.float64, (n, *shape), elements=st.floats(allow_nan=False, allow_infinity=False)
            )
        )
    clf = IDCClassifier(input_shape=shape, rescale=None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # numpy's "overflow in cast"
        try:
            out = validate(clf, X, reset=True)
        except ValueError:
            return  # refusing such values is fine too
    assert np.isfinite(out).all(), "finite float64 X became non-finite float32"


@FAST
@given(
    dtype=st.sampled_from(["bool", "datetime64[s]", "timedelta64[ms]"]),
    shape=st.tuples(n_samples, st.integers(1, 30)),
)
def test_non_pixel_dtypes_are_refused_naming_the_dtype(dtype, shape):
    X = np.zeros(shape, dtype=dtype)
    with pytest.raises(ValueError, match=re.escape(f"X has dtype {np.dtype(dtype)}")):
        check_pixel_dtype(X)
    clf = IDCClassifier(input_shape=(1, shape[1], 1), rescale=None)
    with pytest.raises(ValueError, match=re.escape(str(np.dtype(dtype)))):
        validate(clf, X, reset=True)


@MEDIUM
@given(n=st.integers(2, 6), m=st.integers(1, 6))
def test_X_and_y_of_different_lengths_are_refused(n, m):
    assume(n != m)
    clf = IDCClassifier(input_shape=(2, 2, 1), rescale=None)
    clf.classes_ = None  # as fit does before validating
    y = np.arange(m) % 2
    with pytest.raises(ValueError, match=re.escape(f"[{n}, {m}]")):
        clf._validate_data(np.zeros((n, 4), np.uint8), y, reset=True)


# A single network trained once: predict_proba must not care how X is laid out.
TINY = dict(
    filters=(2,),
    convs_per_block=(1,),
    dense_units=4,
    epochs=1,
    augment=False,
    batch_size=8,
    validation_fraction=0.0,
    recalibrate_batch_norm=False,
    random_state=0,
)
TINY_SHAPE = (4, 4, 3)


@pytest.fixture(scope="module")
def tiny_fitted():
    rng = np.random.default_rng(0)
    X = rng.integers(0, 256, (8, *TINY_SHAPE), dtype=np.uint8)
    y = np.array([0, 1] * 4)
    return IDCClassifier(input_shape=TINY_SHAPE, **TINY).fit(X, y)


@settings(max_examples=8, deadline=None)
@given(
    n=st.integers(1, 4), dtype=st.sampled_from([np.uint8, np.float32, np.float64]), data=st.data()
)
@example(n=1, dtype=np.uint8, data=None)  # one patch: still one row of 2 probabilities
@example(n=2, dtype=np.float32, data="rescaled")  # all 0.5: the batch that once failed here
@example(n=1, dtype=np.float64, data="underflow")  # 0 in float32: black, so not refused
def test_fitted_model_gives_the_same_probabilities_for_rows_and_images(tiny_fitted, n, dtype, data):
    if data is None:
        images = np.full((n, *TINY_SHAPE), 128, dtype)
    elif data == "rescaled":
        images = np.full((n, *TINY_SHAPE), 0.5, dtype)
    elif data == "underflow":
        images = np.full((n, *TINY_SHAPE), 4.9e-241, dtype)
    else:
        images = data.draw(pixels(dtype, (n, *TINY_SHAPE)))
    # The range check sees what the network will: floats as float32.
    seen = images.astype(np.float32) if images.dtype.kind == "f" else images
    if seen.dtype.kind == "f" and seen.max() <= 1 and np.any(seen != np.floor(seen)):
        # What X / 255 looks like (floats in [0, 1], one fractional): refused either way.
        for batch in (images, images.reshape(n, -1)):
            with pytest.raises(ValueError, match=re.escape("X * 255")):
                tiny_fitted.predict_proba(batch)
    else:
        by_image = tiny_fitted.predict_proba(images)
        by_row = tiny_fitted.predict_proba(images.reshape(n, -1))
        assert by_image.shape == (n, 2)
        np.testing.assert_array_equal(by_image, by_row)
    with pytest.raises(ValueError, match=re.escape("(4, 4, 1)")):
        tiny_fitted.predict_proba(np.zeros((n, 4, 4, 1), np.uint8))
