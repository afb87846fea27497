"""Patient-grouped cross-validation of the CancerNet training recipe on real data.

Every fold trains on some patients and is scored on patients it has never seen, with the
same settings as ``idcclf train`` (Adagrad 1e-2, batch 32, class weights, augmentation).
Prints each fold's figures and their mean +/- std, and writes them as JSON.

Usage::

    python benchmarks/cv_accuracy.py [--data ../shared/data/idc] [--folds 3] [--epochs 6]
        [--out cv_accuracy.json]
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

REPO = Path(__file__).resolve().parents[1]
METRICS = ("balanced_accuracy", "roc_auc", "f1", "sensitivity", "specificity", "accuracy")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "idc")
    parser.add_argument("--folds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--out", type=Path, default=Path("cv_accuracy.json"))
    args = parser.parse_args()
    if not args.data.is_dir():
        print(f"no data at {args.data}: pass --data", file=sys.stderr)
        return 2

    from sklearn.model_selection import StratifiedGroupKFold

    from idcclf import IDCClassifier, load_idc
    from idcclf._io import atomic_write_text
    from idcclf.metrics import evaluation_report

    bunch = load_idc(args.data)
    X, y, groups = bunch.data, bunch.target, bunch.groups
    print(f"{len(y)} patches, {len(np.unique(groups))} patients, {y.mean():.1%} IDC; "
          f"{args.folds} folds by patient, {args.epochs} epochs, {os.cpu_count()} CPUs")
    folds = []
    splitter = StratifiedGroupKFold(n_splits=args.folds, shuffle=True, random_state=0)
    for k, (train, test) in enumerate(splitter.split(X, y, groups), start=1):
        start = time.perf_counter()
        clf = IDCClassifier(epochs=args.epochs, class_weight="balanced", random_state=k)
        clf.fit(X[train], y[train], groups=groups[train])
        report = evaluation_report(y[test], clf.predict_proba(X[test])[:, 1])
        report["test_patients"] = sorted(map(str, np.unique(groups[test])))
        report["seconds"] = time.perf_counter() - start
        report.pop("classification_report")
        folds.append(report)
        print(f"fold {k}: " + ", ".join(f"{m} {report[m]:.3f}" for m in METRICS)
              + f" ({report['seconds']:.0f} s; test patients {' '.join(report['test_patients'])})",
              flush=True)
    summary = {
        m: {"mean": float(np.mean([f[m] for f in folds])),
            "std": float(np.std([f[m] for f in folds]))}
        for m in METRICS
    }
    for m in METRICS:
        print(f"{m:<18} {summary[m]['mean']:.3f} +/- {summary[m]['std']:.3f}")
    atomic_write_text(
        args.out,
        json.dumps({"epochs": args.epochs, "folds": folds, "summary": summary}, indent=2),
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
