"""Train the shipped pretrained model on every patient and copy it into the package.

Usage::

    python benchmarks/cv_accuracy.py --folds 5 --epochs 3 --out cv_default.json
    python tools/export_pretrained.py --epochs 3 --cv cv_default.json \\
        [--cv another_cv.json] [--data ROOT --data ROOT] [--set NAME=VALUE ...]
        [--folder DIR] [--attach-only]

Trains ``IDCClassifier`` with the recipe of ``benchmarks/cv_accuracy.py --recipe
default`` (balanced class weights, ``--set`` on top) on all the patients of the given
roots (both ``../shared/data`` roots by default), then keeps the network weights only
(see ``idcclf.pretrained.save_pretrained``), together with this command, the data it
saw, the fit wall time and the patient-grouped cross-validation summary of the same
recipe read from each ``--cv`` (every patient was used for training, so there is no
held-out test set of its own). ``--attach-only`` retrains nothing: it replaces the
cross-validation figures of the model already in the folder, after checking that it
was trained with this recipe (so a CV finished after the export can be attached).
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


def read_cv(path: Path, params: dict, epochs: int, error) -> dict:
    """The provenance of a cv_accuracy.py run, refused unless it is of this recipe."""
    cv = json.loads(path.read_text())
    # Through JSON, as the CV file stored them (tuples become lists).
    if cv.get("recipe") != "default" or cv.get("params") != json.loads(json.dumps(params)):
        error(f"{path} is of recipe {cv.get('recipe')} {cv.get('params')}, not {params}")
    if cv.get("epochs") != epochs:
        error(f"{path} trained {cv.get('epochs')} epochs, not {epochs}")
    return {
        "command": cv.get("command"),
        "fraction": cv.get("fraction"),
        "n_folds": len(cv["folds"]),
        "summary": cv["summary"],
    }


def attach(folder: Path, params: dict, epochs: int, cvs: list, error) -> None:
    """Replace the cross-validation provenance of an exported model, retraining nothing."""
    from idcclf._io import atomic_write_text
    from idcclf.pretrained import CONFIG

    config = json.loads((folder / CONFIG).read_text())
    stored = config["params"]
    wanted = json.loads(json.dumps({"epochs": epochs, **params}))
    if any(stored.get(key) != value for key, value in wanted.items()):
        error(f"the model in {folder} was not trained with {wanted}")
    config["info"]["cross_validation"] = cvs
    atomic_write_text(folder / CONFIG, json.dumps(config, indent=2))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, action="append", default=None)
    parser.add_argument("--epochs", type=int, required=True)
    parser.add_argument("--cv", type=Path, action="append", required=True)
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE")
    parser.add_argument("--random-state", type=int, default=0)
    parser.add_argument("--folder", type=Path, default=None, help="default: the package's")
    parser.add_argument("--attach-only", action="store_true")
    args = parser.parse_args(argv)
    params = {**RECIPES["default"][0], **parse_sets(args.set, parser.error)}
    cvs = [read_cv(path, params, args.epochs, parser.error) for path in args.cv]

    from idcclf import IDCClassifier
    from idcclf.pretrained import PRETRAINED_DIR, WEIGHTS, save_pretrained

    folder = args.folder or PRETRAINED_DIR
    if args.attach_only:
        attach(folder, params, args.epochs, cvs, parser.error)
        print(f"updated the cross-validation figures of {folder}")
        return 0
    X, y, groups = load_roots(args.data or list(DEFAULT_ROOTS))
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
        "cross_validation": cvs,
    }
    save_pretrained(clf, folder, info=info)
    size = (folder / WEIGHTS).stat().st_size
    if size > MAX_BYTES:
        print(f"warning: {folder / WEIGHTS} is {size / 2**20:.1f} MB", file=sys.stderr)
    print(f"wrote {folder} ({size / 2**20:.1f} MB of weights, fit {seconds:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
