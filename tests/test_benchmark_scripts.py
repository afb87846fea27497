"""The benchmark scripts, run on the bundled sample."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from idcclf.datasets import sample_path

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def run_script(script: str, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, str(BENCHMARKS / script), *args],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_split_timing_separates_the_epochs_from_the_fixed_costs():
    sys.path.insert(0, str(BENCHMARKS))
    try:
        from bench_training import split_timing
    finally:
        sys.path.remove(str(BENCHMARKS))
    # 100 patches, epochs of 3, 1 and 1 s inside a call of 7 s.
    timing = split_timing(100, 7.0, [3.0, 1.0, 1.0])
    assert timing["epoch_images_per_s"] == pytest.approx(100.0)
    assert timing["images_per_s"] == pytest.approx(300 / 7)
    assert timing["tracing_s"] == pytest.approx(2.0)
    assert timing["outside_epochs_s"] == pytest.approx(2.0)


def test_bench_training_reports_each_round_and_the_fixed_costs(tmp_path):
    out = tmp_path / "throughput.json"
    stdout = run_script(
        "bench_training.py", "--data", str(sample_path()), "--n", "128", "--epochs", "2",
        "--repeats", "2", "--out", str(out),
    )  # fmt: skip
    runs = json.loads(out.read_text())["runs"]
    assert len(runs) == 4  # tutorial, IDCClassifier with and without augmentation, plain Keras
    for results in runs.values():
        assert len(results) == 2
        for result in results:
            assert len(result["epoch_s"]) == 2
            assert sum(result["epoch_s"]) <= result["total_s"]
            assert result["epoch_images_per_s"] == pytest.approx(128 / result["epoch_s"][1])
    assert stdout.count("IDCClassifier / tutorial") == 2  # one line of ratios per round
    assert "per epoch, per round:" in stdout
    # The re-estimation timed both ways, interleaved, three rounds each.
    recalibration = json.loads(out.read_text())["recalibration_seconds"]
    assert {label: len(s) for label, s in recalibration.items()} == {"kept": 3, "none kept": 3}
    assert "re-estimation, none kept / kept, per round:" in stdout


def test_time_to_quality_scores_both_pipelines_after_every_epoch(tmp_path):
    out, plot = tmp_path / "ttq.json", tmp_path / "ttq.png"
    stdout = run_script(
        "time_to_quality.py", "--data", str(sample_path()), "--train-patients", "4",
        "--val-patients", "3", "--epochs", "2", "--repeats", "1",
        "--set", "filters=(4, 8, 8)", "--set", "dense_units=8", "--set", "lr_schedule='one_cycle'",
        "--out", str(out), "--plot", str(plot),
    )  # fmt: skip
    report = json.loads(out.read_text())
    assert [run["pipeline"] for run in report["runs"]] == ["tutorial", "IDCClassifier"]
    train = {p for ps in report["config"]["train_patients_list"].values() for p in ps}
    val = {p for ps in report["config"]["val_patients_list"].values() for p in ps}
    assert len(train) == 4 and len(val) == 3 and not train & val
    for run in report["runs"]:
        epochs = [p for p in run["points"] if not p["final"]]
        assert [p["epoch"] for p in epochs] == [1, 2]
        seconds = [p["seconds"] for p in epochs]
        assert seconds == sorted(seconds) and seconds[0] > 0
    (final,) = [p for p in report["runs"][1]["points"] if p["final"]]
    assert final["kept_epoch"] is None  # no early stopping: the last epoch's weights
    assert set(report["summary"]) == {"tutorial", "IDCClassifier"}
    assert plot.stat().st_size > 0
    assert "wall time (s, training only)" in stdout


def test_bench_batch_norm_compares_the_fused_layer_with_keras(tmp_path):
    out = tmp_path / "batch_norm.json"
    stdout = run_script(
        "bench_batch_norm.py", "--n", "64", "--rounds", "2", "--steps", "1", "--out", str(out)
    )
    record = json.loads(out.read_text())
    for figures in (record["step_ms"], record["epoch_images_per_s"]):
        assert set(figures) == {"keras", "fused", "none"}
        assert all(len(values) == 2 and min(values) > 0 for values in figures.values())
    # Same weights, one training step: the two layers compute the same thing.
    assert record["agreement"]["output"] < 1e-3
    assert record["agreement"]["moving_statistics"] < 1e-3
    assert stdout.count("fused / keras") == 2  # one line of ratios per round
