"""benchmarks/paired_runs.py on hand-made prediction files of two recipes and two seeds."""

import json

import pytest
from _predictions import run_script, save_predictions

FOLD = [1, 1, 1, 1, 2, 2, 2, 2]
PATIENT = ["p", "p", "p", "q", "r", "r", "r", "r"]
LABEL = [1, 1, 0, 0, 1, 0, 0, 0]
# Balanced accuracy at 0.5, fold 1 then fold 2:
RUNS = {
    "a1": [0.9, 0.2, 0.1, 0.6, 0.7, 0.4, 0.3, 0.2],  # 0.5, 1.0
    "a2": [0.6, 0.6, 0.6, 0.1, 0.4, 0.1, 0.1, 0.1],  # 0.75, 0.5
    "b1": [0.9, 0.8, 0.1, 0.2, 0.7, 0.6, 0.3, 0.2],  # 1.0, 5/6
    "b2": [0.9, 0.9, 0.1, 0.1, 0.9, 0.1, 0.1, 0.1],  # 1.0, 1.0
}


@pytest.fixture
def runs(tmp_path):
    for name, proba in RUNS.items():
        if name == "a1":
            continue
        # B's runs saved their patches in another order.
        order = list(range(8))[::-1] if name.startswith("b") else None
        save_predictions(tmp_path / f"{name}.npz", FOLD, PATIENT, LABEL, proba, order=order)
    # a1 is a run of three folds; the others stopped after two.
    save_predictions(
        tmp_path / "a1.npz",
        FOLD + [3, 3],
        PATIENT + ["s", "s"],
        LABEL + [1, 0],
        RUNS["a1"] + [0.1, 0.9],
    )
    return tmp_path


def test_pairs_seeds_and_ensembles_are_scored(runs):
    out = runs / "paired.json"
    done = run_script(
        "paired_runs.py",
        "--a", runs / "a1.npz", runs / "a2.npz",
        "--b", runs / "b1.npz", runs / "b2.npz",
        "--names", "plain", "new",
        "--out", out,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "Folds scored: 1, 2;" in done.stdout
    assert "| change | 1 | +0.500 | -0.167 | +0.1667 |" in done.stdout
    assert "| change | 2 | +0.250 | +0.500 | +0.3750 |" in done.stdout
    # Pairs +0.5, -1/6, +0.25, +0.5: mean 0.2708, 3 of 4 higher.
    assert "balanced accuracy, new - plain: +0.2708 over 4 pairs, higher in 3 of 4" in done.stdout
    # The mean of a1 and a2 in fold 1 is 0.75, 0.4, 0.35, 0.35: sensitivity 1/2, specificity 1.
    assert "| plain | 2 | 0.750 | 1.000 | 0.8750 |" in done.stdout
    record = json.loads(out.read_text())
    assert record["folds"] == [1, 2]
    change = record["changes"]["balanced_accuracy"]
    assert change["per_seed"] == pytest.approx([1 / 6, 0.375])
    assert change["standard_error_over_seeds"] == pytest.approx(abs(0.375 - 1 / 6) / 2)
    assert record["runs"]["b"][0]["balanced_accuracy"] == pytest.approx([1.0, 5 / 6])
    assert record["command"].startswith("python benchmarks/paired_runs.py --a ")


def test_other_patches_are_refused_by_name(runs):
    save_predictions(runs / "x.npz", FOLD, ["p"] * 8, LABEL, RUNS["b1"])
    done = run_script("paired_runs.py", "--a", runs / "a1.npz", "--b", runs / "x.npz")
    assert done.returncode == 2
    assert "x.npz" in done.stderr and "same test patches" in done.stderr


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--b", "b1.npz", "b2.npz"], "pair them by seed"),
        (["--b", "b1.npz", "--threshold", "1.5"], "--threshold"),
        (["--b", "not_there.npz"], "not_there.npz"),
    ],
)
def test_bad_arguments_are_named(runs, extra, message):
    done = run_script(
        "paired_runs.py", "--a", runs / "a1.npz",
        *[runs / arg if arg.endswith(".npz") else arg for arg in extra],
    )  # fmt: skip
    assert done.returncode == 2
    assert message in done.stderr


def test_a_file_without_predictions_is_named(runs):
    import numpy as np

    np.savez(runs / "other.npz", weights=np.zeros(3))
    done = run_script("paired_runs.py", "--a", runs / "a1.npz", "--b", runs / "other.npz")
    assert done.returncode == 2
    assert "other.npz has no" in done.stderr
