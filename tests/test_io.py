"""Folder swaps of idcclf._io: a new folder takes the place of an old one, or nothing."""

import os
import stat

import pytest

from idcclf._io import replace_dir, staging_dir


def _tree(root, files):
    root.mkdir()
    for name, text in files.items():
        (root / name).write_text(text)
    return root


def test_replace_dir_puts_the_new_folder_in_place_of_the_old(tmp_path):
    dest = _tree(tmp_path / "dest", {"old.txt": "old"})
    new = _tree(tmp_path / "new", {"new.txt": "new"})

    replace_dir(new, dest)

    assert sorted(p.name for p in dest.iterdir()) == ["new.txt"]
    assert not new.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dest"]  # nothing left aside


def test_replace_dir_creates_an_absent_destination(tmp_path):
    new = _tree(tmp_path / "new", {"a": "1"})

    replace_dir(new, tmp_path / "dest")

    assert (tmp_path / "dest" / "a").read_text() == "1"


def test_replace_dir_replaces_a_link_without_touching_its_target(tmp_path):
    target = _tree(tmp_path / "target", {"keep": "x"})
    (tmp_path / "dest").symlink_to(target)
    new = _tree(tmp_path / "new", {"a": "1"})

    replace_dir(new, tmp_path / "dest")

    assert not (tmp_path / "dest").is_symlink()
    assert (tmp_path / "dest" / "a").exists()
    assert (target / "keep").read_text() == "x"


def test_replace_dir_puts_the_old_folder_back_when_the_new_cannot_move(tmp_path):
    dest = _tree(tmp_path / "dest", {"old.txt": "old"})

    with pytest.raises(FileNotFoundError):
        replace_dir(tmp_path / "missing", dest)

    assert (dest / "old.txt").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dest"]


def test_staging_dir_lies_beside_the_destination_with_the_umask_mode(tmp_path):
    previous = os.umask(0o027)
    try:
        staging = staging_dir(tmp_path / "dest")
    finally:
        os.umask(previous)

    assert staging.parent == tmp_path
    assert list(staging.iterdir()) == []
    assert stat.S_IMODE(staging.stat().st_mode) == 0o750
