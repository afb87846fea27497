"""``idcclf train``: train CancerNet with a split by patient and report test metrics."""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from .._format import plural
from ._common import (
    add_data_arguments,
    library_errors,
    predict_idc,
    quiet_tensorflow_start,
)
from ._output import RunOutput, add_overwrite
from ._patients import ModelPatients, checked_report, print_intervals, with_intervals
from ._train_parts import (
    DEFAULT_TEST_SIZE,
    DEFAULT_VAL_SIZE,
    Plan,
    check_split_options,
    plan_parts,
    print_plan,
)
from ._types import fraction, positive_float, positive_int

DEFAULT_EPOCHS = 10
OUTPUTS = ("model.joblib", "training_curves.png", "metrics.json")
#: Exit status after Ctrl-C, as a shell reports a process ended by SIGINT.
INTERRUPTED = 130


def add_parser(subparsers) -> None:
    """Register ``idcclf train`` and its options."""
    parser = subparsers.add_parser(
        "train",
        help="train CancerNet and report metrics on held-out patients",
        description="Train CancerNet on an IDC patch tree (the bundled real sample when "
        "--data is not given). Patients are split into train / validation / test parts, so "
        "no patient's patches are on two sides; the output of 'idcclf split' is used as "
        "it is split. Prints accuracy, balanced accuracy, sensitivity, specificity, F1, "
        "ROC AUC and the confusion matrix on the test patients, and saves model.joblib, "
        "training_curves.png and metrics.json in --out. Ctrl-C stops training, keeps the "
        "best epoch's weights, scores and saves them (exit status 130).",
    )
    add_data_arguments(parser)
    parser.add_argument(
        "--out", type=Path, default=Path("idcclf-run"), help="output folder (default: ./idcclf-run)"
    )
    add_overwrite(parser)
    parser.add_argument(
        "--epochs",
        type=positive_int,
        default=DEFAULT_EPOCHS,
        help=f"training epochs (default: {DEFAULT_EPOCHS})",
    )
    parser.add_argument(
        "--batch-size", type=positive_int, default=32, help="mini-batch size (default: 32)"
    )
    parser.add_argument(
        "--learning-rate", type=positive_float, default=1e-2, help="learning rate (default: 0.01)"
    )
    parser.add_argument(
        "--lr-schedule",
        choices=["constant", "cosine", "one_cycle"],
        default="constant",
        help="learning rate over the epochs: constant, cosine decay per epoch, or one_cycle "
        "(warm-up then cosine decay, set per batch) (default: constant)",
    )
    parser.add_argument(
        "--optimizer",
        choices=["adagrad", "adam", "sgd", "rmsprop"],
        default="adagrad",
        help="optimizer (default: adagrad, as the tutorial)",
    )
    parser.add_argument(
        "--class-weight",
        choices=["balanced", "none"],
        default="balanced",
        help="weigh classes inversely to their frequency (default: balanced)",
    )
    parser.add_argument(
        "--no-augment", action="store_true", help="train without flips, rotations, zooms and shifts"
    )
    parser.add_argument(
        "--stain-jitter",
        type=fraction,
        default=0.0,
        help="strength of random H&E stain jitter in training, in [0, 1); 0.05 is light "
        "(default: 0, off)",
    )
    parser.add_argument(
        "--block-dropout",
        type=fraction,
        default=0.1,
        help="share of each convolution block's outputs dropped in training, in [0, 1) "
        "(default: 0.1, the estimator's; the tutorial's 0.25 scored lower in "
        "patient-grouped cross-validation, docs/evaluation.md)",
    )
    parser.add_argument(
        "--normalize-stains",
        action="store_true",
        help="redraw each patient's patches with reference H&E stains (Macenko's method) "
        "before the network sees them; the saved model does the same whenever it predicts, "
        "per patient",
    )
    parser.add_argument(
        "--early-stopping",
        action="store_true",
        help="stop when validation loss stalls and keep the best weights",
    )
    parser.add_argument(
        "--val-size",
        type=fraction,
        help=f"share of patches (by patient) for validation (default: {DEFAULT_VAL_SIZE})",
    )
    parser.add_argument(
        "--test-size",
        type=fraction,
        help=f"share of patches (by patient) for the test (default: {DEFAULT_TEST_SIZE})",
    )
    parser.add_argument(
        "--random-state", type=int, default=0, help="seed of the split and of training (default: 0)"
    )
    parser.add_argument("--quiet", action="store_true", help="no per-epoch progress")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Decide the parts, train, score the test patients and save the run."""
    check_split_options(args)
    output = RunOutput(args.out, OUTPUTS, overwrite=args.overwrite)
    started = time.perf_counter()
    plan = plan_parts(args)
    print_plan(plan, args)
    print(
        f"training CancerNet for {plural(args.epochs, 'epoch')} on "
        f"{plural(len(plan.training.y), 'patch', 'patches')}",
        flush=True,
    )
    clf = make_classifier(args, plan.validation_fraction)
    interrupted = fit(clf, plan, args)
    patients = fitted_patients(clf, plan)
    epochs_done = len(clf.history_.get("loss", []))
    best_epoch = getattr(clf, "best_epoch_", None)
    if args.early_stopping and best_epoch is not None and not interrupted:
        print(
            f"early stopping: the model keeps the weights of epoch {best_epoch} of "
            f"{epochs_done} run (lowest validation loss)",
            flush=True,
        )
    report = score(clf, plan, args, patients)
    facts = {
        "interrupted": interrupted,
        "epochs_completed": epochs_done,
        "best_epoch": best_epoch,
        "training_patients": patients.training,
        "validation_patients": validation_patients(plan, patients),
        "test_patients": plan.test.patients,
    }
    save(output, clf, {**report, **facts}, plan.source)
    if interrupted:
        print(f"interrupted: true, epochs completed: {epochs_done} of {args.epochs}")
    print(f"done in {time.perf_counter() - started:.0f} s")
    return INTERRUPTED if interrupted else 0


def make_classifier(args: argparse.Namespace, validation_fraction: float):
    quiet_tensorflow_start()
    from ..estimator import IDCClassifier

    return IDCClassifier(
        epochs=args.epochs,
        batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        lr_schedule=args.lr_schedule,
        optimizer=args.optimizer,
        class_weight=None if args.class_weight == "none" else args.class_weight,
        augment=not args.no_augment,
        stain_jitter=args.stain_jitter,
        block_dropout=args.block_dropout,
        normalize_stains=args.normalize_stains,
        validation_fraction=validation_fraction,
        early_stopping=args.early_stopping,
        random_state=args.random_state,
        verbose=0 if args.quiet else (1 if sys.stdout.isatty() else 2),
    )


def fit(clf, plan: Plan, args: argparse.Namespace) -> bool:
    """Train; True when Ctrl-C ended training after at least one epoch."""
    with _noting_ctrl_c() as ctrl_c, library_errors(args):
        clf.fit(plan.fit.X, plan.fit.y, groups=plan.fit.groups)
    if ctrl_c:
        best = getattr(clf, "best_epoch_", None)
        kept = f"the weights of epoch {best}" if best else "its last weights"
        print(f"training interrupted: the model keeps {kept}; scoring and saving it", flush=True)
    return bool(ctrl_c)


@contextlib.contextmanager
def _noting_ctrl_c() -> Iterator[list]:
    """Yield a list that gets an item when Ctrl-C interrupts the block.

    Ctrl-C still raises KeyboardInterrupt; ``IDCClassifier.fit`` catches it after an
    epoch and returns its best weights, so this is how the command learns of it.
    """
    pressed: list = []
    if threading.current_thread() is not threading.main_thread():
        yield pressed  # signal handlers can only be set in the main thread
        return

    def handler(signum, frame):
        pressed.append(signum)
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield pressed
    finally:
        signal.signal(signal.SIGINT, previous)


def fitted_patients(clf, plan: Plan) -> ModelPatients:
    """The patients the model was fitted on (``training_groups_``, ``validation_groups_``).

    Says so if the estimator held out other validation patients than announced.
    """
    held = clf.validation_groups_
    validation = [] if held is None else sorted(map(str, held))
    if plan.validation is not None and not plan.given and validation != plan.validation.patients:
        print(f"note: validation patients were {' '.join(validation) or 'none'} after all")
    return ModelPatients("the trained model", sorted(map(str, clf.training_groups_)), validation)


def validation_patients(plan: Plan, patients: ModelPatients) -> list[str]:
    """The given validation part's patients, or those the estimator held out."""
    if plan.given:
        return [] if plan.validation is None else plan.validation.patients
    return patients.validation


def score(clf, plan: Plan, args: argparse.Namespace, patients: ModelPatients) -> dict:
    """Print and return the test report (and the given validation part's, if any).

    Each part is checked against the patients the model was fitted on.
    """
    from ..metrics import format_report

    parts = [("test", plan.test)]
    if plan.given and plan.validation is not None:
        parts.insert(0, ("validation", plan.validation))
    reports = {}
    for name, part in parts:
        print(
            f"scoring the {name} patients ({plural(len(part.y), 'patch', 'patches')})...",
            flush=True,
        )
        proba = predict_idc(
            clf,
            part.X,
            "the trained model",
            f"training diverged; lower --learning-rate (now {args.learning_rate:g})",
            groups=part.groups,
        )
        reports[name] = checked_report(part.y, proba, part.groups, patients, threshold=0.5)
        if name == "test":
            with_intervals(reports[name], part.y, proba, part.groups)
    for name, report in reports.items():
        print(f"\n{name} patients ({plural(report['n_samples'], 'patch', 'patches')}):")
        print(format_report(report))
    print_intervals(reports["test"], "test")
    test = reports.pop("test")
    return {**test, **({"validation": reports["validation"]} if reports else {})}


def save(output: RunOutput, clf, metrics: dict, source: str) -> None:
    from .._io import atomic_dump, atomic_write_text
    from ..metrics import report_to_json
    from ..plots import plot_training_curves

    print(f"saving {', '.join(OUTPUTS)} in {output.out}...", flush=True)
    with output:
        atomic_dump(clf, output / "model.joblib")
        plot_training_curves(
            clf.history_, output / "training_curves.png", title=f"CancerNet on {source}"
        )
        atomic_write_text(output / "metrics.json", report_to_json(metrics))
    print(f"saved {', '.join(map(str, output.written()))}")
