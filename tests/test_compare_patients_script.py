"""benchmarks/compare_patients.py on two small hand-made prediction files."""

import numpy as np
from _predictions import run_script, save_predictions


def run(*args):
    return run_script("compare_patients.py", *args)


def test_patients_are_lined_up_and_compared(tmp_path):
    fold = [1, 1, 1, 1, 2, 2, 2, 2]
    patient = ["p", "p", "p", "q", "r", "r", "r", "r"]
    label = [1, 1, 0, 0, 1, 0, 0, 0]
    save_predictions(
        tmp_path / "a.npz", fold, patient, label, [0.9, 0.2, 0.1, 0.6, 0.7, 0.4, 0.3, 0.2]
    )
    # The second run saved its patches in another order.
    save_predictions(
        tmp_path / "b.npz",
        fold,
        patient,
        label,
        [0.9, 0.8, 0.6, 0.1, 0.2, 0.4, 0.3, 0.2],
        order=np.arange(8)[::-1],
    )
    done = run(tmp_path / "a.npz", tmp_path / "b.npz")
    assert done.returncode == 0, done.stderr
    # p: sensitivity 1/2 -> 2/2, specificity 1 -> 0; q: specificity 0 -> 1; r: 1 -> 0.
    assert "| p | 1 | 3 | 0.67 | 1.00 | 0.50 | 1.00 | 1.00 | 0.00 |" in done.stdout
    assert "| q | 1 | 1 | 0.00 | 0.00 | nan | nan | 0.00 | 1.00 |" in done.stdout
    assert "| r | 2 | 4 | 0.25 | 1.00 | 1.00 | 0.00 | 1.00 | 1.00 |" in done.stdout
    assert (
        "all: 3 patients, mean change per patient: sensitivity -0.250 (2 with IDC)" in done.stdout
    )
    one_fold = run(tmp_path / "a.npz", tmp_path / "b.npz", "--fold", "2")
    assert "| r |" in one_fold.stdout and "| p |" not in one_fold.stdout


def test_other_patches_are_refused(tmp_path):
    save_predictions(tmp_path / "a.npz", [1, 1], ["p", "p"], [1, 0], [0.9, 0.1])
    save_predictions(tmp_path / "b.npz", [1, 1], ["p", "x"], [1, 0], [0.9, 0.1])
    done = run(tmp_path / "a.npz", tmp_path / "b.npz")
    assert done.returncode == 2
    assert "do not hold the same test patches" in done.stderr


def test_another_array_of_one_file_is_run_b(tmp_path):
    path = tmp_path / "run.npz"
    save_predictions(path, [1, 1, 1], ["p", "p", "p"], [1, 1, 0], [0.9, 0.2, 0.1])
    with np.load(path) as arrays:
        saved = dict(arrays)
    np.savez(path, **saved, proba_patient_batch_norm=np.array([0.9, 0.8, 0.7]))
    done = run(path, path, "--b-key", "proba_patient_batch_norm")
    assert done.returncode == 0, done.stderr
    # Sensitivity 1/2 -> 2/2, specificity 1 -> 0.
    assert "| p | 1 | 3 | 0.67 | 1.00 | 0.50 | 1.00 | 1.00 | 0.00 |" in done.stdout
    assert "(proba_patient_batch_norm)" in done.stdout
    missing = run(path, path, "--b-key", "proba_other")
    assert missing.returncode == 2
    assert f"{path} has no array 'proba_other'" in missing.stderr
