"""The benchmark scripts, run on the bundled sample."""

import json
import subprocess
import sys

import pytest
from _benchmarks import BENCHMARKS, import_benchmark

from idcclf._allocator import on_glibc
from idcclf.datasets import sample_path


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
    split_timing = import_benchmark("bench_training").split_timing
    # 100 patches, epochs of 3, 1 and 1 s inside a call of 7 s.
    timing = split_timing(100, 7.0, [3.0, 1.0, 1.0])
    assert timing["epoch_images_per_s"] == pytest.approx(100.0)
    assert timing["images_per_s"] == pytest.approx(300 / 7)
    assert timing["tracing_s"] == pytest.approx(2.0)
    assert timing["outside_epochs_s"] == pytest.approx(2.0)


def test_in_fresh_process_runs_elsewhere_and_reports_failures(monkeypatch):
    """Each benchmark run gets a process of its own, and its errors are not lost."""
    import os

    # on the path while the children start too: they import the script's helper
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    from bench_training import in_fresh_process

    assert in_fresh_process(divmod, 17, 5) == (3, 2)
    assert in_fresh_process(os.getpid) != os.getpid()
    with pytest.raises(RuntimeError, match="(?s)int failed in its own process.*ValueError"):
        in_fresh_process(int, "not a number")
    with pytest.raises(RuntimeError, match="ended without a result .exit code 3"):
        in_fresh_process(os._exit, 3)


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


def test_bench_allocator_runs_each_setting_in_a_process_of_its_own(tmp_path):
    out = tmp_path / "allocator.json"
    stdout = run_script(
        "bench_allocator.py", "--data", str(sample_path()), "--n", "256", "--epochs", "1",
        "--predict", "256", "--repeats", "1", "--out", str(out),
    )  # fmt: skip
    (round_,) = json.loads(out.read_text())["rounds"]
    results = round_["results"]
    assert set(results) == {"tensorflow", "raised"}
    for result in results.values():
        assert result["peak_rss_mb"] > 0
        assert result["fit"]["images_per_s"] == pytest.approx(256 / result["fit"]["wall_s"])
    if on_glibc():
        # TensorFlow's setting maps large buffers afresh: more page faults. How many
        # more depends on the machine and the size (1.7x on one VM, 16-211x in the
        # runs of docs/benchmarks_training.md).
        tensorflow, raised = (results[v]["fit"]["minor_faults"] for v in ("tensorflow", "raised"))
        assert raised < 0.8 * tensorflow
    assert "round 1: raised thresholds" in stdout


def test_time_to_quality_scores_both_pipelines_after_and_inside_every_epoch(tmp_path):
    out, plot = tmp_path / "ttq.json", tmp_path / "ttq.png"
    stdout = run_script(
        "time_to_quality.py", "--data", str(sample_path()), "--train-patients", "4",
        "--val-patients", "3", "--epochs", "2", "--repeats", "1", "--scores-per-epoch", "2",
        "--set", "filters=(4, 8, 8)", "--set", "dense_units=8", "--set", "lr_schedule='one_cycle'",
        "--out", str(out), "--plot", str(plot),
    )  # fmt: skip
    report = json.loads(out.read_text())
    assert [run["pipeline"] for run in report["runs"]] == ["tutorial", "IDCClassifier"]
    train = {p for ps in report["config"]["train_patients_list"].values() for p in ps}
    val = {p for ps in report["config"]["val_patients_list"].values() for p in ps}
    assert len(train) == 4 and len(val) == 3 and not train & val
    for run in report["runs"]:
        scored = [p["epoch"] for p in run["points"] if not p["final"]]
        # twice an epoch: once half-way (as near as whole batches allow), once at its end
        assert len(scored) == 4 and scored[1::2] == [1, 2]
        assert 0 < scored[0] < 1 < scored[2] < 2
        ends = [p["seconds"] for p in run["points"] if p["epoch"] in (1, 2) and not p["final"]]
        assert ends == sorted(ends) and ends[0] > 0
    (final,) = [p for p in report["runs"][1]["points"] if p["final"]]
    assert final["kept_epoch"] is None  # no early stopping: the last epoch's weights
    assert set(report["summary"]) == {"tutorial", "IDCClassifier"}
    assert plot.stat().st_size > 0
    assert "wall time (s, training only)" in stdout
    # where ours' time to its first score went: in order, and the parts add up
    ours = report["runs"][1]
    first = ours["points"][0]
    assert 0 < ours["load_seconds"] < ours["first_batch_seconds"] < first["seconds"]
    assert 0 < first["counted_seconds"] < first["seconds"] - ours["first_batch_seconds"]
    assert "IDCClassifier, seed 0: first score at" in stdout


def _ttq_run(pipeline: str, repeat: int, seed: int, curve: list) -> dict:
    points = [
        {"epoch": e, "seconds": t, "balanced_accuracy": ba, "final": False}
        for e, (t, ba) in enumerate(curve, start=1)
    ]
    return {"pipeline": pipeline, "repeat": repeat, "seed": seed, "points": points}


def test_time_to_quality_trains_ours_on_a_share_of_the_patches(tmp_path):
    out = tmp_path / "share.json"
    run_script(
        "time_to_quality.py", "--data", str(sample_path()), "--train-patients", "4",
        "--val-patients", "3", "--epochs", "1", "--repeats", "1", "--skip-tutorial",
        "--train-fraction", "0.5", "--set", "filters=(4, 8, 8)", "--set", "dense_units=8",
        "--out", str(out),
    )  # fmt: skip
    report = json.loads(out.read_text())
    # no --plot: the figure goes beside --out, not over another run's default figure
    assert (tmp_path / "share.png").stat().st_size > 0
    (run,) = report["runs"]
    assert run["n_train_patches"] == pytest.approx(report["config"]["n_train"] / 2, abs=1)
    done = subprocess.run(
        [sys.executable, str(BENCHMARKS / "time_to_quality.py"), "--train-fraction", "0.5"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 2 and "add --skip-tutorial" in done.stderr


def test_a_score_inside_an_epoch_leaves_training_as_it_was(monkeypatch):
    """Scoring ours re-estimates batch-norm statistics in place; inside an epoch the
    scorer must put them back, and it must score where it says."""
    import keras
    import numpy as np

    monkeypatch.syspath_prepend(str(BENCHMARKS))
    from time_to_quality import Clock, epoch_scorer

    model = keras.Sequential([keras.Input((3,)), keras.layers.BatchNormalization()])
    model.add(keras.layers.Dense(1))
    model.compile("sgd", "mse")

    def spoiling_score(scored):
        for variable in scored.non_trainable_variables:
            variable.assign(np.full(variable.shape, 123.0, "float32"))
        return 0.5, 0.0

    class Watch(keras.callbacks.Callback):
        spoiled = 0

        def on_train_batch_end(self, batch, logs=None):
            values = [v.numpy() for v in self.model.non_trainable_variables]
            self.spoiled += any((value > 100).any() for value in values)

    points: list = []
    watch = Watch()
    scorer = epoch_scorer(Clock(), spoiling_score, points, "toy", per_epoch=4)
    x, y = np.random.default_rng(0).normal(size=(2, 80, 3)).astype("float32")
    model.fit(x, y[:, :1], batch_size=10, epochs=1, verbose=0, callbacks=[scorer, watch])
    assert [p["epoch"] for p in points] == [0.25, 0.5, 0.75, 1]
    # the end-of-epoch score comes after the last batch; the three inside are undone
    assert watch.spoiled == 0
    assert all((v.numpy() > 100).all() for v in model.non_trainable_variables)


def test_time_to_quality_pairs_reports_ratios_bounds_and_the_tally(tmp_path):
    tutorial, ours = "tutorial", "IDCClassifier"
    first = tmp_path / "first.json"
    first.write_text(json.dumps({"runs": [
        # both reach 0.80: 500 s against 100 s, exactly the 1/5 target
        _ttq_run(tutorial, 1, 0, [(250, 0.70), (500, 0.81)]),
        _ttq_run(ours, 1, 0, [(100, 0.82), (200, 0.83)]),
        # the tutorial never does: at least its budget's 700 s over ours' 140 s
        _ttq_run(tutorial, 2, 1, [(350, 0.72), (700, 0.79)]),
        _ttq_run(ours, 2, 1, [(140, 0.80)]),
    ]}))  # fmt: skip
    second = tmp_path / "second.json"
    second.write_text(json.dumps({"runs": [
        # ours never does: the ratio is an upper bound and never counts
        _ttq_run(tutorial, 1, 2, [(300, 0.80)]),
        _ttq_run(ours, 1, 2, [(20, 0.78), (30, 0.79)]),
        _ttq_run(ours, 2, 3, [(20, 0.81)]),  # no tutorial run to pair it with
    ]}))  # fmt: skip
    stdout = run_script(
        "time_to_quality.py", "--pairs", str(first), str(second), "--targets", "0.8"
    )
    rows = {
        " ".join(line.split()[:2]): line
        for line in stdout.splitlines()
        if line.startswith(("first.json", "second.json"))
    }
    assert len(rows) == 3
    assert rows["first.json 0"].endswith("500/100 s, 5.0x")
    assert rows["first.json 1"].endswith("-/140 s, >5.0x")
    assert rows["second.json 2"].endswith("300/- s, <10.0x")
    assert "repeat 2 has no pair (IDCClassifier)" in stdout
    assert "1/5 of the tutorial's time: 0.80: 2 of 3" in stdout
    # medians over the pairs: ours' run that ended short (at 30 s) sits below the middle
    assert "0.80: tutorial 500.0 s; IDCClassifier >100.0 s; median ratio n/a" in stdout
    stdout = run_script("time_to_quality.py", "--pairs", str(first), "--speedup", "6")
    assert "1/6 of the tutorial's time: 0.70: 0 of 2, 0.75: 0 of 2, 0.80: 0 of 2" in stdout
    # the tutorial's 700-s budget is a bound: the median of 500 and >700 is only >600
    # ratios 5.0 and >5.0: the median is a bound, the lowest is exact
    assert (
        "0.80: tutorial >600.0 s; IDCClassifier 120.0 s; median ratio >5.0x (lowest 5.0x)" in stdout
    )

    # scored twice an epoch: ours is at 0.80 half-way through its first epoch
    halves = tmp_path / "halves.json"
    runs = [
        _ttq_run(tutorial, 1, 4, [(200, 0.70), (400, 0.81)]),
        _ttq_run(ours, 1, 4, [(50, 0.81), (100, 0.82)]),
    ]
    for run in runs:
        for point, epoch in zip(run["points"], (0.5, 1), strict=True):
            point["epoch"] = epoch
    halves.write_text(json.dumps({"runs": runs}))
    args = ("time_to_quality.py", "--pairs", str(halves), "--targets", "0.8")
    assert "400/50 s, 8.0x" in run_script(*args)
    assert "400/100 s, 4.0x" in run_script(*args, "--whole-epochs")


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


def test_epoch_modes_flags_the_epochs_far_above_the_median():
    epoch_modes = import_benchmark("epoch_modes")
    # The first epoch traces the graph: it is never flagged, nor counted in the median.
    assert epoch_modes.slow_epochs([5.0, 1.0, 1.1, 2.0, 0.9], 1.5) == [
        False, False, False, True, False,
    ]  # fmt: skip
    records = [
        {"wall_s": w, "busy": b, "idle": 1 - b, "steal": 0.0, "top_thread_cpu_s": [c, c]}
        for w, b, c in [(5.0, 0.9, 4.0), (1.0, 0.9, 0.9), (2.0, 0.45, 0.9), (1.0, 0.9, 0.9)]
    ]
    summary = epoch_modes.summarize(records, [False, False, True, False])
    assert summary["fast"]["epochs"] == 2 and summary["slow"]["epochs"] == 1
    assert summary["slow"]["wall_s"] == pytest.approx(2.0)
    assert summary["slow"]["idle"] == pytest.approx(0.55)
    assert summary["fast"]["top_thread_cpu_s"] == pytest.approx(1.8)


@pytest.mark.parametrize("feed", ["arrays", "dataset"])
def test_epoch_modes_records_wall_and_cpu_time_per_epoch(tmp_path, feed):
    out = tmp_path / "modes.json"
    stdout = run_script(
        "epoch_modes.py", "--n", "64", "--epochs", "3", "--feed", feed, "--out", str(out)
    )
    report = json.loads(out.read_text())
    assert report["config"]["feed"] == feed
    assert len(report["epochs"]) == 3 and len(report["slow"]) == 3
    for epoch in report["epochs"]:
        assert epoch["wall_s"] > 0
        assert 0 <= epoch["busy"] <= 1 and 0 <= epoch["idle"] <= 1
        assert epoch["busy"] + epoch["idle"] + epoch["steal"] <= 1 + 1e-9
        assert len(epoch["top_thread_cpu_s"]) == 2
        assert all(s >= 0 for s in epoch["top_thread_cpu_s"])
    rows = [line for line in stdout.splitlines() if line.startswith("| ")]
    assert len(rows) == 1 + 3  # the header and one row per epoch


def test_epoch_modes_refuses_bad_arguments():
    epoch_modes = import_benchmark("epoch_modes")
    for argv in (["--epochs", "2"], ["--factor", "1"], ["--n", "8"], ["--feed", "pipes"]):
        with pytest.raises(SystemExit):
            epoch_modes.parse_args(argv)


def test_bn_samples_scores_each_subset_size_against_all_the_patches(tmp_path):
    out = tmp_path / "bn_samples.json"
    stdout = run_script(
        "bn_samples.py", "--data", str(sample_path()), "--train-patients", "4",
        "--val-patients", "3", "--epochs", "1", "--seeds", "0", "--sizes", "16", "64",
        "--draws", "2", "--set", "filters=(4, 8, 8)", "--set", "dense_units=8",
        "--out", str(out),
    )  # fmt: skip
    record = json.loads(out.read_text())
    assert [(row["size"], row["draw"]) for row in record["rows"]] == [
        ("all", None), (16, 0), (16, 1), (64, 0), (64, 1),
    ]  # fmt: skip
    reference, *subsets = record["rows"]
    assert reference["patches"] == record["config"]["training_patches"]
    assert [row["patches"] for row in subsets] == [16, 16, 64, 64]
    for row in subsets:
        assert row["delta_balanced_accuracy"] == pytest.approx(
            row["balanced_accuracy"] - reference["balanced_accuracy"]
        )
    assert set(record["summary"]) == {"all", "16", "64"}
    assert "per size, over seeds and draws" in stdout


def test_bn_samples_refuses_the_settings_it_makes_itself():
    done = subprocess.run(
        [sys.executable, str(BENCHMARKS / "bn_samples.py"), "--set", "recalibrate_batch_norm=True"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 2
    assert "recalibrate_batch_norm" in done.stderr


@pytest.mark.parametrize(
    "script, args, expected",
    [
        ("cv_accuracy.py", ["--set", "normalize_stains=True"], "use --normalize-stains"),
        ("select_recipe.py", ["--recipe", "n: normalize_stains=True"], "use --normalize-stains"),
        ("time_to_quality.py", ["--set", "normalize_stains=True"], "needs the patients"),
        ("bn_samples.py", ["--set", "normalize_stains=True"], "needs the patients"),
    ],
)
def test_scripts_refuse_a_model_that_normalizes_stains(script, args, expected):
    """They score with predict_proba(X) alone: refused before any training, not after."""
    done = subprocess.run(
        [sys.executable, str(BENCHMARKS / script), *args],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr[-2000:]
    assert "normalize_stains" in done.stderr and expected in done.stderr, done.stderr[-2000:]


@pytest.mark.parametrize("executor", ["process", "thread"])
def test_bench_decoding_times_both_ways_on_the_same_pixels(executor):
    stdout = run_script(
        "bench_decoding.py", "--data", str(sample_path()), "--rounds", "2", "--executor", executor
    )
    runs = [line for line in stdout.splitlines() if line.startswith("round ")]
    assert len(runs) == 4 and sum("in place" in line for line in runs) == 2
    assert f"{executor} x2, 2400 patches, medians: in place" in stdout
    assert "pickled / in place" in stdout


def test_epoch_boundary_times_the_waits_of_both_feeds(tmp_path):
    out = tmp_path / "boundary.json"
    stdout = run_script(
        "epoch_boundary.py", "--epochs", "3", "--seconds-per-epoch", "0.4", "--steps", "2",
        "--rounds", "1", "--out", str(out),
    )  # fmt: skip
    runs = json.loads(out.read_text())["runs"]
    assert [run["feed"] for run in runs] == ["pydataset", "idcclf"]
    for run in runs:
        assert len(run["boundary_waits_s"]) == 2  # between epochs 1-2 and 2-3
        assert all(wait >= 0 for wait in [*run["boundary_waits_s"], run["end_wait_s"]])
        # three epochs of at least 0.4 s of load each
        assert run["fit_s"] >= 1.2
    assert "round 1, pydataset" in stdout and "round 1, idcclf" in stdout
    assert stdout.count("over 1 s") == 2


def test_epoch_boundary_refuses_bad_arguments():
    epoch_boundary = import_benchmark("epoch_boundary")
    for argv in (
        ["--epochs", "0"],
        ["--steps", "0"],
        ["--rounds", "0"],
        ["--seconds-per-epoch", "-1"],
    ):
        with pytest.raises(SystemExit):
            epoch_boundary.parse_args(argv)


def test_first_batch_traces_the_step_once_when_built_and_twice_when_lazy(tmp_path):
    out = tmp_path / "first_batch.json"
    stdout = run_script("first_batch.py", "--n", "64", "--rounds", "1", "--out", str(out))
    runs = json.loads(out.read_text())["runs"]
    assert [(run["way"], run["traces"]) for run in runs] == [("built", 1), ("lazy", 2)]
    for run in runs:
        assert 0 < run["first_batch_s"] <= run["epoch_s"]
    assert "median to the first batch: built" in stdout


def test_first_batch_refuses_bad_arguments():
    first_batch = import_benchmark("first_batch")
    for argv in (["--n", "63"], ["--rounds", "0"]):
        with pytest.raises(SystemExit):
            first_batch.parse_args(argv)


def test_recalibration_times_both_ways_with_the_same_statistics(tmp_path):
    out = tmp_path / "recalibration.json"
    stdout = run_script(
        "recalibration.py", "--against", "HEAD", "--n", "96", "--rounds", "1", "--calls", "2",
        "--out", str(out),
    )  # fmt: skip
    runs = json.loads(out.read_text())["runs"]
    assert [run["way"] for run in runs] == ["now", "then"]
    for run in runs:
        assert run["patches"] == 96 and len(run["seconds"]) == 2 and min(run["seconds"]) > 0
    recalibration = import_benchmark("recalibration")
    means, variances = recalibration.largest_differences(*runs)
    assert means < 1e-4 and variances < 1e-3
    assert "statistics, now against then" in stdout


def test_recalibration_refuses_bad_arguments():
    recalibration = import_benchmark("recalibration")
    for argv in ([], ["--against", "HEAD", "--n", "0"], ["--against", "HEAD", "--calls", "0"]):
        with pytest.raises(SystemExit):
            recalibration.parse_args(argv)
    with pytest.raises(SystemExit, match="no-such-revision"):
        recalibration.previous_source("no-such-revision")


def test_bench_distributed_matches_one_process_and_reports_worker_memory():
    import re

    stdout = run_script(
        "bench_distributed.py", "--data", str(sample_path()), "--patients", "3", "--workers", "1"
    )
    assert "predict_patients, LocalCluster 1 worker(s)" in stdout
    peaks = re.search(r"worker peak memory (\d+) MB after 2 patients, (\d+) MB after 3", stdout)
    assert peaks, stdout
    assert 0 < int(peaks[1]) <= int(peaks[2])
    difference = re.search(r"from the single-process probabilities: (\S+)", stdout)
    assert float(difference[1]) < 1e-5
