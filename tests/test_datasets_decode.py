"""idcclf.datasets._decode: PNG checks, colour modes, size policies, pools, load_patches."""

from __future__ import annotations

import io
import re

import numpy as np
import pytest
from _patches import assert_same, patch_array, png_bytes, raw_png, write_patch
from PIL import Image

from idcclf.datasets import (
    decode_executor,
    load_idc,
    load_patches,
    load_sample,
    sample_path,
)
from idcclf.datasets._base import Status
from idcclf.datasets._decode import DecodePool

pytest_plugins = ["_patch_fixtures"]


@pytest.mark.parametrize("n_jobs", [1, 2, -1, None])
def test_n_jobs_values_give_same_result(tree, n_jobs):
    ref = load_idc(tree, cache=False, n_jobs=1)
    assert_same(load_idc(tree, cache=False, n_jobs=n_jobs), ref)


@pytest.mark.parametrize("executor", ["thread", "process"])
def test_executors_give_same_result(monkeypatch, executor):
    # 8 sample patients, ~480 files: several chunks, so a real pool is used.
    patients = sorted(p.name for p in sample_path().iterdir() if p.is_dir())[:8]
    ref = load_sample(patients=patients, cache=False, n_jobs=1)
    assert len(ref.target) >= 400
    with decode_executor(executor):
        assert_same(load_sample(patients=patients, cache=False, n_jobs=2), ref)


GOOD = png_bytes(patch_array(123))


def test_truncation_caught_even_if_pillow_allows_it(tree, monkeypatch):
    from PIL import ImageFile

    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)
    bad = write_patch(tree, "10", 0, 500, 0, content=GOOD[: len(GOOD) * 2 // 3])
    with pytest.raises(ValueError, match=re.escape(bad.name) + ".*truncated"):
        load_idc(tree, cache=False)


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


def test_decode_executor_is_scoped_and_checked():
    with pytest.raises(ValueError, match="decode executor must be one of"):
        with decode_executor("fibers"):
            pass
    default = DecodePool(2).kind
    with decode_executor("thread"):
        assert DecodePool(2).kind == "thread"
        assert DecodePool(2, kind="process").kind == "process"  # the argument wins
    assert DecodePool(2).kind == default


def test_decode_pool_keeps_one_executor_and_keeps_order(tmp_path):
    files = []
    for k in range(200):
        path = tmp_path / f"p{k}.png"
        path.write_bytes(png_bytes(patch_array(k)))
        files.append(str(path))
    with DecodePool(2, kind="thread") as pool:
        first, shapes, status = pool.decode(files, "pad")
        executor = pool._executor
        second, _, _ = pool.decode(files[::-1], "pad")
        assert pool._executor is executor  # started once, reused
    assert pool._executor is None  # shut down at the end of the block
    for k in (0, 77, 199):
        np.testing.assert_array_equal(first[k], patch_array(k))
        np.testing.assert_array_equal(second[199 - k], patch_array(k))
    assert (shapes == 50).all() and {s for s, _ in status} == {Status.OK}


@pytest.mark.parametrize("kind", ["thread", "process"])
def test_parallel_decoding_in_place_matches_one_thread(tmp_path, kind):
    # Several chunks, so workers decode into the output (processes: into shared rows).
    files = []
    for k in range(300):
        path = tmp_path / f"p{k}.png"
        small = k % 97 == 5
        path.write_bytes(png_bytes(patch_array(k, h=30 if small else 50)))
        files.append(str(path))
    (tmp_path / "p150.png").write_bytes(GOOD[: len(GOOD) // 2])  # truncated
    with DecodePool(1) as pool:
        expected, expected_shapes, expected_status = pool.decode(files, "pad")
    with DecodePool(2, kind=kind) as pool:
        rows, shapes, status = pool.decode(files, "pad")
        if kind == "process":
            assert pool._executor is None  # a pool of its own, gone with the call
    assert status == expected_status
    assert status[150][0] == Status.BAD and "truncated" in status[150][1]
    assert {s for s, _ in status} == {Status.OK, Status.PADDED, Status.BAD}
    np.testing.assert_array_equal(shapes, expected_shapes)
    good = [i for i, (s, _) in enumerate(status) if s != Status.BAD]
    np.testing.assert_array_equal(rows[good], expected[good])
    np.testing.assert_array_equal(rows[299], patch_array(299))
    rows[0] = 0  # an ordinary writable array
