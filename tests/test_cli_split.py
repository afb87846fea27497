"""``idcclf split``: training / validation / testing folders by patient."""

from __future__ import annotations

import os

import pytest
from _trees import make_sample_tree

from idcclf.cli import main

PARTS = ("training", "validation", "testing")


def _patients(folder):
    return {path.name.split("_")[0] for path in folder.glob("*/*.png")}


def _run(capsys, *argv):
    status = main(["split", *map(str, argv)])
    out, err = capsys.readouterr()
    return status, out, err


@pytest.fixture
def src(tmp_path):
    return make_sample_tree(tmp_path / "src", n_patients=6, per_class=4)


def test_split_makes_three_parts_by_patient(src, tmp_path, capsys):
    dst = tmp_path / "dst"
    status, out, err = _run(capsys, src, dst, "--train", "0.6")
    assert status == 0, err
    assert sorted(p.name for p in dst.iterdir()) == sorted(PARTS)
    patients = {part: _patients(dst / part) for part in PARTS}
    assert all(patients.values())
    assert not (patients["training"] & patients["validation"])
    assert not (patients["training"] & patients["testing"])
    assert not (patients["validation"] & patients["testing"])
    assert sum(len(list((dst / part).glob("*/*.png"))) for part in PARTS) == 48
    for part in PARTS:
        assert sorted(p.name for p in (dst / part).iterdir()) == ["0", "1"]
        n0, n1 = (len(list((dst / part / label).iterdir())) for label in ("0", "1"))
        line = next(line for line in out.splitlines() if line.strip().startswith(part))
        assert f"(0: {n0}, 1: {n1})" in line
        assert all(patient in line for patient in patients[part])
    assert "copied 48 patches" in out
    # Files are the originals, byte for byte, under their own names.
    copied = next((dst / "training" / "1").iterdir())
    original = src / copied.name.split("_")[0] / "1" / copied.name
    assert copied.read_bytes() == original.read_bytes()


def test_same_seed_same_split(src, tmp_path, capsys):
    _run(capsys, src, tmp_path / "a", "--random-state", "3")
    _run(capsys, src, tmp_path / "b", "--random-state", "3")
    for part in PARTS:
        assert _patients(tmp_path / "a" / part) == _patients(tmp_path / "b" / part)


def test_link_makes_hard_links(src, tmp_path, capsys):
    dst = tmp_path / "dst"
    status, out, _ = _run(capsys, src, dst, "--link")
    assert status == 0 and "linked 48 patches" in out
    linked = next((dst / "testing" / "0").iterdir())
    original = src / linked.name.split("_")[0] / "0" / linked.name
    assert os.path.samefile(linked, original)


def test_refuses_a_non_empty_destination_without_force(src, tmp_path, capsys):
    dst = tmp_path / "dst"
    dst.mkdir()
    (dst / "notes.txt").write_text("mine")
    status, out, err = _run(capsys, src, dst)
    assert status == 2 and out == ""
    assert err.count("\n") == 1 and "not empty" in err and "--force" in err
    assert [p.name for p in dst.iterdir()] == ["notes.txt"]


def test_force_replaces_only_the_split_folders_and_says_so(src, tmp_path, capsys):
    dst = tmp_path / "dst"
    assert _run(capsys, src, dst, "--random-state", "1")[0] == 0
    stale = dst / "testing" / "1" / "stale_idx5_x1_y1_class1.png"
    stale.write_bytes(b"left over")
    (dst / "notes.txt").write_text("mine")
    status, out, err = _run(capsys, src, dst, "--force", "--random-state", "2", "--val", "0")
    assert status == 0, err
    assert all(f"replaced {dst / part}" in out for part in PARTS)
    assert not stale.exists()  # a file of an earlier split cannot leak a patient
    assert (dst / "notes.txt").read_text() == "mine"
    assert list((dst / "validation").glob("*/*.png")) == []
    assert sum(len(list((dst / part).glob("*/*.png"))) for part in PARTS) == 48
    assert sorted(p.name for p in dst.iterdir()) == sorted([*PARTS, "notes.txt"])


@pytest.mark.parametrize(
    "make_src, message",
    [
        (lambda tmp: tmp / "missing", "no such directory"),
        (lambda tmp: (tmp / "file.txt", (tmp / "file.txt").write_text("x"))[0], "not a directory"),
        (lambda tmp: (tmp / "empty", (tmp / "empty").mkdir())[0], "no IDC patches found"),
    ],
)
def test_bad_source_is_one_line_and_exit_2(tmp_path, capsys, make_src, message):
    status, out, err = _run(capsys, make_src(tmp_path), tmp_path / "dst")
    assert status == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("idcclf split: error: ") and message in err
    assert not (tmp_path / "dst").exists()


def test_a_single_patient_folder_gets_a_hint(src, tmp_path, capsys):
    patient = next(src.iterdir())
    status, _, err = _run(capsys, patient, tmp_path / "dst")
    assert status == 2 and "single patient's folder" in err


def test_mislabelled_file_is_named(src, tmp_path, capsys):
    patient = next(src.iterdir())
    wrong = next((patient / "1").iterdir())
    wrong.rename(patient / "0" / wrong.name)
    status, _, err = _run(capsys, src, tmp_path / "dst")
    assert status == 2 and wrong.name in err and err.count("\n") == 1


@pytest.mark.parametrize(
    "options, message",
    [(["--train", "0.9", "--val", "0.1"], "leave nothing for testing"), (["--train", "0"], "")],
)
def test_shares_that_leave_no_part_are_refused(src, tmp_path, capsys, options, message):
    status, _, err = _run(capsys, src, tmp_path / "dst", *options)
    assert status == 2 and message in err and err.count("\n") == 1


def test_too_few_patients(tmp_path, capsys):
    src = make_sample_tree(tmp_path / "src", n_patients=2, per_class=1)
    status, _, err = _run(capsys, src, tmp_path / "dst")
    assert status == 2 and "at least 3 patients" in err


def test_source_inside_a_replaced_folder_is_refused(tmp_path, capsys):
    dst = tmp_path / "dst"
    src = make_sample_tree(dst / "training" / "idc", n_patients=3, per_class=1)
    status, _, err = _run(capsys, src, dst, "--force")
    assert status == 2 and "would replace" in err
    assert len(list(src.glob("*/*/*.png"))) == 6
