"""idcclf.datasets._scan: which files a load lists, in which order, and path errors."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import numpy as np
import pytest
from _patches import assert_same, make_tree, write_patch

from idcclf.datasets import (
    load_idc,
)

pytest_plugins = ["_patch_fixtures"]


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


def test_a_patient_folder_loads_as_a_class_folder_root(tree):
    # Its only sub-folders are 0 and 1: the patient comes from the file names.
    alone = load_idc(tree / "10", cache=False)
    ref = load_idc(tree, patients=["10"], cache=False)
    for field in ("data", "target", "groups", "coords", "original_shapes"):
        np.testing.assert_array_equal(alone[field], ref[field], err_msg=field)
    assert [f"10/{f}" for f in alone.filenames] == list(ref.filenames)
    assert alone.filenames[0] == "0/10_idx5_x0_y0_class0.png"


def test_class_folders_only_when_they_are_the_only_sub_folders(tree):
    # "0" and "1" beside another folder are patient folders, whose .png files are
    # then outside any class folder.
    cls_root = tree / "10"
    (cls_root / "notes").mkdir()
    misplaced = r"/0/10_idx5_x0_y0_class0\.png: not inside a <patient>/<0\|1>/"
    with pytest.raises(ValueError, match=misplaced):
        load_idc(cls_root, cache=False)


def test_a_patient_named_1_is_still_a_patient(tmp_path):
    # Its folder holds class folders: the root is not a class-folder root.
    root = make_tree(tmp_path / "idc", patients=("1",))
    b = load_idc(root, cache=False)
    assert set(b.groups) == {"1"} and b.filenames[0] == "1/0/1_idx5_x0_y0_class0.png"


def test_bad_files_of_a_class_folder_root(tmp_path):
    root = tmp_path / "part"
    for patient, label in (("7", 0), ("7", 1), ("8", 1)):
        name = f"{patient}_idx5_x5_y{label}_class{label}.png"
        write_patch(root, "", label, 5, label, folder=str(label), name=name)
    wrong = write_patch(root, "", 1, 9, 9, folder="0", name="8_idx5_x9_y9_class1.png")
    loose = root / "7_idx5_x0_y0_class0.png"
    loose.write_bytes(wrong.read_bytes())
    with pytest.warns(UserWarning) as rec:
        b = load_idc(root, cache=False, on_error="skip")
    (msg,) = [str(w.message) for w in rec]
    assert "skipped 2 bad file(s)" in msg
    assert f"{wrong.resolve()}: file name says class1 but the file is in class folder '0'" in msg
    assert f"{loose.resolve()}: not inside a <0|1>/ folder" in msg
    assert list(b.groups) == ["7", "7", "8"] and list(b.target) == [0, 1, 1]
    with pytest.warns(UserWarning, match="skipped 2 bad file"):  # patient 8's, and the loose one
        only = load_idc(root, cache=False, patients=["8"], on_error="skip")
    assert list(only.filenames) == ["1/8_idx5_x5_y1_class1.png"]
    unknown = r"patients not found under .*: 9\. Available patients \(2\): 7, 8"
    with pytest.raises(ValueError, match=unknown):
        load_idc(root, cache=False, patients=[9])


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


def test_same_patch_under_both_labels_is_an_error_naming_both(tree, home):
    neg = write_patch(tree, "10", 0, 700, 700).resolve()
    pos = write_patch(tree, "10", 1, 700, 700).resolve()
    with pytest.raises(ValueError, match="contradictory labels") as info:
        load_idc(tree, data_home=home)
    assert str(neg) in str(info.value) and str(pos) in str(info.value)
    with pytest.warns(UserWarning) as rec:
        b = load_idc(tree, data_home=home, on_error="skip")
    (msg,) = [str(w.message) for w in rec]
    assert "skipped 2 bad file(s)" in msg and msg.count("contradictory labels") == 2
    assert str(neg) in msg and str(pos) in msg
    assert len(b.target) == 8 and "x700" not in " ".join(b.filenames)
    assert "bad files skipped: 2" in b.DESCR


def test_a_patient_under_two_roots_is_an_error_naming_both_folders(two_roots):
    a, b = two_roots
    write_patch(b, "11", 1, 900, 900)
    with pytest.raises(ValueError, match="patient 11 is under two roots") as info:
        load_idc([a, b], cache=False)
    assert str(a.resolve() / "11") in str(info.value)
    assert str(b.resolve() / "11") in str(info.value)


def test_a_root_given_twice_is_an_error(two_roots):
    a, _ = two_roots
    with pytest.raises(ValueError, match="given twice: .*a$"):
        load_idc([a, a.parent / "a"], cache=False)
    with pytest.raises(ValueError, match="path is empty"):
        load_idc([], cache=False)
    with pytest.raises(FileNotFoundError, match="nope"):
        load_idc([a, a.parent / "nope"], cache=False)
