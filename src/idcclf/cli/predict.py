"""``idcclf predict``: print the IDC probability of PNG patches."""

from __future__ import annotations

import argparse
from pathlib import Path

from ._common import (
    CLIError,
    add_test_time_augmentation,
    existing_path,
    load_model_or_pretrained,
    split_model_argument,
    use_test_time_augmentation,
)


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "predict",
        help="print the IDC probability of each PNG patch",
        description="Print the IDC probability of each PNG file given, or of every PNG "
        "under each folder given (searched recursively, in sorted order). Patches smaller "
        "than 50x50 are padded with white, as in training. Without MODEL, the pretrained "
        "CancerNet bundled with idcclf is used.",
        usage="idcclf predict [-h] [--threshold T] [--tta] [--scheduler ADDRESS] [MODEL] PATH "
        "[PATH ...]",
    )
    parser.add_argument(
        "items",
        type=existing_path,
        nargs="+",
        metavar="[MODEL] PATH",
        help="optional model file written by 'idcclf train' (joblib), then PNG files or "
        "folders of PNG files",
    )
    parser.add_argument(
        "--threshold",
        type=float,
        default=0.5,
        help="probability at or above which a patch is called IDC (default: 0.5)",
    )
    add_test_time_augmentation(parser)
    parser.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="run on the Dask scheduler at ADDRESS (e.g. tcp://host:8786), one task per "
        "patient: each PATH is then a patient folder (with 0/ and 1/ sub-folders) or a "
        "folder of them, and each patient's lines are printed as it finishes",
    )
    parser.set_defaults(run=run)


def collect_pngs(paths: list[Path]) -> list[Path]:
    """The PNG files named, and those under the folders named, in a stable order."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            found = sorted(p for p in path.rglob("*.png") if p.is_file())
            if not found:
                raise CLIError(f"{path}: no PNG files in this folder")
            files += found
        else:
            files.append(path)
    return files


def run(args: argparse.Namespace) -> int:
    if not 0.0 <= args.threshold <= 1.0:
        raise CLIError(f"--threshold {args.threshold} must be in [0, 1]")
    model_path, paths = split_model_argument(args.items)
    if not paths:
        raise CLIError(f"{model_path}: no PNG files or folders given after MODEL")
    if args.scheduler is not None:
        return run_on_scheduler(args, model_path, paths)
    files = collect_pngs(paths)
    from ..datasets import load_patches

    model = use_test_time_augmentation(load_model_or_pretrained(model_path), args)
    try:
        patches = load_patches(files)
    except ValueError as exc:
        raise CLIError(str(exc)) from None
    # The positive (IDC) class is the last of classes_ (1 for the IDC data's 0/1 labels).
    proba = model.predict_proba(patches)[:, -1]
    print("probability\tprediction\tfile")
    for path, p in zip(files, proba, strict=True):
        print(f"{p:.4f}\t{'IDC' if p >= args.threshold else 'no IDC'}\t{path}")
    return 0


def run_on_scheduler(args: argparse.Namespace, model_path: Path | None, paths: list[Path]) -> int:
    """``run`` for ``--scheduler``: patient folders scored by ``idcclf.predict_patients``."""
    try:
        from distributed import Client
    except ImportError:
        raise CLIError("--scheduler needs dask.distributed: pip install 'idcclf[dask]'") from None
    from ..distributed import predict_patients

    model = use_test_time_augmentation(load_model_or_pretrained(model_path), args)
    try:
        client = Client(args.scheduler)
    except (OSError, TimeoutError, ValueError) as exc:
        raise CLIError(f"cannot reach the scheduler at {args.scheduler}: {exc}") from None
    with client:
        try:
            results = predict_patients(model, paths, client=client)
            print("probability\tprediction\tfile")
            for result in results:
                parent = Path(result.folder).parent
                for name, p in zip(result.filenames, result.idc_proba, strict=True):
                    print(f"{p:.4f}\t{'IDC' if p >= args.threshold else 'no IDC'}\t{parent / name}")
        except (ValueError, OSError) as exc:
            raise CLIError(str(exc)) from None
    return 0
