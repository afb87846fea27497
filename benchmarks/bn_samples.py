"""How many training patches the batch-norm re-estimation needs, on unseen patients.

``IDCClassifier.fit`` ends by re-estimating every batch-norm layer's statistics on a
random subset of its training patches (``idcclf._training.RECALIBRATION_SAMPLES``).
Its time grows with the subset, and on small fits it is most of the time spent outside
the epochs. This script trains one model per seed without the re-estimation, then
re-estimates it on subsets of several sizes, each drawn several times, and on all the
training patches, and scores every version on validation patients that were not
trained on: balanced accuracy at threshold 0.5 and ROC AUC, with the seconds each
re-estimation took. A size is as good as all the patches when its scores stay within
the spread that the draw alone causes. Each model's first re-estimation, on all the
patches, also traces its graphs, so its seconds include that once-per-model cost.

Usage::

    python benchmarks/bn_samples.py [--data ../shared/data/idc --data
        ../shared/data/idc-partial] [--train-patients 40] [--val-patients 40]
        [--epochs 3] [--seeds 0 1] [--sizes 512 1024 2048 4096] [--draws 3]
        [--out bn_samples.json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from time_to_quality import DEFAULT_DATA, load, split_patients  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, action="append", help="a root; repeatable")
    parser.add_argument("--train-patients", type=int, default=40)
    parser.add_argument("--val-patients", type=int, default=40)
    parser.add_argument("--split-seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--sizes", type=int, nargs="+", default=[512, 1024, 2048, 4096])
    parser.add_argument("--draws", type=int, default=3, help="subsets drawn per size")
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE")
    parser.add_argument("--out", type=Path, default=Path("bn_samples.json"))
    args = parser.parse_args(argv)
    args.data = args.data or DEFAULT_DATA
    for name in ("train_patients", "val_patients", "epochs", "draws"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    if min(args.sizes) < 1:
        parser.error(f"--sizes {min(args.sizes)}: every size must be at least 1")
    from time_to_quality import parse_params

    args.params = parse_params(parser, args.set)
    if "epochs" in args.params or "recalibrate_batch_norm" in args.params:
        parser.error("--set: epochs and recalibrate_batch_norm are this script's to set")
    return args


def score(clf, subset: np.ndarray, X_val: np.ndarray, y_val: np.ndarray) -> dict:
    """Re-estimate ``clf``'s batch norm on ``subset``; its seconds and validation scores."""
    from idcclf._ops import recalibrate_batch_norm
    from idcclf.metrics import evaluation_report

    started = time.perf_counter()
    recalibrate_batch_norm(clf.model_, subset)
    seconds = time.perf_counter() - started
    report = evaluation_report(y_val, clf.predict_proba(X_val))
    return {
        "patches": len(subset),
        "seconds": seconds,
        "balanced_accuracy": report["balanced_accuracy"],
        "roc_auc": report["roc_auc"],
    }


def summarize(rows: list[dict]) -> dict:
    """Per size: mean, min and max of each score and of the seconds, over seeds and draws."""
    summary = {}
    for size in dict.fromkeys(row["size"] for row in rows):
        chosen = [row for row in rows if row["size"] == size]
        summary[str(size)] = {
            key: {
                "mean": float(np.mean([row[key] for row in chosen])),
                "min": float(min(row[key] for row in chosen)),
                "max": float(max(row[key] for row in chosen)),
            }
            for key in ("balanced_accuracy", "roc_auc", "seconds", "delta_balanced_accuracy")
        }
    return summary


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from idcclf import IDCClassifier
    from idcclf._io import atomic_write_text
    from idcclf._training import random_subset

    train_roots, val_roots = split_patients(
        args.data, args.train_patients, args.val_patients, args.split_seed
    )
    X, y, groups, _ = load(train_roots)
    X_val, y_val, _, _ = load(val_roots)
    print(
        f"training {len(y)} patches of {args.train_patients} patients; validation "
        f"{len(y_val)} patches of {args.val_patients} others ({y_val.mean():.1%} IDC)"
    )

    rows = []
    for seed in args.seeds:
        clf = IDCClassifier(
            **{"class_weight": "balanced", **args.params},
            epochs=args.epochs,
            random_state=seed,
            validation_fraction=0.0,
            recalibrate_batch_norm=False,
        )
        started = time.perf_counter()
        clf.fit(X, y, groups=groups)
        print(f"seed {seed}: fit in {time.perf_counter() - started:.0f} s")

        reference = {"seed": seed, "size": "all", "draw": None, **score(clf, X, X_val, y_val)}
        reference["delta_balanced_accuracy"] = 0.0
        seed_rows = [reference]
        for size in args.sizes:
            for draw in range(args.draws):
                # Seeds apart from fit's own (random_subset(X, n, random_state)).
                subset = random_subset(X, size, 1000 * (seed + 1) + draw)
                row = {"seed": seed, "size": size, "draw": draw}
                row.update(score(clf, subset, X_val, y_val))
                row["delta_balanced_accuracy"] = (
                    row["balanced_accuracy"] - reference["balanced_accuracy"]
                )
                seed_rows.append(row)
        for row in seed_rows:
            print(
                f"  {str(row['size']):>5} patches, draw {row['draw']}: BAC "
                f"{row['balanced_accuracy']:.4f} ({row['delta_balanced_accuracy']:+.4f} "
                f"against all), ROC AUC {row['roc_auc']:.4f}, {row['seconds']:.1f} s"
            )
        rows += seed_rows

    summary = summarize(rows)
    print("\nper size, over seeds and draws: BAC mean [min, max], change against all the "
          "training patches, seconds")  # fmt: skip
    for size, figures in summary.items():
        bac, delta, seconds = (
            figures[k] for k in ("balanced_accuracy", "delta_balanced_accuracy", "seconds")
        )
        print(f"  {size:>5}: {bac['mean']:.4f} [{bac['min']:.4f}, {bac['max']:.4f}], "
              f"{delta['mean']:+.4f} [{delta['min']:+.4f}, {delta['max']:+.4f}], "
              f"{seconds['mean']:.1f} s [{seconds['min']:.1f}, {seconds['max']:.1f}]")  # fmt: skip
    record = {
        "command": " ".join(
            ["python benchmarks/bn_samples.py", *(sys.argv[1:] if argv is None else argv)]
        ),
        "config": {
            "data": [str(root) for root in args.data],
            "train_patients_list": {str(r): ps for r, ps in train_roots.items()},
            "val_patients_list": {str(r): ps for r, ps in val_roots.items()},
            "training_patches": int(len(y)),
            "validation_patches": int(len(y_val)),
            "epochs": args.epochs,
            "params": {k: repr(v) for k, v in args.params.items()},
        },
        "rows": rows,
        "summary": summary,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out, json.dumps(record, indent=1) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
