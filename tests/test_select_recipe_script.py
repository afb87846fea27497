"""benchmarks/select_recipe.py, run on the bundled sample with a tiny budget."""

import json
import subprocess
import sys

import pytest
from _benchmarks import BENCHMARKS, import_benchmark

from idcclf.datasets import sample_path

SCRIPT = BENCHMARKS / "select_recipe.py"


def run_script(*args):
    return subprocess.run(
        [sys.executable, str(SCRIPT), "--data", str(sample_path()), *args],
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_recipes_share_fixed_validation_patients(tmp_path):
    out = tmp_path / "select.json"
    tiny = "filters=(4, 8, 8), dense_units=8"
    args = ["--val-patients", "3", "--fraction", "0.3", "--epochs", "1", "--out", str(out)]
    done = run_script(
        *args, "--recipe", f"tiny: {tiny}", "--recipe", f"tiny_adam: {tiny}, optimizer='adam'"
    )
    assert done.returncode == 0, done.stderr[-2000:]
    runs = json.loads(out.read_text())
    assert [r["name"] for r in runs] == ["tiny", "tiny_adam"]
    assert runs[0]["params"]["class_weight"] == "balanced"
    assert runs[0]["params"]["filters"] == [4, 8, 8]
    assert runs[1]["params"]["optimizer"] == "adam"
    held = runs[0]["validation_patients"]
    assert held == runs[1]["validation_patients"]
    patients = sorted(d.name for d in sample_path().iterdir() if d.is_dir())
    assert set(held) < set(patients)
    for run in runs:
        for key in ("balanced_accuracy", "roc_auc", "f1", "bac_val_threshold", "bac_tta"):
            assert 0.0 <= run[key] <= 1.0
        assert run["fit_seconds"] > 0
    assert " ".join(held) in done.stdout
    # A second invocation appends to the same file with the same validation patients.
    done = run_script(*args, "--recipe", f"again: {tiny}", "--seed", "1", "--standardize-patients")
    assert done.returncode == 0, done.stderr[-2000:]
    runs = json.loads(out.read_text())
    assert len(runs) == 3 and runs[2]["seed"] == 1 and runs[2]["validation_patients"] == held
    assert runs[2]["standardize_patients"] and not runs[0]["standardize_patients"]
    assert not any(run["normalize_stains"] for run in runs)
    assert not any("upsample" in run or "input_shape" in run["params"] for run in runs)
    done = run_script("--out", str(out), "--table")
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"| tiny_adam | 0 | {runs[1]['balanced_accuracy']:.3f} | – |" in done.stdout


@pytest.mark.parametrize(
    "recipe, message",
    [("no_colon", "a recipe is 'NAME: k=v, ...'"), ("x: 3", "give parameters as k=v")],
)
def test_bad_recipes_are_named(recipe, message):
    done = run_script("--recipe", recipe)
    assert done.returncode == 2
    assert message in done.stderr


@pytest.mark.parametrize(
    "args, message",
    [
        (["--means-only"], "--means-only qualifies --standardize-patients: give both"),
        (
            ["--normalize-stains", "--standardize-patients"],
            "--normalize-stains and --standardize-patients exclude each other",
        ),
        (["--upsample", "0"], "--upsample must be 1 or more, got 0"),
    ],
)
def test_colour_options_are_checked(args, message):
    done = run_script(*args)
    assert done.returncode == 2
    assert message in done.stderr


def test_upsampled_recipes_take_the_enlarged_shape(tmp_path):
    out = tmp_path / "select.json"
    done = run_script(
        "--val-patients", "3", "--fraction", "0.1", "--epochs", "1", "--upsample", "2",
        "--recipe", "up: filters=(4, 8, 8), dense_units=8", "--out", str(out),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    (run,) = json.loads(out.read_text())
    assert run["upsample"] == 2 and run["params"]["input_shape"] == [100, 100, 3]
    assert 0.0 <= run["balanced_accuracy"] <= 1.0


def test_a_recipe_without_validation_patients_has_no_validation_threshold(tmp_path):
    out = tmp_path / "select.json"
    done = run_script(
        "--val-patients", "3", "--fraction", "0.1", "--epochs", "1",
        "--recipe", "all: filters=(4, 8, 8), dense_units=8, validation_fraction=0.0",
        "--out", str(out),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    (run,) = json.loads(out.read_text())
    assert run["bac_val_threshold"] is None and run["validation_threshold"] is None
    assert 0.0 <= run["balanced_accuracy"] <= 1.0 and 0.0 <= run["bac_tta"] <= 1.0
    assert "bac_val_threshold –" in done.stdout
    done = run_script("--out", str(out), "--table")
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"| {run['f1']:.3f} | – | {run['bac_tta']:.3f} |" in done.stdout


def test_parse_recipe_reads_literals():
    parse_recipe = import_benchmark("select_recipe").parse_recipe
    assert parse_recipe("wide: filters=(48, 96, 192), class_weight=None") == (
        "wide",
        {"filters": (48, 96, 192), "class_weight": None},
    )
