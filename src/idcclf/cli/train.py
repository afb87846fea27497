"""``idcclf train``: train CancerNet with a split by patient and report test metrics."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from ._common import CLIError, existing_dir, fraction, output_dir, positive_float, positive_int

DEFAULT_EPOCHS = 10


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train CancerNet and report metrics on held-out patients",
        description="Train CancerNet on an IDC patch tree (the bundled real sample when "
        "--data is not given). Patients are split into train / validation / test parts, so "
        "no patient's patches are on two sides. Prints accuracy, balanced accuracy, "
        "sensitivity, specificity, F1, ROC AUC and the confusion matrix on the test "
        "patients, and saves model.joblib, training_curves.png and metrics.json in --out.",
    )
    parser.add_argument(
        "--data",
        type=existing_dir,
        help="root of <patient>/<0|1>/*.png (default: the bundled sample)",
    )
    parser.add_argument(
        "--out",
        type=output_dir,
        default=Path("idcclf-run"),
        help="output folder (default: ./idcclf-run)",
    )
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
        choices=["constant", "cosine"],
        default="constant",
        help="learning rate over the epochs: constant, or cosine decay (default: constant)",
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
        "--early-stopping",
        action="store_true",
        help="stop when validation loss stalls and keep the best weights",
    )
    parser.add_argument(
        "--val-size",
        type=fraction,
        default=0.1,
        help="share of patches (by patient) for validation (default: 0.1)",
    )
    parser.add_argument(
        "--test-size",
        type=fraction,
        default=0.1,
        help="share of patches (by patient) for the test (default: 0.1)",
    )
    parser.add_argument(
        "--random-state", type=int, default=0, help="seed of the split and of training (default: 0)"
    )
    parser.add_argument("--quiet", action="store_true", help="no per-epoch progress")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if args.val_size + args.test_size >= 1:
        raise CLIError(
            f"--val-size {args.val_size} and --test-size {args.test_size} leave nothing to train on"
        )
    if args.test_size == 0:
        raise CLIError("--test-size must be above 0: the metrics are measured on test patients")
    args.out.mkdir(parents=True, exist_ok=True)

    from ..datasets import load_idc, load_sample

    started = time.perf_counter()
    try:
        data = load_sample() if args.data is None else load_idc(args.data)
    except (ValueError, OSError, MemoryError) as exc:
        raise CLIError(str(exc)) from None
    source = "bundled sample" if args.data is None else str(args.data)
    print(
        f"data: {source}: {len(data.target)} patches, {len(set(data.groups))} patients, "
        f"{int(data.target.sum())} IDC"
    )

    from .._io import atomic_dump, atomic_write_text
    from ..estimator import IDCClassifier
    from ..metrics import evaluation_report, format_report, report_to_json
    from ..plots import plot_training_curves
    from ..splits import patient_split

    try:
        fit_part, _, test = patient_split(
            data.groups,
            data.target,
            train_size=1 - args.test_size,
            val_size=0.0,
            random_state=args.random_state,
        )
    except ValueError as exc:
        raise CLIError(str(exc)) from None
    for name, index in (("train+val", fit_part), ("test", test)):
        patients = sorted(set(data.groups[index]))
        print(
            f"{name:<10} {len(index):>6} patches, {int(data.target[index].sum()):>5} IDC, "
            f"patients {' '.join(patients)}"
        )

    clf = IDCClassifier(
        epochs=args.epochs,
        batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        lr_schedule=args.lr_schedule,
        optimizer=args.optimizer,
        class_weight=None if args.class_weight == "none" else args.class_weight,
        augment=not args.no_augment,
        validation_fraction=args.val_size / (1 - args.test_size),
        early_stopping=args.early_stopping,
        random_state=args.random_state,
        verbose=0 if args.quiet else (1 if sys.stdout.isatty() else 2),
    )
    try:
        clf.fit(data.data[fit_part], data.target[fit_part], groups=data.groups[fit_part])
    except FloatingPointError as exc:
        raise CLIError(str(exc)) from None
    if clf.validation_groups_ is not None:
        print(
            f"validation patients (held out while training): "
            f"{' '.join(map(str, clf.validation_groups_))}"
        )
    proba = clf.predict_proba(data.data[test])[:, 1]
    report = evaluation_report(data.target[test], proba)
    print(f"\ntest patients ({len(test)} patches):")
    print(format_report(report))

    model_path = atomic_dump(clf, args.out / "model.joblib")
    curves_path = plot_training_curves(
        clf.history_, args.out / "training_curves.png", title=f"CancerNet on {source}"
    )
    metrics_path = atomic_write_text(args.out / "metrics.json", report_to_json(report))
    print(f"saved {model_path}, {curves_path}, {metrics_path}")
    print(f"done in {time.perf_counter() - started:.0f} s")
    return 0
