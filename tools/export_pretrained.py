"""Copy a model trained by ``idcclf train`` into the package as its pretrained model.

Usage::

    idcclf train --data ../shared/data/idc --epochs 8 --out runs/pretrained
    python benchmarks/cv_accuracy.py --folds 3 --epochs 6 --out runs/cv_accuracy.json
    python tools/export_pretrained.py runs/pretrained runs/cv_accuracy.json

Only the network weights are kept (see ``idcclf.pretrained.save_pretrained``), together
with the training command, the held-out test metrics of that run and the patient-grouped
cross-validation summary of the same recipe.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import joblib

from idcclf.pretrained import PRETRAINED_DIR, save_pretrained

HEADLINE = ("accuracy", "balanced_accuracy", "sensitivity", "specificity", "f1", "roc_auc")


def main(run_dir: str, cv_json: str) -> int:
    run = Path(run_dir)
    clf = joblib.load(run / "model.joblib")
    test = json.loads((run / "metrics.json").read_text())
    cv = json.loads(Path(cv_json).read_text())
    info = {
        "command": "idcclf train --data ../shared/data/idc --epochs 8 --out runs/pretrained",
        "data": "22 patients of the public IDC set (IDC_regular_ps50_idx5), 22,896 patches",
        "test_patients": {key: test[key] for key in HEADLINE if key in test},
        "cross_validation": {
            "command": "python benchmarks/cv_accuracy.py --folds 3 --epochs 6",
            "summary": cv["summary"],
        },
    }
    save_pretrained(clf, PRETRAINED_DIR, info=info)
    print(f"wrote {PRETRAINED_DIR}")
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
