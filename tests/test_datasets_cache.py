"""idcclf.datasets._cache: hits, keys, invalidation, atomic writes and damage."""

from __future__ import annotations

import json
import os
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from _patches import ARRAY_FIELDS, assert_same, patch_array, png_bytes, write_patch

from idcclf.datasets import (
    _cache,
    _decode,
    decode_executor,
    load_idc,
)

pytest_plugins = ["_patch_fixtures"]


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


def test_default_cache_check_sees_files_rewritten_in_place(tree, home, count_decodes):
    first = load_idc(tree, data_home=home)
    target = tree / first.filenames[0]
    mtime_before = target.parent.stat().st_mtime_ns
    _rewrite_in_place(target, patch_array(777))
    assert target.parent.stat().st_mtime_ns == mtime_before  # the folder did not change
    n = len(count_decodes)
    again = load_idc(tree, data_home=home)
    assert len(count_decodes) > n  # the cache was not trusted
    np.testing.assert_array_equal(again.data[0], patch_array(777))


def _stored_png(pixels: np.ndarray) -> bytes:
    """A PNG whose size depends only on its dimensions (image data stored, not deflated)."""
    rows = b"".join(b"\x00" + pixels[r].tobytes() for r in range(pixels.shape[0]))

    def chunk(ctype: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(ctype + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + ctype + data + struct.pack(">I", crc)

    h, w = pixels.shape[:2]
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    idat = zlib.compress(rows, level=0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def test_default_check_limit_same_size_and_mtime(tree, home, count_decodes):
    # The documented limit of cache_check="full": a rewrite that keeps the size and
    # is given back its modification time looks unchanged.
    target = tree / "10" / "0" / "10_idx5_x0_y0_class0.png"
    target.write_bytes(_stored_png(patch_array(1)))
    first = load_idc(tree, data_home=home)
    st = target.stat()
    target.write_bytes(_stored_png(patch_array(2)))
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert target.stat().st_size == st.st_size
    n = len(count_decodes)
    stale = load_idc(tree, data_home=home)
    assert len(count_decodes) == n
    np.testing.assert_array_equal(stale.data[0], first.data[0])
    np.testing.assert_array_equal(stale.data[0], patch_array(1))
    # Any other change of the mtime, even with the same size, is seen.
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns + 1))
    np.testing.assert_array_equal(load_idc(tree, data_home=home).data[0], patch_array(2))


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


def test_each_root_has_its_own_cache_entry(two_roots, home, count_decodes):
    a, b = two_roots
    load_idc([a, b], data_home=home)
    assert len(count_decodes) == 16 and len(cache_dirs(home)) == 2
    load_idc(a, data_home=home)
    load_idc(b, data_home=home)
    assert len(count_decodes) == 16  # the entries of the combined load, reused
    write_patch(b, "20", 1, 999, 999)
    again = load_idc([a, b], data_home=home)
    assert len(count_decodes) == 16 + 9  # only root b was decoded again
    assert len(again.target) == 17
