"""Effect of re-estimating batch-norm statistics after training, on unseen patients.

Trains CancerNet for 3 epochs on 2,500 patches of 8 real patients, then scores 2 other
patients with Keras's running batch-norm statistics and again after re-estimating them
exactly (what ``IDCClassifier(recalibrate_batch_norm=True)`` does).

Usage::

    python benchmarks/bn_recalibration.py [--data ../shared/data/idc]
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
TRAIN = ["8863", "8914", "8950", "8951", "8955", "8980", "9083", "9124"]
TEST = ["9023", "9125"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "idc")
    args = parser.parse_args()
    if not args.data.is_dir():
        print(f"no data at {args.data}: pass --data", file=sys.stderr)
        return 2

    from idcclf import IDCClassifier, load_idc
    from idcclf._ops import recalibrate_batch_norm
    from idcclf._training import RECALIBRATION_SAMPLES
    from idcclf.metrics import evaluation_report

    bunch = load_idc(args.data, patients=TRAIN + TEST)
    test = np.isin(bunch.groups, TEST)
    X, y, groups = bunch.data[~test], bunch.target[~test], bunch.groups[~test]
    chosen = np.random.default_rng(0).choice(len(y), 2500, replace=False)
    clf = IDCClassifier(
        epochs=3,
        class_weight="balanced",
        random_state=0,
        validation_fraction=0.15,
        recalibrate_batch_norm=False,
    )
    clf.fit(X[chosen], y[chosen], groups=groups[chosen])

    def scores() -> str:
        report = evaluation_report(bunch.target[test], clf.predict_proba(bunch.data[test]))
        keys = ("balanced_accuracy", "roc_auc", "sensitivity", "specificity")
        return ", ".join(f"{key} {report[key]:.3f}" for key in keys)

    print(f"test patients {' '.join(TEST)}, {test.sum()} patches")
    print(f"running statistics (Keras):  {scores()}")
    subset = X[chosen][:RECALIBRATION_SAMPLES]
    recalibrate_batch_norm(clf.model_, subset)
    print(f"re-estimated statistics:     {scores()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
