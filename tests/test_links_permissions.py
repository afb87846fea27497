"""Symbolic-link loops, dangling links and unreadable entries in an IDC tree."""

from __future__ import annotations

import errno
import os
import sys
import warnings

import pytest
from _patches import make_tree

from idcclf.datasets import _decode, load_idc

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX links and modes")


@pytest.fixture
def tree(tmp_path):
    return make_tree(tmp_path / "idc")


def _skip_load(path, **kwargs):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        bunch = load_idc(path, cache=False, on_error="skip", n_jobs=1, **kwargs)
    return bunch, "\n".join(str(w.message) for w in caught)


@pytest.mark.parametrize("cache_check", ["fast", "full"])
def test_png_symlink_loop_is_reported_by_name(tree, cache_check):
    loop = tree / "10" / "0" / "10_idx5_x900_y0_class0.png"
    os.symlink(loop.name, loop)  # points at itself
    with pytest.raises(ValueError, match=r"10/0/10_idx5_x900_y0_class0\.png: .*symbolic links"):
        load_idc(tree, cache=False, cache_check=cache_check)
    bunch, warned = _skip_load(tree, cache_check=cache_check)
    assert len(bunch.target) == 8 and "10_idx5_x900_y0_class0.png" in warned


def test_patient_symlink_loop_is_reported_by_name(tree):
    os.symlink("loop", tree / "loop")
    with pytest.raises(ValueError, match=r"idc/loop: .*symbolic links"):
        load_idc(tree, cache=False)


def test_directory_cycles_end(tree):
    # A class folder's link back up and a patient folder linked to the root: the
    # loader reads exactly <root>/<patient>/<class>/*.png, so neither can recurse.
    os.symlink("..", tree / "10" / "0" / "up")
    os.symlink(".", tree / "12")
    bunch, warned = _skip_load(tree)
    assert sorted(set(bunch.groups)) == ["10", "11"] and len(bunch.target) == 8
    assert warned == ""


def test_dangling_png_link_is_reported(tree):
    os.symlink("gone.png", tree / "11" / "1" / "11_idx5_x900_y0_class1.png")
    with pytest.raises(ValueError, match=r"11_idx5_x900_y0_class1\.png: broken symbolic link"):
        load_idc(tree, cache=False)


def _make_unreadable(path, monkeypatch):
    """Deny reading ``path``: by its mode, or (as root, whom modes do not stop) by
    making the opening calls fail with EACCES for that path alone."""
    if os.geteuid() != 0:
        path.chmod(0)
        return
    denied = os.fsencode(path)

    def deny(fn):
        def wrapped(target, *args, **kwargs):
            if isinstance(target, str | bytes | os.PathLike) and os.fsencode(target) == denied:
                raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(target))
            return fn(target, *args, **kwargs)

        return wrapped

    monkeypatch.setattr(os, "open", deny(os.open))
    monkeypatch.setattr(os, "scandir", deny(os.scandir))
    monkeypatch.setattr(_decode, "open", deny(open), raising=False)


@pytest.fixture
def restore_modes(tree):
    yield
    # Give modes back (top-down, so each folder is listable before it is walked) so
    # that pytest can remove the tree.
    tree.chmod(0o755)
    for dirpath, dirnames, filenames in os.walk(tree):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            if not os.path.islink(path):
                os.chmod(path, 0o755)


def test_unreadable_file_is_reported(tree, monkeypatch, restore_modes):
    victim = tree / "11" / "0" / "11_idx5_x0_y0_class0.png"
    _make_unreadable(victim, monkeypatch)
    with pytest.raises(
        ValueError, match=r"11_idx5_x0_y0_class0\.png: cannot read file \(Permission denied\)"
    ):
        load_idc(tree, cache=False, n_jobs=1)
    bunch, warned = _skip_load(tree)
    assert len(bunch.target) == 7 and "Permission denied" in warned


@pytest.mark.parametrize("level", ["class", "patient"])
def test_unreadable_folder_is_reported(tree, monkeypatch, restore_modes, level):
    victim = tree / "11" / "1" if level == "class" else tree / "11"
    rel = "11/1" if level == "class" else "11"
    _make_unreadable(victim, monkeypatch)
    with pytest.raises(ValueError, match=rf"idc/{rel}: cannot list folder \(Permission denied\)"):
        load_idc(tree, cache=False, n_jobs=1)
    bunch, warned = _skip_load(tree)
    assert len(bunch.target) == (6 if level == "class" else 4)
    assert f"idc/{rel}: cannot list folder" in warned


def test_unreadable_root_is_a_clear_error(tree, monkeypatch, restore_modes):
    _make_unreadable(tree, monkeypatch)
    with pytest.raises(
        PermissionError, match=r"cannot list the IDC data folder .*idc: Permission denied"
    ):
        load_idc(tree, cache=False)
