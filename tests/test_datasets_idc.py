"""idcclf.datasets._idc: load_idc end to end: fields, parameters, subsets, bad files, real data."""

from __future__ import annotations

import io
import re
from pathlib import Path

import numpy as np
import pytest
from _patches import ARRAY_FIELDS, assert_same, make_tree, patch_array, png_bytes, write_patch
from _trees import make_sample_tree
from PIL import Image

from idcclf.datasets import (
    _decode,
    decode_executor,
    load_idc,
    parse_patch_filename,
)
from idcclf.splits import materialize_split

pytest_plugins = ["_patch_fixtures"]

# Real patients with smaller-than-50x50 edge patches (76, 69 and 4 of them).
REAL_ODD_PATIENTS = ["8914", "9076", "8863"]


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
        write_patch(root, "1", 1, k, 100, content=b"not a png" if k < 4 else None)
    with pytest.warns(UserWarning) as rec:
        b = load_idc(root, max_per_class=4, size_policy="drop", on_error="skip", cache=False)
    assert np.bincount(b.target).tolist() == [4, 4]
    assert (b.original_shapes == 50).all()
    assert len(rec) >= 1


def test_max_per_class_generator_is_not_cached(tree, home):
    b = load_idc(tree, max_per_class=1, random_state=np.random.default_rng(0), data_home=home)
    assert np.bincount(b.target).tolist() == [1, 1]
    assert not (home / "idc_cache").exists() or not any((home / "idc_cache").iterdir())


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


def test_raise_reports_how_many_more(tree):
    write_patch(tree, "10", 0, 500, 0, content=b"")
    write_patch(tree, "11", 0, 500, 0, content=b"")
    with pytest.raises(ValueError, match=r"10_idx5_x500_y0_class0\.png.*\(1 more bad file"):
        load_idc(tree, cache=False)


def test_all_files_bad(tmp_path):
    write_patch(tmp_path / "idc", "10", 0, 0, 0, content=b"")
    with pytest.warns(UserWarning), pytest.raises(ValueError, match="no usable IDC patches"):
        load_idc(tmp_path / "idc", on_error="skip", cache=False)


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


# ---------------------------------------------------------------- several roots


def test_several_roots_are_concatenated(two_roots, home):
    a, b = two_roots
    both = load_idc([a, b], data_home=home)
    alone = [load_idc(a, data_home=home), load_idc(str(b), data_home=home)]
    for field in ARRAY_FIELDS:
        np.testing.assert_array_equal(both[field], np.concatenate([x[field] for x in alone]))
    assert list(dict.fromkeys(both.groups)) == ["10", "11", "20", "21"]
    # A partial patient (class 0 only) loads like any other.
    assert both.target[both.groups == "21"].tolist() == [0, 0]
    assert "roots (2):" in both.DESCR
    assert f"{a.resolve()}: 2 patient(s), 8 patches" in both.DESCR
    assert f"{b.resolve()}: 2 patient(s), 8 patches" in both.DESCR
    assert "patients (4): 10, 11, 20, 21" in both.DESCR
    assert f"{'21':>10}  {2:>7}  {0:>7}" in both.DESCR
    # One root in a list is the same as the root itself.
    assert_same(load_idc([a], data_home=home), alone[0])


def test_several_roots_with_a_patient_selection(two_roots, home):
    a, b = two_roots
    some = load_idc((a, b), patients=["21", 11], data_home=home)
    assert list(dict.fromkeys(some.groups)) == ["11", "21"]
    only_b = load_idc([a, b], patients=["20"], data_home=home)
    assert set(only_b.groups) == {"20"} and str(a.resolve()) not in only_b.DESCR
    with pytest.raises(ValueError, match=r"patients not found under .*a, .*b: 99\..*\(4\)"):
        load_idc([a, b], patients=["99"], cache=False)


def test_several_roots_capped_and_memory_mapped(two_roots, home):
    a, b = two_roots
    capped = load_idc([a, b], max_per_class=5, random_state=1, data_home=home)
    assert np.bincount(capped.target).tolist() == [5, 5]
    assert set(capped.groups) > {"10", "20"}  # drawn over both roots
    assert_same(capped, load_idc([a, b], max_per_class=5, random_state=1, cache=False))
    mapped = load_idc([a, b], memory_map=True, data_home=home / "mm")
    assert_same(mapped, load_idc([a, b], cache=False))
    # Each draws from (or maps) one cache entry covering both roots.
    assert len([p for p in (home / "mm" / "idc_cache").iterdir()]) == 1


def test_the_parts_idcclf_split_writes_load_as_they_are(tmp_path, home):
    src = make_sample_tree(tmp_path / "src", n_patients=6, per_class=4)
    ref = load_idc(src, cache=False)
    parts = materialize_split(src, tmp_path / "dst", train_size=0.6, val_size=0.2).parts
    folders = [parts[name].folder for name in ("train", "val", "test")]
    loaded = [load_idc(folder, data_home=home) for folder in folders]
    for part, b in zip(parts.values(), loaded, strict=True):
        assert sorted(set(b.groups)) == part.patients
        assert np.bincount(b.target, minlength=2).tolist() == [part.counts[0], part.counts[1]]
        assert all(f.split("/")[0] == str(t) for f, t in zip(b.filenames, b.target, strict=True))
        assert str(part.folder.resolve()) in b.DESCR
    both = load_idc(folders, data_home=home)  # cached per part, in the order given
    assert_same(both, load_idc(folders, cache=False))
    key = {(g, *c): i for i, (g, c) in enumerate(zip(ref.groups, ref.coords.tolist(), strict=True))}
    rows = [key[(g, *c)] for g, c in zip(both.groups, both.coords.tolist(), strict=True)]
    assert sorted(rows) == list(range(len(ref.target)))  # every patch exactly once
    np.testing.assert_array_equal(both.data, ref.data[rows])
    np.testing.assert_array_equal(both.target, ref.target[rows])
