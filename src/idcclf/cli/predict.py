"""``idcclf predict``: print the IDC probability of PNG patches."""

from __future__ import annotations

import argparse
from pathlib import Path

from ._common import CLIError, existing_file, existing_path


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "predict",
        help="print the IDC probability of each PNG patch",
        description="Print the IDC probability of each PNG file given, or of every PNG "
        "under each folder given (searched recursively, in sorted order). Patches smaller "
        "than 50x50 are padded with white, as in training.",
    )
    parser.add_argument(
        "model",
        type=existing_file,
        metavar="MODEL",
        help="model file written by 'idcclf train' (joblib)",
    )
    parser.add_argument(
        "paths",
        type=existing_path,
        nargs="+",
        metavar="PATH",
        help="PNG files or folders of PNG files",
    )
    parser.add_argument(
        "--threshold",
        type=float,
        default=0.5,
        help="probability at or above which a patch is called IDC (default: 0.5)",
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
    files = collect_pngs(args.paths)
    from ..datasets import load_patches
    from ._common import load_model

    model = load_model(args.model)
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
