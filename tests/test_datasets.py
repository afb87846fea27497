"""Tests of idcclf.datasets: file-name parsing, load_idc, its cache, and load_sample."""

from __future__ import annotations

import io
import json
import os
import re
import struct
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from idcclf.datasets import (
    _cache,
    _decode,
    decode_executor,
    load_idc,
    load_patches,
    load_sample,
    parse_patch_filename,
    sample_path,
)

ARRAY_FIELDS = ("data", "target", "groups", "coords", "filenames", "original_shapes")
# Real patients with smaller-than-50x50 edge patches (76, 69 and 4 of them).
REAL_ODD_PATIENTS = ["8914", "9076", "8863"]


# ------------------------------------------------------------------------ helpers


def png_bytes(arr: np.ndarray, mode: str | None = None) -> bytes:
    buf = io.BytesIO()
    img = Image.fromarray(arr) if mode is None else Image.fromarray(arr).convert(mode)
    img.save(buf, format="PNG")
    return buf.getvalue()


def raw_png(width: int, height: int, bit_depth: int, color_type: int, rows: list[bytes]) -> bytes:
    """A PNG written by hand (Pillow cannot write 16-bit RGB)."""

    def chunk(ctype: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(ctype + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + ctype + data + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0)
    idat = zlib.compress(b"".join(b"\x00" + r for r in rows))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def patch_array(seed: int, h: int = 50, w: int = 50) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def write_patch(
    root: Path,
    patient: str,
    cls: int,
    x: int,
    y: int,
    *,
    arr: np.ndarray | None = None,
    content: bytes | None = None,
    name: str | None = None,
    folder: str | None = None,
) -> Path:
    folder = str(cls) if folder is None else folder
    name = name or f"{patient}_idx5_x{x}_y{y}_class{cls}.png"
    path = root / patient / folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    if content is None:
        content = png_bytes(patch_array(hash((patient, cls, x, y)) % 2**32) if arr is None else arr)
    path.write_bytes(content)
    return path


def make_tree(root: Path, n_per_class: int = 2, patients: tuple[str, ...] = ("10", "11")) -> Path:
    for p in patients:
        for c in (0, 1):
            for k in range(n_per_class):
                write_patch(root, p, c, 50 * k, 50 * c)
    return root


def assert_same(a, b, descr: bool = True) -> None:
    for f in ARRAY_FIELDS:
        np.testing.assert_array_equal(a[f], b[f], err_msg=f)
        assert a[f].dtype == b[f].dtype, f
    if descr:
        assert a.DESCR == b.DESCR


def load_quiet(path, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return load_idc(path, **kwargs)


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "data_home"


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    return make_tree(tmp_path / "idc")


@pytest.fixture
def count_decodes(monkeypatch):
    """Count calls of the per-file decoder (decoding stays in this process)."""
    calls = []
    real = _decode._decode_patch

    def counting(path):
        calls.append(path)
        return real(path)

    monkeypatch.setattr(_decode, "_decode_patch", counting)
    with decode_executor("thread"):
        yield calls


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    return load_sample(data_home=tmp_path_factory.mktemp("sample_home"))


# ------------------------------------------------------------------ file names


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("8863_idx5_x51_y1251_class0.png", ("8863", 51, 1251, 0)),
        ("12955_idx5_x2401_y1_class1.png", ("12955", 2401, 1, 1)),
        ("/data/8863/1/8863_idx5_x0_y0_class1.png", ("8863", 0, 0, 1)),
        (Path("8863/0/8863_idx5_x100_y7_class0.png"), ("8863", 100, 7, 0)),
    ],
)
def test_parse_patch_filename_good(name, expected):
    assert parse_patch_filename(name) == expected


@pytest.mark.parametrize(
    "name",
    [
        "8863_idx5_x51_y1251_class2.png",
        "8863_idx5_x51_y1251.png",
        "8863_idx5_x51_class0.png",
        "8863_idx5_xA_y1_class0.png",
        "8863_idx5_x-1_y1_class0.png",
        "8863_idx5_x51_y1251_class0.jpg",
        "8863_idx5_x51_y1251_class0.png.bak",
        "_idx5_x1_y1_class0.png",
        "8863_idx4_x1_y1_class0.png",
        "README.png",
        "",
    ],
)
def test_parse_patch_filename_bad(name):
    with pytest.raises(ValueError, match=re.escape(repr(name))):
        parse_patch_filename(name)


# -------------------------------------------------------------------- basic load


def test_load_synthetic_tree(tree, home):
    b = load_idc(tree, data_home=home)
    assert b.data.shape == (8, 50, 50, 3)
    assert b.data.dtype == np.uint8 and b.data.flags["C_CONTIGUOUS"]
    assert b.target.dtype == np.int64 and b.coords.dtype == np.int64
    assert b.original_shapes.dtype == np.int64
    assert list(b.target_names) == ["no IDC", "IDC"]
    assert list(b.groups) == ["10"] * 4 + ["11"] * 4
    assert list(b.target) == [0, 0, 1, 1, 0, 0, 1, 1]
    assert b.filenames[0] == "10/0/10_idx5_x0_y0_class0.png"
    for i, rel in enumerate(b.filenames):
        patient, x, y, label = parse_patch_filename(rel)
        assert (patient, label) == (b.groups[i], b.target[i])
        assert tuple(b.coords[i]) == (x, y)
        with Image.open(tree / rel) as im:
            np.testing.assert_array_equal(b.data[i], np.asarray(im))
    np.testing.assert_array_equal(b.original_shapes, np.full((8, 2), 50))
    assert str(tree.resolve()) in b.DESCR
    assert "patches: 8 (class 0 'no IDC': 4; class 1 'IDC': 4)" in b.DESCR


def test_return_X_y(tree, home):
    X, y = load_idc(tree, data_home=home, return_X_y=True)
    b = load_idc(tree, data_home=home)
    np.testing.assert_array_equal(X, b.data)
    np.testing.assert_array_equal(y, b.target)


def test_order_is_deterministic_and_sorted(tmp_path, home):
    root = tmp_path / "idc"
    coords = [(x, y) for x in (300, 5, 1000, 50) for y in (7, 100, 2)]
    rng = np.random.default_rng(0)
    # Create files in a random order: the result must not depend on it.
    for i in rng.permutation(len(coords)):
        for p in ("9", "10"):
            write_patch(root, p, int(i % 2), *coords[i])
    b = load_idc(root, cache=False)
    keys = [(g, t, Path(f).name) for g, t, f in zip(b.groups, b.target, b.filenames, strict=True)]
    assert keys == sorted(keys)
    again = load_idc(root, cache=False, n_jobs=1)
    assert_same(b, again)


def test_ignores_non_png_and_hidden_files(tree, home):
    (tree / "README.md").write_text("about")
    (tree / ".DS_Store").write_bytes(b"\0\1")
    (tree / "10" / "0" / "notes.txt").write_text("x")
    (tree / "10" / "0" / "._10_idx5_x0_y0_class0.png").write_bytes(b"\0AppleDouble")
    (tree / "10" / "thumbs.db").write_bytes(b"\0")
    (tree / "__MACOSX" / "10" / "0").mkdir(parents=True)
    (tree / "__MACOSX" / "10" / "0" / "._x.png").write_bytes(b"\0")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        b = load_idc(tree, data_home=home)
    assert len(b.target) == 8
    assert "__MACOSX" not in b.DESCR


@pytest.mark.parametrize("n_jobs", [1, 2, -1, None])
def test_n_jobs_values_give_same_result(tree, n_jobs):
    ref = load_idc(tree, cache=False, n_jobs=1)
    assert_same(load_idc(tree, cache=False, n_jobs=n_jobs), ref)


@pytest.mark.parametrize("executor", ["thread", "process"])
def test_executors_give_same_result(monkeypatch, executor):
    # ~450 files: several chunks, so a real pool is used.
    ref = load_sample(patients=["8914", "9076"], cache=False, n_jobs=1)
    with decode_executor(executor):
        assert_same(load_sample(patients=["8914", "9076"], cache=False, n_jobs=2), ref)


# ------------------------------------------------------------- path/param errors


def test_missing_path(tmp_path):
    missing = tmp_path / "nope"
    with pytest.raises(FileNotFoundError, match=re.escape(str(missing))):
        load_idc(missing)


def test_path_is_a_file(tmp_path):
    f = tmp_path / "file.png"
    f.write_bytes(b"x")
    with pytest.raises(NotADirectoryError, match=re.escape(str(f))):
        load_idc(f)


def test_no_patches(tmp_path):
    (tmp_path / "empty" / "10" / "0").mkdir(parents=True)
    (tmp_path / "empty" / "README.txt").write_text("x")
    with pytest.raises(ValueError, match="no IDC patches found under .*empty"):
        load_idc(tmp_path / "empty", cache=False)


def test_single_patient_folder_hint(tree):
    with pytest.raises(ValueError, match="single patient"):
        load_idc(tree / "10", cache=False)


@pytest.mark.parametrize(
    ("kwargs", "param"),
    [
        ({"size_policy": "crop"}, "size_policy"),
        ({"size_policy": None}, "size_policy"),
        ({"on_error": "ignore"}, "on_error"),
        ({"max_per_class": 0}, "max_per_class"),
        ({"max_per_class": -3}, "max_per_class"),
        ({"max_per_class": 2.5}, "max_per_class"),
        ({"max_per_class": True}, "max_per_class"),
        ({"n_jobs": 0}, "n_jobs"),
        ({"n_jobs": "2"}, "n_jobs"),
        ({"n_jobs": 1.5}, "n_jobs"),
        ({"random_state": "seed"}, "random_state"),
        ({"patients": []}, "patients"),
        ({"patients": [1.5]}, "patients"),
    ],
)
def test_invalid_parameters(tree, kwargs, param):
    with pytest.raises(ValueError, match=param):
        load_idc(tree, cache=False, **kwargs)


# --------------------------------------------------------------------- patients


def test_patients_selection(tree, home):
    b = load_idc(tree, patients=[11], data_home=home)
    assert set(b.groups) == {"11"} and len(b.target) == 4
    assert "patients (1): 11" in b.DESCR
    b2 = load_idc(tree, patients="10", data_home=home)
    assert set(b2.groups) == {"10"}
    both = load_idc(tree, patients=["11", 10, "11"], data_home=home)
    assert list(dict.fromkeys(both.groups)) == ["10", "11"]


def test_unknown_patient(tree):
    with pytest.raises(ValueError, match=r"patients not found under .*: 12, 99\..*10, 11"):
        load_idc(tree, patients=["10", 99, "12"], cache=False)


# ---------------------------------------------------------------- max_per_class


def test_max_per_class(tmp_path, home):
    root = make_tree(tmp_path / "idc", n_per_class=6, patients=("1", "2", "3"))
    full = load_idc(root, cache=False)
    b = load_idc(root, max_per_class=5, random_state=3, data_home=home)
    assert np.bincount(b.target).tolist() == [5, 5]
    assert set(b.filenames) <= set(full.filenames)
    order = [list(full.filenames).index(f) for f in b.filenames]
    assert order == sorted(order)  # kept in the deterministic order
    i = [list(full.filenames).index(f) for f in b.filenames]
    np.testing.assert_array_equal(b.data, full.data[i])
    assert_same(b, load_idc(root, max_per_class=5, random_state=3, cache=False))
    picks = {
        tuple(load_idc(root, max_per_class=5, random_state=s, cache=False).filenames)
        for s in range(6)
    }
    assert len(picks) > 1  # the seed matters
    assert "max_per_class: 5" in b.DESCR
    everything = load_idc(root, max_per_class=1000, cache=False)
    other_seed = load_idc(root, cache=False, max_per_class=1000, random_state=9)
    assert_same(everything, other_seed, descr=False)
    np.testing.assert_array_equal(everything.data, full.data)


def test_max_per_class_replaces_dropped_and_bad(tmp_path):
    root = tmp_path / "idc"
    for k in range(8):
        write_patch(root, "1", 0, k, 0, arr=patch_array(k, 50, 20))  # odd size
        write_patch(root, "1", 0, k, 50)
        write_patch(root, "1", 1, k, 0, content=b"not a png" if k < 4 else None)
    with pytest.warns(UserWarning) as rec:
        b = load_idc(root, max_per_class=4, size_policy="drop", on_error="skip", cache=False)
    assert np.bincount(b.target).tolist() == [4, 4]
    assert (b.original_shapes == 50).all()
    assert len(rec) >= 1


def test_max_per_class_generator_is_not_cached(tree, home):
    b = load_idc(tree, max_per_class=1, random_state=np.random.default_rng(0), data_home=home)
    assert np.bincount(b.target).tolist() == [1, 1]
    assert not (home / "idc_cache").exists() or not any((home / "idc_cache").iterdir())


# -------------------------------------------------------------------- bad files


def _corrupt_idat(content: bytes) -> bytes:
    i = content.index(b"IDAT") + 20
    return content[:i] + bytes([content[i] ^ 0xFF]) + content[i + 1 :]


GOOD = png_bytes(patch_array(123))
BAD_CASES = {
    "corrupt": (lambda r, x: write_patch(r, "10", 0, x, 0, content=_corrupt_idat(GOOD)), "corrupt"),
    "corrupt_header": (
        lambda r, x: write_patch(r, "10", 0, x, 0, content=GOOD[:16] + b"\0\0\0\0" + GOOD[20:]),
        "corrupt",
    ),
    "truncated": (
        lambda r, x: write_patch(r, "10", 0, x, 0, content=GOOD[: len(GOOD) // 2]),
        "truncated",
    ),
    "truncated_no_iend": (
        lambda r, x: write_patch(r, "10", 0, x, 0, content=GOOD[:-12]),
        "truncated",
    ),
    "zero_bytes": (lambda r, x: write_patch(r, "10", 0, x, 0, content=b""), "empty file"),
    "jpeg_named_png": (
        lambda r, x: write_patch(r, "10", 0, x, 0, content=_jpeg_bytes()),
        "not a PNG",
    ),
    "text_named_png": (
        lambda r, x: write_patch(r, "10", 0, x, 0, content=b"hello world"),
        "not a PNG",
    ),
    "bad_name": (
        lambda r, x: write_patch(r, "10", 0, 0, 0, name=f"10_patch_{x}.png"),
        "does not match",
    ),
    "class_mismatch": (
        lambda r, x: write_patch(r, "10", 1, x, 0, folder="0"),
        "says class1 but the file is in class folder '0'",
    ),
    "patient_mismatch": (
        lambda r, x: write_patch(r, "10", 0, x, 0, name=f"77_idx5_x{x}_y0_class0.png"),
        "says patient '77' but the file is in patient folder '10'",
    ),
    "class_folder_2": (
        lambda r, x: write_patch(r, "10", 0, x, 0, folder="2"),
        "class folder '2' is not '0' or '1'",
    ),
    "outside_class_folder": (
        lambda r, x: write_patch(r, "10", 0, x, 0, folder=""),
        "not inside a <patient>/<0|1>/ folder",
    ),
    "png_in_root": (
        lambda r, x: _write(r / f"10_idx5_x{x}_y0_class0.png", GOOD),
        "not inside a <patient>/<0|1>/ folder",
    ),
    "too_large": (
        lambda r, x: write_patch(r, "10", 0, x, 0, arr=patch_array(5, 50, 60)),
        "60x50 px .*larger than 50x50",
    ),
    "too_tall": (
        lambda r, x: write_patch(r, "10", 0, x, 0, arr=patch_array(5, 51, 50)),
        "50x51 px .*larger than 50x50",
    ),
}


def _write(path: Path, content: bytes) -> Path:
    path.write_bytes(content)
    return path


def _jpeg_bytes() -> bytes:
    buf = io.BytesIO()
    Image.fromarray(patch_array(1)).save(buf, format="JPEG")
    return buf.getvalue()


@pytest.mark.parametrize("case", sorted(BAD_CASES))
def test_bad_file_raises_naming_file(tree, home, case):
    make, reason = BAD_CASES[case]
    bad = make(tree, 500)
    with pytest.raises(ValueError, match=re.escape(str(bad.resolve())) + ".*" + reason):
        load_idc(tree, data_home=home)
    assert not (home / "idc_cache").exists() or not any(
        (home / "idc_cache").glob("*/manifest.json")
    )


@pytest.mark.parametrize("case", sorted(BAD_CASES))
def test_bad_file_skipped_with_one_warning(tree, home, case):
    make, reason = BAD_CASES[case]
    bad = make(tree, 500)
    with pytest.warns(UserWarning) as rec:
        b = load_idc(tree, on_error="skip", data_home=home)
    assert len(rec) == 1
    msg = str(rec[0].message)
    assert "skipped 1 bad file" in msg
    assert re.search(re.escape(str(bad.resolve())) + ".*" + reason, msg)
    assert len(b.target) == 8  # only the good ones, with their right labels
    assert bad.resolve().relative_to(tree.resolve()).as_posix() not in set(b.filenames)
    assert "x500" not in " ".join(b.filenames)
    assert "bad files skipped: 1" in b.DESCR


def test_skip_lists_every_bad_file_once(tree, home):
    bad = [make(tree, 500 + k) for k, (make, _) in enumerate(BAD_CASES.values())]
    bad_paths = {str(p.resolve()) for p in bad}
    assert len(bad_paths) == len(BAD_CASES)
    with pytest.warns(UserWarning) as rec:
        b = load_idc(tree, on_error="skip", data_home=home)
    assert len(rec) == 1
    msg = str(rec[0].message)
    assert f"skipped {len(bad_paths)} bad file(s)" in msg
    for p in bad_paths:
        assert p in msg
    assert len(b.target) == 8
    assert f"bad files skipped: {len(bad_paths)}" in b.DESCR


def test_truncation_caught_even_if_pillow_allows_it(tree, monkeypatch):
    from PIL import ImageFile

    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)
    bad = write_patch(tree, "10", 0, 500, 0, content=GOOD[: len(GOOD) * 2 // 3])
    with pytest.raises(ValueError, match=re.escape(bad.name) + ".*truncated"):
        load_idc(tree, cache=False)


def test_raise_reports_how_many_more(tree):
    write_patch(tree, "10", 0, 500, 0, content=b"")
    write_patch(tree, "11", 0, 500, 0, content=b"")
    with pytest.raises(ValueError, match=r"10_idx5_x500_y0_class0\.png.*\(1 more bad file"):
        load_idc(tree, cache=False)


def test_all_files_bad(tmp_path):
    write_patch(tmp_path / "idc", "10", 0, 0, 0, content=b"")
    with pytest.warns(UserWarning), pytest.raises(ValueError, match="no usable IDC patches"):
        load_idc(tmp_path / "idc", on_error="skip", cache=False)


# ------------------------------------------------------------ modes and sizes


def test_color_modes_convert_to_rgb(tmp_path):
    root = tmp_path / "idc"
    gray = np.arange(2500, dtype=np.uint8).reshape(50, 50)
    rgb = patch_array(3)
    rgba = np.dstack([rgb, np.full((50, 50), 255, np.uint8)])
    rgba[0, 0, 3] = 0  # fully transparent -> white
    rgba[0, 1, 3] = 128  # half transparent -> halfway to white
    write_patch(root, "1", 0, 0, 0, content=png_bytes(gray))
    write_patch(root, "1", 0, 1, 0, content=png_bytes(rgba))
    write_patch(root, "1", 0, 2, 0, content=png_bytes(rgb, mode="P"))
    write_patch(root, "1", 0, 3, 0, content=png_bytes(rgb, mode="1"))
    b = load_idc(root, cache=False)
    by_x = {int(c[0]): i for i, c in enumerate(b.coords)}
    np.testing.assert_array_equal(b.data[by_x[0]], np.repeat(gray[..., None], 3, axis=2))
    got = b.data[by_x[1]]
    assert (got[0, 0] == 255).all()
    expected = (rgb[0, 1].astype(int) * 128 + 255 * 127 + 127) // 255
    np.testing.assert_array_equal(got[0, 1], expected)
    np.testing.assert_array_equal(got[1:], rgb[1:])
    with Image.open(io.BytesIO(png_bytes(rgb, mode="P"))) as im:
        np.testing.assert_array_equal(b.data[by_x[2]], np.asarray(im.convert("RGB")))
    assert set(np.unique(b.data[by_x[3]])) <= {0, 255}


def test_16_bit_pngs_are_scaled_not_clipped(tmp_path):
    root = tmp_path / "idc"
    gray16 = (np.arange(2500, dtype=np.uint32).reshape(50, 50) * 26).astype(np.uint16)
    gray16[0, :4] = [0, 255, 256, 65535]
    write_patch(root, "1", 0, 0, 0, content=png_bytes(gray16))
    rgb16 = np.random.default_rng(0).integers(0, 65536, (50, 50, 3)).astype(">u2")
    rgb16[0, 0] = [0, 65535, 300]
    rows = [rgb16[r].tobytes() for r in range(50)]
    write_patch(root, "1", 0, 1, 0, content=raw_png(50, 50, 16, 2, rows))
    b = load_idc(root, cache=False)
    g = b.data[0]
    assert g[0, :4, 0].tolist() == [0, 0, 1, 255]  # v >> 8, never clipped to 255
    np.testing.assert_array_equal(g[..., 0], (gray16 >> 8).astype(np.uint8))
    np.testing.assert_array_equal(b.data[1], (rgb16.astype(np.uint16) >> 8).astype(np.uint8))
    assert b.data[1][0, 0].tolist() == [0, 255, 1]


@pytest.fixture
def odd_tree(tmp_path):
    root = tmp_path / "idc"
    # Names sort as x0, x100, x50 within class 0.
    write_patch(root, "1", 0, 0, 0, arr=patch_array(1))
    write_patch(root, "1", 0, 50, 0, arr=patch_array(2, 42, 50))  # 50 wide, 42 high
    write_patch(root, "1", 0, 100, 0, arr=patch_array(3, 50, 12))
    write_patch(root, "1", 1, 0, 50, arr=patch_array(4, 1, 50))
    return root


def test_size_policy_pad(odd_tree, home):
    b = load_idc(odd_tree, data_home=home)
    assert b.coords[:, 0].tolist() == [0, 100, 50, 0]
    assert b.original_shapes.tolist() == [[50, 50], [50, 12], [42, 50], [1, 50]]
    np.testing.assert_array_equal(b.data[0], patch_array(1))
    np.testing.assert_array_equal(b.data[1, :, :12], patch_array(3, 50, 12))
    assert (b.data[1, :, 12:] == 255).all()
    np.testing.assert_array_equal(b.data[2, :42], patch_array(2, 42, 50))
    assert (b.data[2, 42:] == 255).all()
    np.testing.assert_array_equal(b.data[3, :1], patch_array(4, 1, 50))
    assert (b.data[3, 1:] == 255).all()
    assert "3 padded" in b.DESCR


def test_size_policy_resize(odd_tree, home):
    b = load_idc(odd_tree, size_policy="resize", data_home=home)
    expected = Image.fromarray(patch_array(2, 42, 50)).resize((50, 50), Image.Resampling.BILINEAR)
    np.testing.assert_array_equal(b.data[2], np.asarray(expected))
    np.testing.assert_array_equal(b.data[0], patch_array(1))
    assert b.original_shapes.tolist()[2] == [42, 50]
    assert "3 resized" in b.DESCR


def test_size_policy_drop(odd_tree, home):
    with pytest.warns(UserWarning, match="dropped 3 patch"):
        b = load_idc(odd_tree, size_policy="drop", data_home=home)
    assert len(b.target) == 1
    np.testing.assert_array_equal(b.data[0], patch_array(1))
    assert "3 dropped" in b.DESCR
    # A cache hit warns again, so the caller learns about it every time.
    with pytest.warns(UserWarning, match="dropped 3 patch"):
        load_idc(odd_tree, size_policy="drop", data_home=home)


# ------------------------------------------------------------------------ cache


def cache_dirs(home: Path) -> list[Path]:
    parent = home / "idc_cache"
    return (
        sorted(p for p in parent.iterdir() if not p.name.startswith(".")) if parent.exists() else []
    )


def test_cache_hit_does_not_decode(tree, home, monkeypatch):
    cold = load_idc(tree, data_home=home)
    (cdir,) = cache_dirs(home)
    manifest = json.loads((cdir / "manifest.json").read_text())
    assert set(manifest["arrays"]) == set(ARRAY_FIELDS)
    assert all((cdir / f"{f}.npy").is_file() for f in ARRAY_FIELDS)

    def boom(path):
        raise AssertionError(f"decoded {path} on a cache hit")

    monkeypatch.setattr(_decode, "_decode_patch", boom)
    with decode_executor("thread"):
        hot = load_idc(tree, data_home=home)
    assert_same(hot, cold)
    assert hot.data.flags["C_CONTIGUOUS"] and hot.data.flags["WRITEABLE"]
    assert type(hot.data) is np.ndarray
    hot.data[:] = 0  # copy-on-write: the cache file is unchanged
    assert_same(load_idc(tree, data_home=home), cold)


def test_cache_key_depends_on_options(tree, home, count_decodes):
    load_idc(tree, data_home=home)
    n = len(count_decodes)
    load_idc(tree, data_home=home, n_jobs=1)  # n_jobs does not change the output
    assert len(count_decodes) == n
    load_idc(tree, data_home=home, size_policy="resize")
    load_idc(tree, data_home=home, patients=["10"])
    load_idc(tree, data_home=home, max_per_class=1)
    load_idc(tree, data_home=home, max_per_class=1, random_state=1)
    assert len(cache_dirs(home)) == 5
    load_idc(tree, data_home=home, max_per_class=1, random_state=1)
    load_idc(tree, data_home=home, patients=[10])
    assert len(cache_dirs(home)) == 5


def _rewrite_in_place(path, pixels):
    path.write_bytes(png_bytes(pixels))
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))


def _bump_folder_mtime(folder):
    # Coarse-mtime file systems could leave the folder's mtime unchanged by a quick
    # change; move it forward explicitly so the test checks the logic, not the clock.
    st = folder.stat()
    os.utime(folder, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))


@pytest.mark.parametrize("cache_check", ["fast", "full"])
def test_cache_invalidated_on_add_replace_remove(tree, home, count_decodes, cache_check):
    first = load_idc(tree, data_home=home, cache_check=cache_check)
    n0 = len(count_decodes)
    assert n0 == 8

    added = write_patch(tree, "11", 1, 999, 999)
    b = load_idc(tree, data_home=home, cache_check=cache_check)
    assert len(b.target) == 9 and len(count_decodes) > n0

    # Replaced the way careful tools write files: a new file renamed over the old one.
    target = tree / first.filenames[0]
    new_pixels = patch_array(777)
    fresh = target.with_name(".new.png")
    fresh.write_bytes(png_bytes(new_pixels))
    os.replace(fresh, target)
    _bump_folder_mtime(target.parent)
    n1 = len(count_decodes)
    b = load_idc(tree, data_home=home, cache_check=cache_check)
    assert len(count_decodes) > n1
    np.testing.assert_array_equal(b.data[0], new_pixels)

    added.unlink()
    n2 = len(count_decodes)
    b = load_idc(tree, data_home=home, cache_check=cache_check)
    assert len(count_decodes) > n2 and len(b.target) == 8
    np.testing.assert_array_equal(b.data[0], new_pixels)

    n3 = len(count_decodes)
    load_idc(tree, data_home=home, cache_check=cache_check)
    assert len(count_decodes) == n3  # unchanged tree: hit


def test_full_cache_check_sees_files_rewritten_in_place(tree, home, count_decodes):
    first = load_idc(tree, data_home=home, cache_check="full")
    target = tree / first.filenames[0]
    mtime_before = target.parent.stat().st_mtime_ns
    new_pixels = patch_array(777)
    _rewrite_in_place(target, new_pixels)
    assert target.parent.stat().st_mtime_ns == mtime_before  # the folder did not change

    n1 = len(count_decodes)
    fast = load_idc(tree, data_home=home, cache_check="fast")
    # The fast check caches separately; it decodes this once, then trusts the folders.
    assert len(count_decodes) > n1
    np.testing.assert_array_equal(fast.data[0], new_pixels)
    _rewrite_in_place(target, patch_array(778))
    n2 = len(count_decodes)
    stale = load_idc(tree, data_home=home, cache_check="fast")
    assert len(count_decodes) == n2  # documented: an in-place rewrite is not seen
    np.testing.assert_array_equal(stale.data[0], new_pixels)

    full = load_idc(tree, data_home=home, cache_check="full")
    assert len(count_decodes) > n2
    np.testing.assert_array_equal(full.data[0], patch_array(778))


def test_cache_check_is_validated(tree, home):
    with pytest.raises(ValueError, match="cache_check must be one of"):
        load_idc(tree, data_home=home, cache_check="none")


def test_cache_is_atomic_and_damaged_cache_is_rebuilt(tree, home, count_decodes):
    ref = load_idc(tree, data_home=home)
    parent = home / "idc_cache"
    assert [p.name for p in parent.iterdir() if p.name.startswith(".")] == []
    (cdir,) = cache_dirs(home)

    damages = {
        "missing manifest": lambda: (cdir / "manifest.json").unlink(),
        "corrupt manifest": lambda: (cdir / "manifest.json").write_text("{not json"),
        "truncated data": lambda: (cdir / "data.npy").write_bytes(
            (cdir / "data.npy").read_bytes()[:1000]
        ),
        "missing array": lambda: (cdir / "coords.npy").unlink(),
        "damaged meta": lambda: (cdir / "manifest.json").write_text(
            json.dumps({**json.loads((cdir / "manifest.json").read_text()), "meta": {"x": 1}})
        ),
        "wrong version": lambda: (cdir / "manifest.json").write_text(
            json.dumps({**json.loads((cdir / "manifest.json").read_text()), "version": -1})
        ),
    }
    for what, damage in damages.items():
        damage()
        n = len(count_decodes)
        b = load_idc(tree, data_home=home)
        assert len(count_decodes) > n, what  # rebuilt, not read
        assert_same(b, ref)
        assert (cdir / "manifest.json").is_file(), what
        assert [p.name for p in parent.iterdir() if p.name.startswith(".")] == [], what
        n = len(count_decodes)
        load_idc(tree, data_home=home)
        assert len(count_decodes) == n, what  # and valid again


def test_interrupted_write_leaves_no_valid_cache(tree, home, monkeypatch, count_decodes):
    def killed(*args, **kwargs):
        raise KeyboardInterrupt  # as if the process died before the final rename

    monkeypatch.setattr(_cache.os, "rename", killed)
    with pytest.raises(KeyboardInterrupt):
        load_idc(tree, data_home=home)
    monkeypatch.undo()
    parent = home / "idc_cache"
    assert list(parent.iterdir()) == []  # temp dir cleaned up, nothing half-written
    # A temp dir left by a process killed with SIGKILL is never read as the cache.
    stale = parent / ".tmp-0123456789ab-xyz"
    stale.mkdir()
    (stale / "manifest.json").write_text("{}")
    calls = []
    real = _decode._decode_patch
    monkeypatch.setattr(_decode, "_decode_patch", lambda p: calls.append(p) or real(p))
    with decode_executor("thread"):
        b = load_idc(tree, data_home=home)
    assert len(calls) == 8 and len(b.target) == 8


def test_cache_false_writes_nothing(tree, home):
    load_idc(tree, cache=False, data_home=home)
    assert not home.exists()


def test_data_home_from_environment(tree, tmp_path, monkeypatch):
    monkeypatch.setenv("IDCCLF_DATA", str(tmp_path / "from_env"))
    load_idc(tree)
    assert len(cache_dirs(tmp_path / "from_env")) == 1


def test_unwritable_cache_warns_and_still_loads(tree, tmp_path):
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where the cache folder should go")
    with pytest.warns(UserWarning, match="could not write its cache"):
        b = load_idc(tree, data_home=blocker)
    assert len(b.target) == 8


def test_skip_warning_repeated_on_cache_hit(tree, home):
    write_patch(tree, "10", 0, 500, 0, content=b"")
    with pytest.warns(UserWarning, match="skipped 1 bad file"):
        cold = load_idc(tree, on_error="skip", data_home=home)
    with pytest.warns(UserWarning, match="skipped 1 bad file"):
        hot = load_idc(tree, on_error="skip", data_home=home)
    assert_same(hot, cold)


def test_load_patches(odd_tree, tmp_path):
    ref = load_idc(odd_tree, cache=False)
    files = [odd_tree / f for f in ref.filenames[::-1]]
    np.testing.assert_array_equal(load_patches(files), ref.data[::-1])
    resized = load_idc(odd_tree, cache=False, size_policy="resize")
    np.testing.assert_array_equal(load_patches(files, size_policy="resize"), resized.data[::-1])
    odd_name = tmp_path / "any name.png"
    odd_name.write_bytes(png_bytes(patch_array(8)))
    np.testing.assert_array_equal(load_patches([odd_name])[0], patch_array(8))
    missing = tmp_path / "missing.png"
    with pytest.raises(ValueError, match=re.escape(str(missing))):
        load_patches([odd_name, missing])
    with pytest.raises(ValueError, match="size_policy"):
        load_patches([odd_name], size_policy="drop")
    with pytest.raises(ValueError, match="no files"):
        load_patches([])


# ----------------------------------------------------------------------- sample


def test_sample_path_layout():
    root = sample_path()
    assert root.is_dir() and (root / "README.md").is_file()
    patients = sorted(p.name for p in root.iterdir() if p.is_dir())
    assert len(patients) >= 10
    size = sum(f.stat().st_size for f in root.rglob("*.png"))
    assert size < 25 * 1024 * 1024


def test_load_sample(sample):
    b = sample
    root = sample_path()
    files = sorted(root.rglob("*.png"))
    assert len(b.target) == len(files) >= 2000
    assert b.data.shape == (len(files), 50, 50, 3) and b.data.dtype == np.uint8
    assert len(set(b.groups)) >= 10
    for p in set(b.groups):
        assert set(b.target[b.groups == p]) == {0, 1}  # both classes for every patient
    for i in range(0, len(files), 97):
        rel = b.filenames[i]
        patient, x, y, label = parse_patch_filename(rel)
        assert rel.split("/")[:2] == [patient, str(label)]
        assert (b.groups[i], b.target[i], tuple(b.coords[i])) == (patient, label, (x, y))
    odd = (b.original_shapes != 50).any(axis=1)
    assert odd.sum() >= 100  # real edge patches exercise the size policy
    assert "Breast Histopathology Images" in b.DESCR and "Janowczyk" in b.DESCR
    assert f"patches: {len(files)}" in b.DESCR
    for p in set(b.groups):
        assert p in b.DESCR
    assert "README" not in " ".join(b.filenames)


def test_sample_padding_matches_raw_pixels(sample):
    b = sample
    odd = np.flatnonzero((b.original_shapes != 50).any(axis=1))
    for i in odd[::7]:
        h, w = b.original_shapes[i]
        with Image.open(sample_path() / b.filenames[i]) as im:
            raw = np.asarray(im.convert("RGB"))
        assert raw.shape[:2] == (h, w)
        np.testing.assert_array_equal(b.data[i, :h, :w], raw)
        assert (b.data[i, h:] == 255).all() and (b.data[i, :, w:] == 255).all()


def test_load_sample_kwargs_and_return_X_y(sample, home):
    X, y = load_sample(patients=[8914], return_X_y=True, data_home=home)
    sel = sample.groups == "8914"
    np.testing.assert_array_equal(X, sample.data[sel])
    np.testing.assert_array_equal(y, sample.target[sel])
    with pytest.warns(UserWarning, match="dropped 76 patch"):
        d = load_sample(patients=["8914"], size_policy="drop", cache=False)
    assert len(d.target) == sel.sum() - 76
    assert "Breast Histopathology Images" in d.DESCR
    with pytest.raises(TypeError):
        load_sample(path="x")


# -------------------------------------------------------------------- real data


@pytest.fixture(scope="module")
def real_pad(real_idc_root, tmp_path_factory):
    home = tmp_path_factory.mktemp("real_home")
    return load_idc(real_idc_root, patients=REAL_ODD_PATIENTS, data_home=home), home


def test_real_data_matches_file_names(real_idc_root, real_pad):
    b, _ = real_pad
    files = sorted(
        f.relative_to(real_idc_root).as_posix()
        for p in REAL_ODD_PATIENTS
        for f in (real_idc_root / p).glob("*/*.png")
    )
    assert sorted(b.filenames) == files
    assert b.data.shape == (len(files), 50, 50, 3) and b.data.dtype == np.uint8
    assert b.target.dtype == np.int64 and b.coords.dtype == np.int64
    for i, rel in enumerate(b.filenames):
        patient, x, y, label = parse_patch_filename(rel)
        assert rel.split("/")[:2] == [patient, str(label)]
        assert b.groups[i] == patient and b.target[i] == label
        assert b.coords[i].tolist() == [x, y]
    odd = np.flatnonzero((b.original_shapes != 50).any(axis=1))
    assert len(odd) == 76 + 69 + 4
    for i in odd:
        with Image.open(real_idc_root / b.filenames[i]) as im:
            assert im.size == (b.original_shapes[i][1], b.original_shapes[i][0])
            raw = np.asarray(im.convert("RGB"))
        h, w = raw.shape[:2]
        np.testing.assert_array_equal(b.data[i, :h, :w], raw)
        assert (b.data[i, h:] == 255).all() and (b.data[i, :, w:] == 255).all()


def test_real_data_resize_and_drop(real_idc_root, real_pad):
    pad, _ = real_pad
    odd = (pad.original_shapes != 50).any(axis=1)
    rs = load_idc(real_idc_root, patients=REAL_ODD_PATIENTS, size_policy="resize", cache=False)
    np.testing.assert_array_equal(rs.data[~odd], pad.data[~odd])
    for i in np.flatnonzero(odd)[::10]:
        with Image.open(real_idc_root / rs.filenames[i]) as im:
            expected = np.asarray(im.convert("RGB").resize((50, 50), Image.Resampling.BILINEAR))
        np.testing.assert_array_equal(rs.data[i], expected)
    with pytest.warns(UserWarning, match=f"dropped {odd.sum()} patch"):
        dr = load_idc(real_idc_root, patients=REAL_ODD_PATIENTS, size_policy="drop", cache=False)
    np.testing.assert_array_equal(dr.data, pad.data[~odd])
    np.testing.assert_array_equal(dr.filenames, pad.filenames[~odd])
    assert f"{odd.sum()} dropped" in dr.DESCR


def test_real_data_cached_equals_cold(real_idc_root, real_pad, monkeypatch):
    cold, home = real_pad
    monkeypatch.setattr(_decode, "_decode_patch", lambda p: pytest.fail(f"decoded {p}"))
    with decode_executor("thread"):
        hot = load_idc(real_idc_root, patients=REAL_ODD_PATIENTS, data_home=home)
    assert_same(hot, cold)
