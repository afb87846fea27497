"""idcclf.datasets._sample: the real sample embedded in the package."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from idcclf.datasets import (
    load_sample,
    parse_patch_filename,
    sample_path,
)

pytest_plugins = ["_patch_fixtures"]


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    return load_sample(data_home=tmp_path_factory.mktemp("sample_home"))


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
    assert 0.25 < b.target.mean() < 0.32  # the full set's class balance (28% IDC)
    odd = (b.original_shapes != 50).any(axis=1)
    sizes = {}
    for f in files:
        with Image.open(f) as im:
            sizes[f.relative_to(root).as_posix()] = im.size
    n_odd = sum(size != (50, 50) for size in sizes.values())
    assert odd.sum() == n_odd >= 50  # real edge patches exercise the size policy
    assert len({sizes[f] for f in b.filenames[odd]}) >= 10  # of many shapes
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
    n_odd = (sample.original_shapes[sel] != 50).any(axis=1).sum()
    assert n_odd > 0  # 8914 is a patient with edge patches
    with pytest.warns(UserWarning, match=f"dropped {n_odd} patch"):
        d = load_sample(patients=["8914"], size_policy="drop", cache=False)
    assert len(d.target) == sel.sum() - n_odd
    assert "Breast Histopathology Images" in d.DESCR
    with pytest.raises(TypeError):
        load_sample(path="x")
