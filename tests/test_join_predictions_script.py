"""benchmarks/join_predictions.py on hand-made parts of one cross-validation."""

import numpy as np
from _predictions import run_script, save_predictions


def _part(path, fold, patients, proba):
    n = len(proba)
    save_predictions(path, [fold] * n, patients, [i % 2 for i in range(n)], proba)
    return path


def test_parts_are_joined_in_fold_order(tmp_path):
    # The later fold given first: the joined file is in fold order all the same.
    late = _part(tmp_path / "fold3.npz", 3, ["c", "c"], [0.9, 0.8])
    early = _part(tmp_path / "early.npz", 1, ["a", "a", "b"], [0.1, 0.2, 0.3])
    with np.load(early) as saved:
        fields = sorted(saved.files)
    out = tmp_path / "joined.npz"

    done = run_script("join_predictions.py", late, early, "--out", out)

    assert done.returncode == 0, done.stderr
    assert "folds 1, 3, 3 patients, 5 patches" in done.stdout
    with np.load(out) as joined:
        assert sorted(joined.files) == fields
        assert joined["fold"].tolist() == [1, 1, 1, 3, 3]
        assert joined["patient"].tolist() == ["a", "a", "b", "c", "c"]
        np.testing.assert_allclose(joined["proba"], [0.1, 0.2, 0.3, 0.9, 0.8])
        assert joined["coords"].shape == (5, 2)


def test_a_shared_fold_is_refused_and_names_both_files(tmp_path):
    a = _part(tmp_path / "a.npz", 1, ["a"], [0.1])
    b = _part(tmp_path / "b.npz", 1, ["b"], [0.2])
    out = tmp_path / "joined.npz"

    done = run_script("join_predictions.py", a, b, "--out", out)

    assert done.returncode == 2
    assert f"fold 1 is in both {a} and {b}" in done.stderr
    assert not out.exists()


def test_a_shared_patient_is_refused(tmp_path):
    a = _part(tmp_path / "a.npz", 1, ["a"], [0.1])
    b = _part(tmp_path / "b.npz", 2, ["a"], [0.2])

    done = run_script("join_predictions.py", a, b, "--out", tmp_path / "j.npz")

    assert done.returncode == 2
    assert f"patient a is in both {a} and {b}" in done.stderr


def test_different_fields_and_missing_files_are_refused(tmp_path):
    a = _part(tmp_path / "a.npz", 1, ["a"], [0.1])
    with np.load(_part(tmp_path / "b.npz", 2, ["b"], [0.2])) as saved:
        arrays = dict(saved)
    np.savez(tmp_path / "b.npz", proba_per_model=np.zeros((1, 2)), **arrays)

    done = run_script("join_predictions.py", a, tmp_path / "b.npz", "--out", tmp_path / "j.npz")
    assert done.returncode == 2
    assert "not parts of one run" in done.stderr

    done = run_script("join_predictions.py", a, tmp_path / "nope.npz", "--out", tmp_path / "j.npz")
    assert done.returncode == 2
    assert f"no predictions at {tmp_path / 'nope.npz'}" in done.stderr
