"""Splits by patient: indices, loaded data sets, and patch trees on disk."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from _trees import make_sample_tree
from sklearn.utils import Bunch

from idcclf.splits import (
    materialize_split,
    patient_split,
    scan_patch_tree,
    split_by_patient,
)


def _groups_and_labels(n_patients=10, per_patient=20, seed=0):
    rng = np.random.default_rng(seed)
    sizes = rng.integers(per_patient // 2, per_patient * 2, n_patients)
    groups = np.repeat([f"p{i}" for i in range(n_patients)], sizes)
    y = (rng.random(len(groups)) < 0.3).astype(int)
    return groups, y


# --------------------------------------------------------------- indices


def test_patient_split_keeps_every_patient_on_one_side():
    groups, y = _groups_and_labels()
    train, val, test = patient_split(groups, y, train_size=0.6, val_size=0.2, random_state=0)
    assert sorted(np.r_[train, val, test]) == list(range(len(y)))
    parts = [set(groups[i]) for i in (train, val, test)]
    assert all(parts) and not (parts[0] & parts[1] or parts[0] & parts[2] or parts[1] & parts[2])
    again = patient_split(groups, y, train_size=0.6, val_size=0.2, random_state=0)
    assert all(np.array_equal(a, b) for a, b in zip((train, val, test), again, strict=True))


def test_patient_split_without_validation():
    groups, y = _groups_and_labels()
    train, val, test = patient_split(groups, y, train_size=0.8, val_size=0.0)
    assert len(val) == 0 and len(train) > len(test) > 0


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(train_size=0.9, val_size=0.1), "leave a test part"),
        (dict(train_size=0.0, val_size=0.1), "leave a test part"),
    ],
)
def test_patient_split_rejects_bad_sizes(kwargs, match):
    groups, y = _groups_and_labels()
    with pytest.raises(ValueError, match=match):
        patient_split(groups, y, **kwargs)


def test_patient_split_needs_enough_patients():
    with pytest.raises(ValueError, match="at least 3 patients"):
        patient_split(["a", "a", "b", "b"], [0, 1, 0, 1])


def test_split_by_patient_splits_every_per_sample_field():
    groups, y = _groups_and_labels()
    bunch = Bunch(
        data=np.arange(len(y) * 2).reshape(-1, 2),
        target=y,
        groups=groups,
        target_names=np.array(["no IDC", "IDC"]),
    )
    parts = split_by_patient(bunch, train_size=0.6, val_size=0.2)
    assert set(parts) == {"train", "val", "test"}
    assert sum(len(part.target) for part in parts.values()) == len(y)
    for part in parts.values():
        assert len(part.data) == len(part.target) == len(part.groups)
        assert "target_names" not in part


# --------------------------------------------------------------- trees on disk


def test_scan_patch_tree_lists_files_without_decoding(tmp_path):
    root = make_sample_tree(tmp_path / "src", n_patients=3, per_class=2)
    (root / "README.txt").write_text("not a patch")
    (root / root.iterdir().__next__().name / "0" / ".hidden.png").write_bytes(b"")
    tree = scan_patch_tree(root)
    assert len(tree.paths) == 12
    assert np.bincount(tree.target).tolist() == [6, 6]
    assert len(set(tree.groups)) == 3
    assert all(
        path.parent.name == str(label) for path, label in zip(tree.paths, tree.target, strict=True)
    )


def test_scan_patch_tree_rejects_a_mislabelled_file(tmp_path):
    root = make_sample_tree(tmp_path / "src", n_patients=1, per_class=1)
    patient = next(root.iterdir())
    wrong = next((patient / "1").iterdir())
    shutil.move(wrong, patient / "0" / wrong.name)
    with pytest.raises(ValueError, match="says class1 but the file is in class folder '0'"):
        scan_patch_tree(root)


def test_scan_patch_tree_rejects_a_bad_name(tmp_path):
    root = make_sample_tree(tmp_path / "src", n_patients=1, per_class=1)
    (next(root.iterdir()) / "0" / "scan.png").write_bytes(b"x")
    with pytest.raises(ValueError, match="scan.png.*does not match"):
        scan_patch_tree(root)


def test_scan_patch_tree_rejects_a_patch_under_both_labels(tmp_path):
    root = make_sample_tree(tmp_path / "src", n_patients=1, per_class=1)
    patient = next(root.iterdir())
    negative = next((patient / "0").iterdir())
    positive = patient / "1" / negative.name.replace("class0", "class1")
    shutil.copy(negative, positive)
    with pytest.raises(ValueError, match="contradictory labels") as info:
        scan_patch_tree(root)
    assert negative.name in str(info.value) and positive.name in str(info.value)


def test_materialize_split_copies_by_patient(tmp_path):
    src = make_sample_tree(tmp_path / "src")
    result = materialize_split(src, tmp_path / "dst", train_size=0.6, val_size=0.2)
    seen = {}
    for name, folder in (("train", "training"), ("val", "validation"), ("test", "testing")):
        part = result.parts[name]
        assert part.folder == tmp_path / "dst" / folder
        files = {label: sorted((part.folder / label).iterdir()) for label in ("0", "1")}
        assert [len(files["0"]), len(files["1"])] == [part.counts[0], part.counts[1]]
        patients = {p.name.split("_")[0] for fs in files.values() for p in fs}
        assert patients == set(part.patients)
        for patient in patients:
            assert patient not in seen, f"patient {patient} in {seen.get(patient)} and {name}"
            seen[patient] = name
        # Copies, not links.
        assert all(p.stat().st_nlink == 1 for fs in files.values() for p in fs)
    assert len(seen) == 6 and result.n_files == 48 and not result.replaced
    assert [p.name for p in (tmp_path / "dst").iterdir() if p.name.startswith(".")] == []
