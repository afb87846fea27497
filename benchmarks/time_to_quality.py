"""Time to a good model: the tutorial's training pipeline against ``IDCClassifier``.

Both pipelines train on the same training patients and are scored after every epoch
on the same held-out validation patients, by balanced accuracy. The clock runs while
a pipeline trains and stops while it is scored, so each point is the wall time the
pipeline needed to produce that model. ``--scores-per-epoch K`` scores both pipelines
K times an epoch instead, at evenly spaced batches (the last at the epoch's end), so
that a target reached inside an epoch is timed there rather than at the epoch's end;
training goes on from the weights and batch-norm statistics it had before each score
inside an epoch. While the tutorial is scored, tf.data may go on filling its
prefetch buffer (its generator is read through ``prefetch(AUTOTUNE)``), so each pause
can give it a few decoded batches for free; ours trains from arrays decoded before
its first epoch and reads nothing ahead. Each pause, and so each extra score,
favours the tutorial. The script prints, for each pipeline, the
wall time to first reach a validation balanced accuracy of 0.70, 0.75, 0.80 and 0.85
(``--targets``) and its best, within ``--epochs`` epochs (the budget), and writes a
plot of balanced accuracy against wall time and a JSON of every point.

The pipelines:

- **tutorial**: ``tutorial_pipeline`` of ``bench_training.py`` (imported, not
  copied): the training patients' PNG files (symbolic links in a temporary
  ``<label>/`` tree) read by the legacy ``ImageDataGenerator.flow_from_directory`` at
  48x48 with its augmentation (rotation 20, zoom 0.05, shifts 0.1, shear 0.05,
  horizontal and vertical flips, fill "nearest", rescale 1/255), CancerNet built at
  48x48 from Keras' own layers (``fused_batch_norm=False``), Adagrad 1e-2 with the
  tutorial's ``decay=INIT_LR / NUM_EPOCHS`` (Keras 3 has no ``decay`` argument; Keras 2
  applied it per step as ``lr / (1 + decay * step)``, which is
  ``InverseTimeDecay(1e-2, decay_steps=1, decay_rate=1e-2 / epochs)``), class
  weights ``max(count) / count``, batch 32 and no ``steps_per_epoch`` (with Keras 3,
  ``steps_per_epoch=n // 32`` on this legacy iterator runs out of data after the first
  epoch). It is scored through its own ``predict`` on the validation patches loaded as
  its generator loads them (48x48, nearest-neighbour resize, times 1/255). Its clock
  includes scanning the folders.
- **ours**: ``IDCClassifier(class_weight="balanced")``, as ``idcclf train`` uses it,
  other parameters at their defaults or set with ``--set NAME=VALUE`` (a Python
  literal; repeatable). Its clock includes decoding the training PNGs
  (``load_idc(..., cache=False)``) and every part of ``fit`` (its internal validation
  split included). It is scored through ``predict_proba`` on the validation patients'
  50x50 patches; since ``fit`` ends by re-estimating the batch-norm statistics, the
  model is scored after the same re-estimation (4,096 training patches), and that
  step's time is added to the point's time (once, not accumulated). A last point
  scores the model ``fit`` returns, at the time it returned (what ``fit`` does after
  its last epoch is paid there).

The two pipelines run interleaved (tutorial, ours, tutorial, ours, ...) ``--repeats``
times, with seeds ``--seed``, ``--seed + 1``, ...; the spread across repeats is printed.
Every run happens in a fresh Python process of its own (``in_fresh_process`` of
``bench_training.py``), so that none inherits what an earlier one left behind: glibc's
allocator thresholds as ``IDCClassifier`` raises them (``idcclf._allocator``), the
heaps an earlier fit grew, warm kernel caches. Each clock starts after the imports.
The patients are drawn at random (``--split-seed``) from every patient folder under
the ``--data`` roots: ``--train-patients`` for training, then ``--val-patients`` (default:
all the others) for validation; both lists are printed.

Levers to compare, by running the script with other ``--set`` values (every run trains
the tutorial too, as the common yardstick):

- warm-up and decay: ``--set lr_schedule='one_cycle' --set learning_rate=0.02``, or
  decay alone: ``--set lr_schedule='cosine' --set learning_rate=0.02`` (both follow
  ``--epochs``, the budget);
- balanced undersampled epochs: ``--set undersample=True`` (each epoch keeps every
  IDC patch and as many others, a new draw every epoch);
- larger batches with a proportionally scaled rate: ``--set batch_size=128 --set
  learning_rate=0.04``;
- early stopping: ``--set early_stopping=True --set n_iter_no_change=3``;
- ``--skip-tutorial`` to run ours alone;
- ``--train-fraction F`` (with ``--skip-tutorial``): ours trains on a random,
  class-stratified share F of the training patches, drawn after decoding them all (so
  the clock still pays for every PNG). With ``--epochs 1`` it trains as the full run
  had trained after a share F of its first epoch (as many patches, drawn at random,
  as an epoch's random order visits first), and times what a user waits for to get
  such a model from ``fit``: its whole fit, internal validation and batch-norm
  re-estimation included.

Usage::

    python benchmarks/time_to_quality.py [--data ../shared/data/idc --data
        ../shared/data/idc-partial] [--train-patients 60] [--val-patients N]
        [--epochs 20] [--repeats 3] [--scores-per-epoch 1] [--set NAME=VALUE ...]
        [--out time_to_quality.json]
        [--plot time_to_quality.png (default: --out with .png)]

Pairs over several runs: ``--pairs FILE.json [FILE.json ...]`` reads the JSONs of
earlier runs (nothing is trained) and prints, for every interleaved pair (the tutorial
and ``IDCClassifier`` of one repeat), each pipeline's time to each target and the
ratio tutorial / ours, then how many pairs reached ``--speedup`` (default 5: ours in
at most 1/5 of the tutorial's time). Where the tutorial did not reach a target within
its budget, the ratio is a lower bound, its budget's end over ours (printed ``>``);
where ours did not, an upper bound (``<``), which never counts as reached. Last come,
per target, each pipeline's median time over the pairs and the median of the pairs'
ratios (``>`` where runs that ended short of the target make it a lower bound).
``--whole-epochs`` reads only the scores at the ends of epochs, so runs made with
``--scores-per-epoch K`` can also be read as if each pipeline had been scored once an
epoch.

Smoke test (a minute or two)::

    python benchmarks/time_to_quality.py --data ../shared/data/idc --train-patients 4 \\
        --val-patients 4 --epochs 1 --repeats 1
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_training import (  # noqa: E402
    balanced_accuracy,
    extra_fit_callbacks,
    in_fresh_process,
    tutorial_pipeline,
)

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = [
    REPO.parent / "shared" / "data" / "idc",
    REPO.parent / "shared" / "data" / "idc-partial",
]
TUTORIAL, OURS = "tutorial", "IDCClassifier"
#: What ``idcclf train`` changes from the estimator's defaults.
BASE_PARAMS = {"class_weight": "balanced"}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--data", type=Path, action="append", help="patient-folder root (repeatable)"
    )
    parser.add_argument("--train-patients", type=int, default=60)
    parser.add_argument("--val-patients", type=int, default=None, help="default: all others")
    parser.add_argument("--split-seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=20, help="budget, per run (default 20)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--scores-per-epoch",
        type=int,
        default=1,
        metavar="K",
        help="score both pipelines K times an epoch, at evenly spaced batches (default 1)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the first repeat")
    parser.add_argument("--targets", type=float, nargs="+", default=[0.70, 0.75, 0.80, 0.85])
    parser.add_argument(
        "--set", action="append", default=[], metavar="NAME=VALUE", help="IDCClassifier parameter"
    )
    parser.add_argument("--skip-tutorial", action="store_true")
    parser.add_argument(
        "--train-fraction",
        type=float,
        default=1.0,
        metavar="F",
        help="ours trains on a random, class-stratified share F of the training patches "
        "(drawn with each run's seed; needs --skip-tutorial; default 1)",
    )
    parser.add_argument("--out", type=Path, default=Path("time_to_quality.json"))
    parser.add_argument(
        "--plot",
        type=Path,
        default=None,
        help="the figure (default: --out with .png, so that runs with their own --out do "
        "not overwrite each other's)",
    )
    parser.add_argument(
        "--pairs", type=Path, nargs="+", metavar="FILE", help="print the pairs of earlier runs"
    )
    parser.add_argument("--speedup", type=float, default=5.0, help="with --pairs (default 5)")
    parser.add_argument(
        "--whole-epochs",
        action="store_true",
        help="with --pairs: only the scores at the end of an epoch (as --scores-per-epoch 1)",
    )
    args = parser.parse_args()
    args.data = args.data or DEFAULT_DATA
    for name in ("train_patients", "epochs", "repeats", "scores_per_epoch"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.val_patients is not None and args.val_patients < 1:
        parser.error("--val-patients must be at least 1")
    if not 0 < args.train_fraction <= 1:
        parser.error(f"--train-fraction {args.train_fraction}: must be in (0, 1]")
    if args.train_fraction < 1 and not args.skip_tutorial:
        parser.error("--train-fraction: the tutorial trains on every patch; add --skip-tutorial")
    args.params = parse_params(parser, args.set)
    if args.plot is None:
        args.plot = args.out.with_suffix(".png")
    return args


#: Why the benchmark scripts refuse ``--set normalize_stains``: such a model cannot
#: predict without the patients, and the scripts score with ``predict_proba(X)``.
NO_NORMALIZING_MODEL = (
    "a model that normalizes stains needs the patients to predict, and this script "
    "scores with predict_proba(X) alone"
)


def parse_params(parser: argparse.ArgumentParser, items: list[str]) -> dict:
    from idcclf import IDCClassifier

    known = IDCClassifier().get_params()
    params = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or name not in known:
            parser.error(f"--set {item!r}: expected NAME=VALUE with NAME among {sorted(known)}")
        if name == "epochs":
            parser.error("--set epochs: use --epochs, the budget both pipelines share")
        if name == "normalize_stains":
            parser.error(f"--set {name}: {NO_NORMALIZING_MODEL}")
        try:
            params[name] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            params[name] = value
    return params


# --------------------------------------------------------------------------- data


def split_patients(roots: list[Path], n_train: int, n_val: int | None, seed: int):
    """``{root: [patients]}`` for training and for validation, drawn at random."""
    owner: dict[str, Path] = {}
    for root in roots:
        if not root.is_dir():
            sys.exit(f"no data at {root}: pass --data")
        for p in sorted(d.name for d in root.iterdir() if (d / "0").is_dir() or (d / "1").is_dir()):
            if p in owner:
                sys.exit(f"patient {p} is in both {owner[p]} and {root}")
            owner[p] = root
    patients = np.array(sorted(owner))
    if n_train >= len(patients):
        sys.exit(f"--train-patients {n_train}: only {len(patients)} patients under the roots")
    order = np.random.default_rng(seed).permutation(len(patients))
    train = sorted(patients[order[:n_train]])
    rest = order[n_train:] if n_val is None else order[n_train : n_train + n_val]
    val = sorted(patients[rest])

    def by_root(chosen):
        return {
            r: [p for p in chosen if owner[p] == r]
            for r in roots
            if any(owner[p] == r for p in chosen)
        }

    return by_root(train), by_root(val)


def load(by_root: dict, cache: bool = True, paths: bool = True):
    """Patches, labels, patients and full paths (None unless ``paths``) of the patients.

    One ``load_idc`` call over every root: one decoding pass into one array, where a
    call per root would copy every pixel again to join them.
    """
    from idcclf import load_idc

    owner = {patient: root for root, ps in by_root.items() for patient in ps}
    bunch = load_idc(list(by_root), patients=list(owner), cache=cache)
    files = None
    if paths:
        files = [owner[g] / f for g, f in zip(bunch.groups, bunch.filenames, strict=True)]
    return bunch.data, bunch.target, bunch.groups, files


def load_tutorial_view(files) -> np.ndarray:
    """The patches as the tutorial's generator reads them: 48x48, nearest, uint8."""
    import keras

    return np.stack([np.asarray(keras.utils.load_img(f, target_size=(48, 48))) for f in files])


def link_tree(folder: Path, files, labels) -> Path:
    """``folder/<label>/<i>_<name>`` links to the training files, for flow_from_directory."""
    for i, (path, label) in enumerate(zip(files, labels, strict=True)):
        target = folder / str(label)
        target.mkdir(parents=True, exist_ok=True)
        os.symlink(path.resolve(), target / f"{i:06d}_{path.name}")
    return folder


# --------------------------------------------------------------------------- clock


class Clock:
    """Wall time since ``start``, less the time spent while paused."""

    def __init__(self):
        self.start = time.perf_counter()
        self.paused = 0.0

    def elapsed(self) -> float:
        return time.perf_counter() - self.start - self.paused


def epoch_scorer(
    clock: Clock, score, points: list, label: str, per_epoch: int = 1, timings: dict | None = None
):
    """A Keras callback: the clock stops, the model is scored, the point recorded.

    The model is scored after every epoch and, with ``per_epoch`` above 1, also
    ``per_epoch - 1`` times inside each epoch, at evenly spaced batches (the point's
    ``epoch`` is then fractional: 1.5 is half-way through the second epoch). Training
    goes on from the weights and statistics it had before such a mid-epoch score; then
    ``timings`` (if given) also gets the clock at the end of the first batch.
    """
    import keras

    timings = {} if timings is None else timings

    class EpochScorer(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            self.record(epoch + 1, logs)

        def record(self, epoch, logs, inside=False):
            stopped = time.perf_counter()
            seconds = clock.elapsed()
            # Scoring ours re-estimates the batch-norm statistics in place: inside an
            # epoch, put back what training had, so that the score changes nothing.
            kept = [v.numpy() for v in self.model.non_trainable_variables] if inside else []
            ba, counted = score(self.model)
            if inside:
                for variable, value in zip(self.model.non_trainable_variables, kept, strict=True):
                    variable.assign(value)
            loss = (logs or {}).get("loss")
            points.append(
                {
                    "epoch": round(epoch, 3),
                    "seconds": seconds + counted,
                    "balanced_accuracy": ba,
                    "loss": None if loss is None else float(loss),
                    "scoring_seconds": time.perf_counter() - stopped - counted,
                    # the part of "seconds" spent re-estimating batch norm for this score
                    "counted_seconds": counted,
                    "final": False,
                }
            )
            print(
                f"    {label} epoch {epoch:.3g}: {seconds + counted:.0f} s, bal. acc. {ba:.3f}",
                flush=True,
            )
            clock.paused += time.perf_counter() - stopped

    class InsideEpochScorer(EpochScorer):
        # Only this one has a batch hook: any callback with one makes Keras call every
        # callback synchronously after every batch, so scoring once an epoch leaves
        # the training loop as it was.
        def on_train_begin(self, logs=None):
            steps = self.params.get("steps")
            if not steps:
                raise RuntimeError(f"{label}: scoring inside an epoch needs its number of steps")
            self.inside = {round(steps * j / per_epoch) for j in range(1, per_epoch)} - {0, steps}
            self.steps, self.epoch = steps, 0

        def on_epoch_begin(self, epoch, logs=None):
            self.epoch = epoch

        def on_train_batch_end(self, batch, logs=None):
            if self.epoch == 0 and batch == 0:
                # the clock at the end of the first batch: loading, fit's start and tracing
                timings["first_batch_seconds"] = clock.elapsed()
            if batch + 1 in self.inside:
                self.record(self.epoch + (batch + 1) / self.steps, logs, inside=True)

    return InsideEpochScorer() if per_epoch > 1 else EpochScorer()


# --------------------------------------------------------------------------- runs


def run_tutorial(data: dict, epochs: int, per_epoch: int, seed: int) -> dict:
    import keras

    keras.utils.set_random_seed(seed)
    val48, val_y = data["val48"], data["val_y"]

    def score(model):
        proba = np.concatenate(
            [
                model.predict(val48[i : i + 4096].astype("float32") / 255.0, verbose=0)
                for i in range(0, len(val48), 4096)
            ]
        )
        return balanced_accuracy(val_y, proba), 0.0

    points: list = []
    # The tutorial's Adagrad(lr=1e-2, decay=1e-2 / epochs), as Keras 2 applied it.
    rate = keras.optimizers.schedules.InverseTimeDecay(
        1e-2, decay_steps=1, decay_rate=1e-2 / epochs
    )
    clock = Clock()
    with extra_fit_callbacks(epoch_scorer(clock, score, points, TUTORIAL, per_epoch)):
        tutorial_pipeline(
            data["folder"], len(data["train_y"]), data["probe_x"], data["probe_y"],
            data["train_y"], epochs, 32, rate,
        )  # fmt: skip
    return {"points": points}


def run_ours(data: dict, params: dict, epochs: int, per_epoch: int, seed: int) -> dict:
    import keras

    from idcclf import IDCClassifier, _ops, _training
    from idcclf.callbacks import averaged_weights

    keras.utils.set_random_seed(seed)
    clf = IDCClassifier(**{**BASE_PARAMS, "random_state": seed, **params, "epochs": epochs})
    points: list = []
    clock = Clock()
    X, y, groups, _ = load(data["train"], cache=False, paths=False)
    if data["train_fraction"] < 1:
        # every PNG is still decoded (and its time counted): a share drawn after loading
        from sklearn.model_selection import train_test_split

        keep, _ = train_test_split(
            np.arange(len(y)), train_size=data["train_fraction"], stratify=y, random_state=seed
        )
        keep = np.sort(keep)
        X, y, groups = X[keep], y[keep], groups[keep]
    load_seconds = clock.elapsed()
    pick = np.random.default_rng(seed).choice(
        len(X), size=min(len(X), _training.RECALIBRATION_SAMPLES), replace=False
    )
    subset = X[np.sort(pick)]

    def score(model):
        counted = 0.0
        # With weight_averaging, fit returns the averaged weights: score those.
        with averaged_weights(model):
            if clf.recalibrate_batch_norm and clf.batch_norm:
                # What fit does after its last epoch, so the point is the model fit returns.
                start = time.perf_counter()
                _ops.recalibrate_batch_norm(model, subset)
                counted = time.perf_counter() - start
            ba = balanced_accuracy(data["val_y"], clf.predict_proba(data["val_x"]))
        return ba, counted

    timings: dict = {}
    with extra_fit_callbacks(epoch_scorer(clock, score, points, OURS, per_epoch, timings)):
        clf.fit(X, y, groups=groups)
    # The model fit returns, at the time fit returned: what happens after the last
    # epoch (restoring the best weights, re-estimating the batch-norm statistics,
    # Keras' own teardown) is paid once, and is in this point only.
    seconds = clock.elapsed()
    start = time.perf_counter()
    ba = balanced_accuracy(data["val_y"], clf.predict_proba(data["val_x"]))
    points.append(
        {
            "epoch": len(clf.history_["loss"]),
            "seconds": seconds,
            "balanced_accuracy": ba,
            "loss": None,
            "scoring_seconds": time.perf_counter() - start,
            "final": True,
            # the epoch whose weights early stopping restored; None: the last epoch's
            "kept_epoch": clf.best_epoch_,
        }
    )
    print(f"    {OURS} fitted model: {seconds:.0f} s, bal. acc. {ba:.3f}", flush=True)
    return {
        "points": points,
        "load_seconds": load_seconds,
        # None when scored once an epoch (no batch hook, see epoch_scorer)
        "first_batch_seconds": timings.get("first_batch_seconds"),
        "n_train_patches": len(y),
        "params": clf.get_params(),
    }


# --------------------------------------------------------------------------- report


def first_time(points: list, target: float) -> float | None:
    return next((p["seconds"] for p in points if p["balanced_accuracy"] >= target), None)


def summarize(runs: list, targets: list[float]) -> dict:
    summary = {}
    for name in dict.fromkeys(run["pipeline"] for run in runs):
        mine = [run for run in runs if run["pipeline"] == name]
        row = {}
        for target in targets:
            times = [first_time(run["points"], target) for run in mine]
            reached = [t for t in times if t is not None]
            row[f"{target:.2f}"] = {
                "seconds": times,
                "reached": len(reached),
                "median": float(np.median(reached)) if reached else None,
                "min": min(reached, default=None),
                "max": max(reached, default=None),
            }
        bests = [max(run["points"], key=lambda p: p["balanced_accuracy"]) for run in mine]
        row["best"] = {
            "balanced_accuracy": [p["balanced_accuracy"] for p in bests],
            "seconds": [p["seconds"] for p in bests],
            "epoch": [p["epoch"] for p in bests],
        }
        summary[name] = row
    return summary


def print_start(runs: list) -> None:
    """Where the time to ours' first score went: loading, fit's start, training, scoring."""
    for run in runs:
        if run["pipeline"] != OURS or run.get("first_batch_seconds") is None:
            continue
        first = run["points"][0]
        counted = first.get("counted_seconds", 0.0)
        print(
            f"{OURS}, seed {run['seed']}: first score at {first['seconds']:.1f} s (epoch "
            f"{first['epoch']:.3g}): decoding {run['load_seconds']:.1f} s, then fit to the end "
            f"of its first batch {run['first_batch_seconds'] - run['load_seconds']:.1f} s, "
            f"training on {first['seconds'] - counted - run['first_batch_seconds']:.1f} s, "
            f"re-estimating batch norm {counted:.1f} s"
        )


def print_summary(summary: dict, targets: list[float], repeats: int, epochs: int) -> None:
    print(
        "\nwall time (s, training only) to first reach each validation balanced accuracy "
        f"within {epochs} epochs: median [min-max] over the runs that reached it, of {repeats}"
    )
    header = (
        f"{'pipeline':<15}"
        + "".join(f"{t:>22.2f}" for t in targets)
        + f"{'best (mean +/- std)':>26}"
    )
    print(header)
    for name, row in summary.items():
        cells = []
        for target in targets:
            cell = row[f"{target:.2f}"]
            if cell["reached"]:
                spread = f"[{cell['min']:.0f}-{cell['max']:.0f}]"
                cells.append(f"{cell['median']:.0f} {spread} {cell['reached']}/{repeats}")
            else:
                cells.append(f"not reached 0/{repeats}")
        best = row["best"]["balanced_accuracy"]
        when = np.median(row["best"]["seconds"])
        text = f"{np.mean(best):.3f} +/- {np.std(best):.3f} ({when:.0f} s)"
        print(f"{name:<15}" + "".join(f"{c:>22}" for c in cells) + f"{text:>26}")


def pair_ratio(
    theirs: float | None, mine: float | None, tutorial_end: float, ours_end: float
) -> tuple[str, float | None]:
    """The tutorial's time to a target (``theirs``) over ours: ``("=", r)``, a bound
    ``(">", r)`` or ``("<", r)`` where one pipeline did not get there within its budget
    (which ended at ``tutorial_end`` or ``ours_end``), or ``("", None)`` where neither did."""
    if theirs is not None and mine is not None:
        return "=", theirs / mine
    if mine is not None:
        return ">", tutorial_end / mine
    if theirs is not None:
        return "<", theirs / ours_end
    return "", None


def at_epoch_ends(run: dict) -> dict:
    """``run`` with only the points scored at the end of an epoch, and fit's last."""
    points = [p for p in run["points"] if p["final"] or float(p["epoch"]).is_integer()]
    return {**run, "points": points}


def print_pairs(
    paths: list[Path], targets: list[float], speedup: float, whole_epochs: bool = False
) -> int:
    """The pairs of earlier runs, their ratios, and how many reached ``speedup``."""
    pairs = []
    for path in paths:
        runs = json.loads(path.read_text())["runs"]
        if whole_epochs:
            runs = [at_epoch_ends(run) for run in runs]
        for repeat in dict.fromkeys(run["repeat"] for run in runs):
            by_pipeline = {run["pipeline"]: run for run in runs if run["repeat"] == repeat}
            if set(by_pipeline) != {TUTORIAL, OURS}:
                print(f"{path}: repeat {repeat} has no pair ({', '.join(by_pipeline)})")
                continue
            pairs.append((path.name, by_pipeline[TUTORIAL], by_pipeline[OURS]))
    if not pairs:
        print("no pairs of the tutorial and IDCClassifier in these files", file=sys.stderr)
        return 2
    print("tutorial's time / ours to each target; '>' and '<': one did not reach it")
    print(f"{'file':<40}{'seed':>5}" + "".join(f"{t:>24.2f}" for t in targets))
    met = dict.fromkeys(targets, 0)
    # per target: each pair's (time or budget end, reached) per pipeline, and its ratio
    seen = {target: {"tutorial": [], "ours": [], "ratios": []} for target in targets}
    for name, tutorial, ours in pairs:
        cells = []
        ends = tutorial["points"][-1]["seconds"], ours["points"][-1]["seconds"]
        for target in targets:
            theirs, mine = (first_time(run["points"], target) for run in (tutorial, ours))
            relation, ratio = pair_ratio(theirs, mine, *ends)
            for key, reached_at, end in (("tutorial", theirs, ends[0]), ("ours", mine, ends[1])):
                seen[target][key].append((end, False) if reached_at is None else (reached_at, True))
            seen[target]["ratios"].append((relation, ratio))
            times = "/".join("-" if t is None else f"{t:.0f}" for t in (theirs, mine))
            if ratio is None:
                cells.append(f"{times} s, n/a")
                continue
            met[target] += relation in ("=", ">") and ratio >= speedup
            shown = f"{ratio:.1f}x" if relation == "=" else f"{relation}{ratio:.1f}x"
            cells.append(f"{times} s, {shown}")
        print(f"{name:<40}{tutorial['seed']:>5}" + "".join(f"{c:>24}" for c in cells))
    print(
        f"pairs with ours at most 1/{speedup:g} of the tutorial's time: "
        + ", ".join(f"{t:.2f}: {met[t]} of {len(pairs)}" for t in targets)
    )
    print(f"over the {len(pairs)} pairs ('>': a lower bound, where runs ended short of it):")
    for target in targets:
        print(f"  {target:.2f}: " + pair_medians(seen[target]))
    return 0


def median_of_bounds(values: list[tuple[float, bool]]) -> tuple[float, bool]:
    """The median of ``(value, exact)`` items, where ``exact`` False marks a lower bound.

    Returns the median of the values and whether it is exact: it is unless a bound lies
    at or below the middle (its true value might sort elsewhere), and then the true
    median can only be higher.
    """
    ordered = sorted(values)
    n = len(ordered)
    middle = (ordered[(n - 1) // 2][0] + ordered[n // 2][0]) / 2
    return middle, all(exact for _, exact in ordered[: n // 2 + 1])


def pair_medians(seen: dict) -> str:
    """Each pipeline's median time to a target over the pairs, and the median pair ratio."""
    parts = []
    for key, label in (("tutorial", "tutorial"), ("ours", OURS)):
        value, exact = median_of_bounds(seen[key])
        parts.append(f"{label} {'' if exact else '>'}{value:.1f} s")
    ratios = seen["ratios"]
    if any(relation in ("<", "") for relation, _ in ratios):
        # an upper bound or no ratio at all: the middle pair cannot be placed
        parts.append("median ratio n/a (ours did not reach it in every pair)")
    else:
        bounds = [(ratio, relation == "=") for relation, ratio in ratios]
        value, exact = median_of_bounds(bounds)
        # the lowest ratio is exact unless only a bound lies at the bottom (ties: exact)
        low, low_exact = min(bounds, key=lambda bound: (bound[0], not bound[1]))
        parts.append(
            f"median ratio {'' if exact else '>'}{value:.1f}x "
            f"(lowest {'' if low_exact else '>'}{low:.1f}x)"
        )
    return "; ".join(parts)


def plot(runs: list, targets: list[float], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from idcclf._io import atomic_path

    fig, ax = plt.subplots(figsize=(8, 5))
    colors = {TUTORIAL: "C0", OURS: "C1"}
    labelled = set()
    for run in runs:
        name = run["pipeline"]
        xs = [p["seconds"] / 60 for p in run["points"]]
        ys = [p["balanced_accuracy"] for p in run["points"]]
        label = None if name in labelled else name
        labelled.add(name)
        ax.plot(xs, ys, marker="o", markersize=3, color=colors[name], alpha=0.8, label=label)
    for target in targets:
        ax.axhline(target, linestyle=":", color="grey", linewidth=0.8)
    ax.set_xlabel("wall time, training only (minutes)")
    ax.set_ylabel("validation balanced accuracy")
    ax.set_title(title, fontsize=9)
    ax.legend(loc="lower right")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)


# --------------------------------------------------------------------------- main


def prepare(args, tmp: Path) -> dict:
    """Patients, validation arrays (both views) and the tutorial's folder of links."""
    train, val = split_patients(args.data, args.train_patients, args.val_patients, args.split_seed)
    for name, chosen in (("training", train), ("validation", val)):
        listed = " ".join(p for ps in chosen.values() for p in ps)
        print(f"{name} patients ({sum(map(len, chosen.values()))}): {listed}", flush=True)
    val_x, val_y, _, val_files = load(val)
    _, train_y, _, train_files = load(train)
    rng = np.random.default_rng(0)
    probe = np.concatenate(
        [
            rng.choice(np.flatnonzero(val_y == c), size=min(16, (val_y == c).sum()), replace=False)
            for c in (0, 1)
        ]
    )
    data = {
        "train": train,
        "val": val,
        "val_x": val_x,
        "val_y": val_y,
        "val48": load_tutorial_view(val_files),
        "train_y": train_y,
        # The tutorial pipeline scores its model on these after its last epoch; the
        # per-epoch scores use the whole validation set.
        "probe_x": val_x[probe],
        "probe_y": val_y[probe],
        "train_fraction": args.train_fraction,
        "folder": None if args.skip_tutorial else link_tree(tmp / "training", train_files, train_y),
    }
    print(
        f"{len(train_y)} training patches ({train_y.mean():.1%} IDC), {len(val_y)} validation "
        f"patches ({val_y.mean():.1%} IDC); {args.epochs} epochs, {args.repeats} repeats, "
        f"{os.cpu_count()} CPUs; IDCClassifier { ({**BASE_PARAMS, **args.params}) }",
        flush=True,
    )
    return data


def main() -> int:
    args = parse_args()
    if args.pairs:
        return print_pairs(args.pairs, args.targets, args.speedup, args.whole_epochs)
    pipelines = (
        {} if args.skip_tutorial else {TUTORIAL: (run_tutorial, args.epochs, args.scores_per_epoch)}
    )
    pipelines[OURS] = (run_ours, args.params, args.epochs, args.scores_per_epoch)
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        data = prepare(args, Path(tmp))
        for repeat in range(args.repeats):
            seed = args.seed + repeat
            for name, (runner, *settings) in pipelines.items():
                print(f"  repeat {repeat + 1}, {name}, seed {seed}", flush=True)
                start = time.perf_counter()
                points = in_fresh_process(runner, data, *settings, seed)
                run = {"pipeline": name, "repeat": repeat + 1, "seed": seed, **points}
                # scoring and the new process's start-up included
                run["run_seconds"] = time.perf_counter() - start
                runs.append(run)
    summary = summarize(runs, args.targets)
    print_summary(summary, args.targets, args.repeats, args.epochs)
    print_start(runs)

    from idcclf._io import atomic_write_text

    config = {k: v for k, v in vars(args).items() if k not in ("set", "out", "plot")}
    config["data"] = [str(p) for p in args.data]
    config.update(
        train_patients_list={str(r): ps for r, ps in data["train"].items()},
        val_patients_list={str(r): ps for r, ps in data["val"].items()},
        n_train=int(len(data["train_y"])),
        n_val=int(len(data["val_y"])),
        cpus=os.cpu_count(),
    )
    report = {"config": config, "runs": runs, "summary": summary}
    atomic_write_text(args.out, json.dumps(report, indent=2, default=str))
    title = (
        f"{config['n_train']} training patches of {args.train_patients} patients, "
        f"{config['n_val']} validation patches; IDCClassifier { ({**BASE_PARAMS, **args.params}) }"
    )
    plot(runs, args.targets, args.plot, title)
    print(f"wrote {args.out} and {args.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
