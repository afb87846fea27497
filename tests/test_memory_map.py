"""The memory-mapped mode of load_idc and the out-of-memory estimate."""

from __future__ import annotations

import errno
import os
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from _patches import ARRAY_FIELDS, make_tree, patch_array, write_patch

from idcclf.datasets import _cache, _decode, _memory, decode_executor, load_idc
from idcclf.datasets._base import Patch


@pytest.fixture
def tree(tmp_path):
    root = make_tree(tmp_path / "idc", n_per_class=3)
    # An edge patch (padded, or dropped with size_policy="drop") and a corrupt file
    # (skipped with on_error="skip"), so the kept rows are a strict subset.
    write_patch(root, "10", 1, 500, 0, arr=patch_array(5, h=20, w=50))
    write_patch(root, "11", 0, 900, 0, content=b"\x89PNG\r\n\x1a\n broken")
    return root


def _load(path, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return load_idc(path, on_error="skip", **kwargs)


def _assert_same(a, b):
    for field in ARRAY_FIELDS:
        np.testing.assert_array_equal(a[field], b[field], err_msg=field)
    assert a.DESCR == b.DESCR


def _is_file_backed(arr: np.ndarray) -> bool:
    while arr is not None and not isinstance(arr, np.memmap):
        arr = arr.base
    return arr is not None


@pytest.mark.parametrize("size_policy", ["pad", "drop"])
@pytest.mark.parametrize("max_per_class", [None, 2])
def test_memory_map_gives_the_in_memory_result(tree, tmp_path, size_policy, max_per_class):
    ref = _load(tree, cache=False, size_policy=size_policy, max_per_class=max_per_class)
    home = tmp_path / "home"
    mapped = _load(
        tree, data_home=home, memory_map=True, size_policy=size_policy, max_per_class=max_per_class
    )
    _assert_same(mapped, ref)
    assert _is_file_backed(mapped.data)
    # The only thing left behind is the finished cache: no temp or leftover files.
    (cache_dir,) = (home / "idc_cache").iterdir()
    assert sorted(p.name for p in cache_dir.iterdir()) == sorted(
        [f"{name}.npy" for name in _cache.ARRAYS] + ["manifest.json"]
    )
    # Loading again, mapped or not, reads that cache.
    _assert_same(
        _load(tree, data_home=home, size_policy=size_policy, max_per_class=max_per_class), ref
    )


def test_memory_map_result_is_writable_without_touching_the_cache(tree, tmp_path):
    home = tmp_path / "home"
    first = _load(tree, data_home=home, memory_map=True)
    kept = first.data[0].copy()
    first.data[0] = 0
    again = _load(tree, data_home=home, memory_map=True)
    np.testing.assert_array_equal(again.data[0], kept)


def test_memory_map_needs_the_cache(tree):
    with pytest.raises(ValueError, match="memory_map=True .* needs cache=True"):
        load_idc(tree, cache=False, memory_map=True)
    with pytest.raises(ValueError, match="int random_state"):
        load_idc(tree, memory_map=True, max_per_class=1, random_state=np.random.default_rng(0))


def _deny_writes(folder, monkeypatch):
    """Make ``folder`` unwritable: by its mode, or (as root, whom modes do not stop) by
    making the creation of anything inside it fail with EACCES."""
    folder.mkdir()
    if os.geteuid() != 0:
        folder.chmod(0o555)
        return
    real_mkdir, denied = os.mkdir, folder.resolve()

    def mkdir(path, *args, **kwargs):
        if denied in Path(path).resolve().parents:
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))
        return real_mkdir(path, *args, **kwargs)

    monkeypatch.setattr(os, "mkdir", mkdir)


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX modes")
def test_memory_map_with_an_unwritable_data_home_says_what_to_do(tree, tmp_path, monkeypatch):
    home = tmp_path / "read-only"
    _deny_writes(home, monkeypatch)
    with pytest.raises(PermissionError) as info:
        _load(tree, data_home=home, memory_map=True)
    message = str(info.value)
    assert str(home) in message and "cannot be written to" in message
    assert "pass data_home=" in message and "IDCCLF_DATA" in message
    # A file where the folder should be: the same advice.
    blocker = tmp_path / "blocker"
    blocker.write_text("not a folder")
    with pytest.raises(OSError, match=r"pass data_home=.*IDCCLF_DATA") as info:
        _load(tree, data_home=blocker, memory_map=True)
    assert str(blocker) in str(info.value)


def test_too_little_memory_is_a_clear_error_before_decoding(tree, tmp_path, monkeypatch):
    monkeypatch.setenv("IDCCLF_MAX_MEMORY", "20K")
    decoded = []
    real = _decode._decode_patch
    monkeypatch.setattr(_decode, "_decode_patch", lambda p: decoded.append(p) or real(p))
    with decode_executor("thread"), pytest.raises(MemoryError) as info:
        _load(tree, data_home=tmp_path / "home")
    message = str(info.value)
    assert "only 20.0 KiB are available (IDCCLF_MAX_MEMORY)" in message
    assert "KiB of memory for 14 patches" in message and "memory_map=True" in message
    assert decoded == []  # refused up front, not after filling memory

    # The same load fits through the memory-mapped mode under the same limit.
    monkeypatch.setenv("IDCCLF_MAX_MEMORY", "20K")
    mapped = _load(tree, data_home=tmp_path / "home", memory_map=True)
    monkeypatch.delenv("IDCCLF_MAX_MEMORY")
    _assert_same(mapped, _load(tree, cache=False))


def test_memory_estimate_covers_the_pixels():
    cands = [Patch("10", 0, "10_idx5_x0_y0_class0.png", 0, 0, "10/0")] * 1000
    need = _memory.estimate_bytes(cands, 1000)
    assert 1000 * 7500 < need < 1000 * 7500 * 1.1


@pytest.mark.parametrize(
    ("text", "expected"),
    [("1000", 1000), ("2K", 2048), ("1.5G", int(1.5 * 1024**3)), ("3MiB", 3 * 1024**2)],
)
def test_memory_limit_variable_is_parsed(monkeypatch, text, expected):
    monkeypatch.setenv("IDCCLF_MAX_MEMORY", text)
    room, source = _memory.available_memory()
    assert source == "IDCCLF_MAX_MEMORY" and room == expected


def test_bad_memory_limit_variable_names_itself(tree, monkeypatch):
    monkeypatch.setenv("IDCCLF_MAX_MEMORY", "lots")
    with pytest.raises(ValueError, match="IDCCLF_MAX_MEMORY='lots' is not a size"):
        load_idc(tree, cache=False)


def test_concatenate_reads_mapped_parts_from_their_files(tmp_path):
    rng = np.random.default_rng(0)
    parts = [rng.integers(0, 256, (n, 50, 50, 3), dtype=np.uint8) for n in (3, 5)]
    names = [np.array(["10/0/a.png", "10/1/b.png", "10/1/c.png"]), np.array(["20/0/long-name.png"])]
    mapped = []
    for k, (pixels, text) in enumerate(zip(parts, names, strict=True)):
        np.save(tmp_path / f"p{k}.npy", pixels)
        np.save(tmp_path / f"n{k}.npy", text)
        mapped.append(np.asarray(np.load(tmp_path / f"p{k}.npy", mmap_mode="c")))
    joined = _memory.concatenate(mapped + [parts[0][1:]])  # two maps, then a plain slice
    np.testing.assert_array_equal(joined, np.concatenate([*parts, parts[0][1:]]))
    assert not _is_file_backed(joined) and joined.flags["C_CONTIGUOUS"]
    text = [np.asarray(np.load(tmp_path / f"n{k}.npy", mmap_mode="c")) for k in (0, 1)]
    np.testing.assert_array_equal(_memory.concatenate(text), np.concatenate(names))
