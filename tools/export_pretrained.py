"""Train the shipped pretrained model on every patient and copy it into the package.

Usage::

    python benchmarks/cv_accuracy.py --folds 5 --epochs 3 --out cv_default.json
    python tools/export_pretrained.py --epochs 3 --cv cv_default.json \\
        [--data ROOT --data ROOT] [--set NAME=VALUE ...] [--folder DIR]

Trains ``IDCClassifier`` with the recipe of ``benchmarks/cv_accuracy.py --recipe
default`` (balanced class weights, ``--set`` on top) on all the patients of the given
roots (both ``../shared/data`` roots by default), then keeps the network weights only
(see ``idcclf.pretrained.save_pretrained``), together with this command, the data it
saw, the fit wall time and the patient-grouped cross-validation summary of the same
recipe read from ``--cv`` (every patient was used for training, so there is no
held-out test set of its own).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
from cv_accuracy import DEFAULT_ROOTS, RECIPES, load_roots, parse_sets  # noqa: E402

#: Size the shipped weights must stay under (the wheel carries them).
MAX_BYTES = 20 * 1024 * 1024


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, action="append", default=None)
    parser.add_argument("--epochs", type=int, required=True)
    parser.add_argument("--cv", type=Path, required=True, help="cv_accuracy.py JSON")
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE")
    parser.add_argument("--random-state", type=int, default=0)
    parser.add_argument("--folder", type=Path, default=None, help="default: the package's")
    args = parser.parse_args(argv)
    params = {**RECIPES["default"][0], **parse_sets(args.set, parser.error)}
    roots = args.data or list(DEFAULT_ROOTS)
    cv = json.loads(args.cv.read_text())
    # Through JSON, as the CV file stored them (tuples become lists).
    if cv.get("recipe") != "default" or cv.get("params") != json.loads(json.dumps(params)):
        parser.error(f"{args.cv} is of recipe {cv.get('recipe')} {cv.get('params')}, not {params}")
    if cv.get("epochs") != args.epochs:
        parser.error(f"{args.cv} trained {cv.get('epochs')} epochs, not {args.epochs}")

    from idcclf import IDCClassifier
    from idcclf.pretrained import PRETRAINED_DIR, WEIGHTS, save_pretrained

    X, y, groups = load_roots(roots)
    clf = IDCClassifier(epochs=args.epochs, random_state=args.random_state, **params)
    start = time.perf_counter()
    clf.fit(X, y, groups=groups)
    seconds = time.perf_counter() - start
    info = {
        "command": " ".join(["python", "tools/export_pretrained.py", *sys.argv[1:]]),
        "data": (
            f"{len(np.unique(groups))} patients of the public IDC set "
            f"(IDC_regular_ps50_idx5), {len(y):,} patches, {y.mean():.1%} IDC"
        ),
        "fit_seconds": round(seconds),
        "cross_validation": {
            "command": cv.get("command"),
            "n_folds": len(cv["folds"]),
            "summary": cv["summary"],
        },
    }
    folder = args.folder or PRETRAINED_DIR
    save_pretrained(clf, folder, info=info)
    size = (folder / WEIGHTS).stat().st_size
    if size > MAX_BYTES:
        print(f"warning: {folder / WEIGHTS} is {size / 2**20:.1f} MB", file=sys.stderr)
    print(f"wrote {folder} ({size / 2**20:.1f} MB of weights, fit {seconds:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
