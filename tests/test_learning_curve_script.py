"""benchmarks/learning_curve.py on cv_accuracy.py-shaped results."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "learning_curve.py"


def record(path, n_patients, folds, patches_each=100):
    folds = [
        {
            "fold": k,
            "n_train_patients": n_patients,
            "n_train_patches": patches_each * n_patients,
            "balanced_accuracy": bac,
            "roc_auc": bac + 0.1,
            "pr_auc": bac - 0.1,
        }
        for k, bac in folds
    ]
    path.write_text(json.dumps({"train_patients": n_patients, "folds": folds}))
    return str(path)


def test_table_uses_shared_folds_and_sorts_by_size(tmp_path):
    big = record(tmp_path / "big.json", 120, [(1, 0.86), (2, 0.84), (3, 0.70)])
    small = record(tmp_path / "small.json", 20, [(1, 0.80), (2, 0.76)])
    plot = tmp_path / "curve.png"
    done = subprocess.run(
        [sys.executable, str(SCRIPT), big, small, "--plot", str(plot)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    rows = [
        line
        for line in done.stdout.splitlines()
        if line.startswith("| 1") or line.startswith("| 2")
    ]
    # Fold 3 is left out: the small run lacks it.
    assert rows[0].startswith("| 20 | 2000 | 1,2 | 0.780 ± 0.020")
    assert rows[1].startswith("| 120 | 12000 | 1,2 | 0.850 ± 0.010 | 0.950 ± 0.010")
    assert rows[0].endswith("| 0.800 / 0.760 |")
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_by_patches_sorts_runs_of_the_same_patients_by_their_patches(tmp_path):
    runs = [
        record(tmp_path / f"{each}.json", 120, [(1, bac), (2, bac)], patches_each=each)
        for each, bac in ((100, 0.82), (25, 0.78), (50, 0.80))
    ]
    plot = tmp_path / "curve.png"
    done = subprocess.run(
        [sys.executable, str(SCRIPT), *runs, "--by", "patches", "--plot", str(plot)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    rows = [line for line in done.stdout.splitlines() if line.startswith("| 120 |")]
    assert [row.split(" | ")[1] for row in rows] == ["3000", "6000", "12000"]
    expected = ["0.780 ± 0.000", "0.800 ± 0.000", "0.820 ± 0.000"]
    assert [row.split(" | ")[3] for row in rows] == expected
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(
    "folds_b, message", [([(2, 0.8)], "share no fold"), ([], "no finished fold")]
)
def test_unusable_inputs_are_named(tmp_path, folds_b, message):
    a = record(tmp_path / "a.json", 20, [(1, 0.8)])
    b = record(tmp_path / "b.json", 40, folds_b)
    done = subprocess.run(
        [sys.executable, str(SCRIPT), a, b], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 2
    assert message in done.stderr
