"""``idcclf predict``: print the IDC probability of PNG patches."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .._format import plural
from ._common import (
    CLIError,
    add_skip_bad_files,
    add_test_time_augmentation,
    add_threshold,
    check_threshold,
    load_model_or_pretrained,
    predict_idc,
    read_png_files,
    split_model_argument,
    use_test_time_augmentation,
)
from ._types import existing_path


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "predict",
        help="print the IDC probability of each PNG patch",
        description="Print the IDC probability of each PNG file given, or of every PNG "
        "under each folder given (searched recursively, in sorted order), then a summary "
        "line (on stderr, so that stdout stays a table). Patches smaller than 50x50 are "
        "padded with white, as in training. Without MODEL, the pretrained CancerNet "
        "bundled with idcclf is used.",
        usage="idcclf predict [-h] [--threshold T] [--skip-bad-files] [--tta] "
        "[--scheduler ADDRESS] [MODEL] PATH [PATH ...]",
    )
    parser.add_argument(
        "items",
        type=existing_path,
        nargs="+",
        metavar="[MODEL] PATH",
        help="optional model file written by 'idcclf train' (joblib), then PNG files or "
        "folders of PNG files",
    )
    add_threshold(parser, "a patch is called IDC")
    add_skip_bad_files(parser)
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
            try:
                found = sorted(p for p in path.rglob("*.png") if p.is_file())
            except OSError as exc:
                raise CLIError(f"{path}: cannot list this folder ({exc.strerror or exc})") from None
            if not found:
                raise CLIError(f"{path}: no PNG files in this folder")
            files += found
        else:
            files.append(path)
    return files


def run(args: argparse.Namespace) -> int:
    check_threshold(args.threshold)
    model_path, paths = split_model_argument(args.items)
    if not paths:
        raise CLIError(f"{model_path}: no PNG files or folders given after MODEL")
    if args.scheduler is not None:
        return run_on_scheduler(args, model_path, paths)
    patches, files = read_png_files(args, collect_pngs(paths))
    model = use_test_time_augmentation(load_model_or_pretrained(model_path), args)
    proba = predict_idc(model, patches, model_path or "pretrained model")
    print("probability\tprediction\tfile")
    for path, p in zip(files, proba, strict=True):
        print(f"{p:.4f}\t{'IDC' if p >= args.threshold else 'no IDC'}\t{path}")
    n_idc = int((proba >= args.threshold).sum())
    print(
        f"{plural(len(files), 'patch', 'patches')}: {n_idc} predicted IDC "
        f"({n_idc / len(files):.1%}) at threshold {args.threshold:g}",
        file=sys.stderr,
    )
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
