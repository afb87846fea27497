"""``idcclf split``: copy an IDC tree into training / validation / testing folders by patient."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from .._format import plural
from ._common import CLIError, library_errors
from ._types import fraction


def add_parser(subparsers) -> None:
    """Register ``idcclf split`` and its options."""
    parser = subparsers.add_parser(
        "split",
        help="copy an IDC tree into training/validation/testing folders, by patient",
        description="Copy (or hard-link) the patches of an IDC tree "
        "(SRC/<patient>/<0|1>/*.png) into DST/training, DST/validation and DST/testing, "
        "each with 0/ (no IDC) and 1/ (IDC) folders. Every patient's patches go to one "
        "part only. Files are listed, not decoded. Prints the patients and class counts "
        "of each part.",
    )
    parser.add_argument("src", metavar="SRC", type=Path, help="IDC tree to split")
    parser.add_argument("dst", metavar="DST", type=Path, help="output folder (created)")
    parser.add_argument(
        "--train",
        metavar="SHARE",
        type=fraction,
        default=0.8,
        help="target share of patches for training (default: 0.8)",
    )
    parser.add_argument(
        "--val",
        metavar="SHARE",
        type=fraction,
        default=0.1,
        help="target share of patches for validation; the rest is for testing (default: 0.1)",
    )
    parser.add_argument(
        "--link",
        action="store_true",
        help="hard-link the files instead of copying them (same file system only)",
    )
    parser.add_argument(
        "--force",
        action="store_true",
        help="write into a non-empty DST, replacing its training/validation/testing folders",
    )
    parser.add_argument(
        "--random-state",
        metavar="N",
        type=int,
        default=0,
        help="seed of the patient assignment (default: 0)",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Copy or link SRC's patients into DST's parts and print each part."""
    if args.train <= 0:
        raise CLIError(f"--train {args.train} leaves nothing to train on")
    if args.train + args.val >= 1:
        raise CLIError(f"--train {args.train} and --val {args.val} leave nothing for testing")

    from ..splits import SPLIT_FOLDERS, SPLIT_NAMES, materialize_split

    started = time.perf_counter()
    with library_errors(args):
        result = materialize_split(
            args.src,
            args.dst,
            train_size=args.train,
            val_size=args.val,
            link=args.link,
            force=args.force,
            random_state=args.random_state,
        )
    for path in result.replaced:
        print(f"replaced {path}")
    verb = "linked" if result.linked else "copied"
    print(f"{verb} {plural(result.n_files, 'patch', 'patches')} from {args.src} into {args.dst}:")
    for name in SPLIT_NAMES:
        part = result.parts[name]
        counts = part.counts
        total = counts[0] + counts[1]
        print(
            f"  {SPLIT_FOLDERS[name]:<11} {plural(total, 'patch', 'patches'):>15} "
            f"(0: {counts[0]}, 1: {counts[1]}), {plural(len(part.patients), 'patient')}: "
            f"{' '.join(part.patients) or '-'}"
        )
    print(f"done in {time.perf_counter() - started:.1f} s")
    return 0
