"""``idcclf study``: run a named model-selection study with folds by patient."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from .._format import plural
from ._common import (
    CLIError,
    add_data_arguments,
    library_errors,
    load_data,
    quiet_tensorflow_start,
    require_both_classes,
)
from ._output import RunOutput, add_overwrite
from ._types import positive_int

DEFAULT_EPOCHS = 5


def add_parser(subparsers) -> None:
    """Register ``idcclf study`` and its options (one NAME per study)."""
    from ..studies import STUDIES

    listing = "; ".join(f"{name}: {study.question}" for name, study in STUDIES.items())
    parser = subparsers.add_parser(
        "study",
        help="compare CancerNet settings with a grid search over folds by patient",
        description="Run a named study, a grid search of CancerNet settings with "
        "cross-validation by patient, scored by balanced accuracy (which picks the best), "
        "sensitivity, specificity, F1 and ROC AUC. Writes NAME.csv, NAME.md (table of "
        "mean ± std over folds, fit times, summary) and NAME.png in --out. Studies: "
        f"{listing}",
    )
    parser.add_argument("name", metavar="NAME", choices=sorted(STUDIES), help="study to run")
    add_data_arguments(parser)
    parser.add_argument(
        "--cv", metavar="K", type=positive_int, default=3, help="folds by patient (default: 3)"
    )
    parser.add_argument(
        "--epochs",
        metavar="N",
        type=positive_int,
        default=DEFAULT_EPOCHS,
        help=f"training epochs of every fit (default: {DEFAULT_EPOCHS})",
    )
    parser.add_argument(
        "--n-jobs",
        metavar="N",
        type=int,
        default=1,
        help="fits run in parallel, each with cores/n-jobs TensorFlow threads unless "
        "IDCCLF_TF_THREADS is set; -1 = all cores (default: 1)",
    )
    parser.add_argument(
        "--out",
        metavar="DIR",
        type=Path,
        default=Path("idcclf-study"),
        help="output folder (default: ./idcclf-study)",
    )
    add_overwrite(parser)
    parser.add_argument(
        "--max-per-class",
        metavar="N",
        type=positive_int,
        help="load at most N patches per class, picked at random (this balances the classes)",
    )
    parser.add_argument(
        "--max-patches",
        metavar="N",
        type=positive_int,
        help="use at most N patches, picked at random with the class ratio kept",
    )
    parser.add_argument(
        "--no-refit",
        action="store_true",
        help="skip refitting the best setting on all the data at the end",
    )
    parser.add_argument(
        "--save-best",
        action="store_true",
        help="save the best setting refitted on all the data as NAME_best.joblib in --out, "
        "a model file for 'idcclf evaluate', 'predict' and 'heatmap' (needs the refit)",
    )
    parser.add_argument(
        "--random-state",
        metavar="N",
        type=int,
        default=0,
        help="seed of folds, subsets and training (default: 0)",
    )
    parser.add_argument("--quiet", action="store_true", help="no per-fit progress")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Load the data, run the study and save its table, summary and plot."""
    if args.n_jobs == 0:
        raise CLIError("--n-jobs must not be 0 (1 = sequential, -1 = all cores)")
    if args.cv < 2:
        raise CLIError(f"--cv {args.cv}: cross-validation needs at least 2 folds")
    if args.save_best and args.no_refit:
        raise CLIError("--save-best saves the refitted best setting: drop --no-refit")
    names = [f"{args.name}.{suffix}" for suffix in ("csv", "md", "png")]
    if args.save_best:
        names.append(best_model_name(args))
    output = RunOutput(args.out, names, overwrite=args.overwrite)
    started = time.perf_counter()
    data, source = load_data(
        args,
        announce=not args.quiet,
        max_per_class=args.max_per_class,
        random_state=args.random_state,
    )
    X, y, groups = data.data, data.target, data.groups
    if args.max_patches is not None and args.max_patches < len(y):
        from ..studies import stratified_subset

        keep = stratified_subset(y, args.max_patches, random_state=args.random_state)
        X, y, groups = X[keep], y[keep], groups[keep]
    require_both_classes(y, f"--data {source}")

    quiet_tensorflow_start()
    from ..studies import run_study

    with library_errors(args):
        result = run_study(
            args.name,
            X,
            y,
            groups,
            cv=args.cv,
            epochs=args.epochs,
            n_jobs=args.n_jobs,
            random_state=args.random_state,
            refit=not args.no_refit,
            verbose=0 if args.quiet else 1,
        )
    notes = (
        f"Data: {source}, {plural(len(y), 'patch', 'patches')} of "
        f"{plural(len(set(groups)), 'patient')} ({int(y.sum())} IDC).\n\n"
        f"Command: `{_command(args)}`\n"
    )
    with output:
        result.save(output.folder, notes=notes)
        if args.save_best:
            save_best(result, groups, output / best_model_name(args))
    print(result.to_markdown())
    print(result.summary())
    print(f"saved {', '.join(map(str, output.written()))}")
    elapsed = f"{time.perf_counter() - started:.0f} s"
    # Unless --quiet, the study itself has printed "done in" for the search.
    print(f"done in {elapsed}" if args.quiet else f"total {elapsed}, loading and saving included")
    return 0


def best_model_name(args: argparse.Namespace) -> str:
    return f"{args.name}_best.joblib"


def save_best(result, groups, path: Path) -> None:
    """Save the refitted best ``IDCClassifier`` with joblib, atomically, for ``evaluate``.

    Its training patients are all the patients of the study's data: the refit saw them
    all (for models whose ``fit`` does not record them, they are set here).
    """
    from .._io import atomic_dump

    model = result.best_classifier_
    if model is None:
        raise CLIError(
            "--save-best: the study has no refitted best setting to save (its refit did not run)"
        )
    if getattr(model, "training_groups_", None) is None:
        import numpy as np

        model.training_groups_ = np.unique(np.asarray(groups).astype(str))
    atomic_dump(model, path)


def _command(args: argparse.Namespace) -> str:
    """The command line that reproduces this run, every option spelled out."""
    parts = ["idcclf", "study", args.name]
    for root in args.data or []:
        parts += ["--data", str(root)]
    if args.skip_bad_files:
        parts.append("--skip-bad-files")
    parts += ["--cv", str(args.cv), "--epochs", str(args.epochs), "--n-jobs", str(args.n_jobs)]
    for option in ("max_per_class", "max_patches"):
        value = getattr(args, option)
        if value is not None:
            parts += [f"--{option.replace('_', '-')}", str(value)]
    if args.no_refit:
        parts.append("--no-refit")
    if args.save_best:
        parts.append("--save-best")
    parts += ["--random-state", str(args.random_state)]
    return " ".join(parts)
