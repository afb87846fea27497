"""Patient-grouped cross-validation of the CancerNet training recipe on real data.

Every fold trains on some patients and is scored on patients it has never seen, with the
same settings as ``idcclf train`` (Adagrad 1e-2, batch 32, class weights, augmentation).
Prints each fold's figures and their mean +/- std, and writes them as JSON.

Usage::

    python benchmarks/cv_accuracy.py [--data ../shared/data/idc] [--folds 3] [--epochs 6]
        [--out cv_accuracy.json] [--set stain_jitter=0.05 --set learning_rate=0.02]
        [--fraction 0.25] [--augmentation fused|layers] [--seeds 3]

``--set NAME=VALUE`` changes an ``IDCClassifier`` parameter (VALUE is a Python literal).
``--fraction`` keeps that random share of each patient's patches of each class (so the
patients and the class balance stay as they are), for quicker, indicative comparisons.
Besides the figures at the default 0.5 threshold, each fold also reports balanced
accuracy at a threshold chosen on the fold's validation patients (the estimator's
internal, patient-grouped validation split, never the test patients) with
``idcclf.metrics.choose_threshold``, and the same model's balanced accuracy, ROC AUC and
F1 with test-time augmentation switched (on, or off when ``--set
test_time_augmentation=True``). ``--augmentation layers`` trains with the
separate Keras augmentation layers (``build_augmentation(fused=False)``) instead of the
default single resampling, to compare their accuracy. ``--seeds N`` trains N models per
fold (seeds differ, data and settings do not) and scores the mean of their
probabilities, a seed ensemble; the first model's own figures are reported beside it
(``*_first_model``), and the validation threshold is left out, since each model held
out other validation patients.
"""

from __future__ import annotations

import argparse
import ast
import functools
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
METRICS = ("balanced_accuracy", "roc_auc", "f1", "sensitivity", "specificity", "accuracy")
TTA_METRICS = ("balanced_accuracy", "roc_auc", "f1")


def model_probas(models, X):
    """Each model's IDC probability of every patch: one row per model."""
    return np.array([model.predict_proba(X)[:, 1] for model in models])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "idc")
    parser.add_argument("--folds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--out", type=Path, default=Path("cv_accuracy.json"))
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="IDCClassifier parameter (repeatable)",
    )
    parser.add_argument("--fraction", type=float, default=1.0)
    parser.add_argument("--augmentation", choices=("fused", "layers"), default="fused")
    parser.add_argument("--seeds", type=int, default=1)
    args = parser.parse_args()
    if args.seeds < 1:
        parser.error(f"--seeds must be at least 1, got {args.seeds}")
    params = {}
    for item in args.set:
        name, _, value = item.partition("=")
        try:
            params[name] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            params[name] = value
    if args.seeds > 1 and "random_state" in params:
        parser.error("--set random_state would give every seed of --seeds the same model")
    if not args.data.is_dir():
        print(f"no data at {args.data}: pass --data", file=sys.stderr)
        return 2

    from sklearn.model_selection import StratifiedGroupKFold

    from idcclf import IDCClassifier, load_idc
    from idcclf._io import atomic_write_text
    from idcclf.metrics import choose_threshold, evaluation_report

    if args.augmentation == "layers":
        from idcclf import estimator

        estimator.build_augmentation = functools.partial(estimator.build_augmentation, fused=False)

    bunch = load_idc(args.data)
    X, y, groups = bunch.data, bunch.target, bunch.groups
    if args.fraction < 1:
        rng = np.random.default_rng(0)
        keep = []
        for patient in np.unique(groups):
            for label in (0, 1):
                idx = np.flatnonzero((groups == patient) & (y == label))
                n = int(np.ceil(len(idx) * args.fraction))
                keep.extend(rng.choice(idx, size=n, replace=False))
        keep = np.sort(np.asarray(keep))
        X, y, groups = X[keep], y[keep], groups[keep]
    print(
        f"{len(y)} patches, {len(np.unique(groups))} patients, {y.mean():.1%} IDC; "
        f"{args.folds} folds by patient, {args.epochs} epochs, {os.cpu_count()} CPUs; "
        f"parameters {params or 'default'}, {args.augmentation} augmentation"
    )
    folds = []
    splitter = StratifiedGroupKFold(n_splits=args.folds, shuffle=True, random_state=0)
    for k, (train, test) in enumerate(splitter.split(X, y, groups), start=1):
        start = time.perf_counter()
        models = []
        for seed in range(args.seeds):
            clf = IDCClassifier(
                **{
                    "epochs": args.epochs,
                    "class_weight": "balanced",
                    "random_state": k + 100 * seed,
                    **params,
                }
            )
            models.append(clf.fit(X[train], y[train], groups=groups[train]))
        first = models[0]
        probas = model_probas(models, X[test])
        proba = probas.mean(axis=0)
        report = evaluation_report(y[test], proba)
        if args.seeds == 1:
            val = train[np.isin(groups[train], first.validation_groups_)]
            threshold = choose_threshold(y[val], first.predict_proba(X[val])[:, 1])
            tuned = evaluation_report(y[test], proba, threshold=threshold)
            report["validation_threshold"] = float(threshold)
            report["balanced_accuracy_at_validation_threshold"] = tuned["balanced_accuracy"]
        else:
            # Each model held out other validation patients, so no shared threshold.
            single = evaluation_report(y[test], probas[0])
            for m in TTA_METRICS:
                report[f"{m}_first_model"] = single[m]
        # The same fitted models, predicting with test-time augmentation.
        tta = not first.test_time_augmentation
        for model in models:
            model.set_params(test_time_augmentation=tta)
        other = evaluation_report(y[test], model_probas(models, X[test]).mean(axis=0))
        for model in models:
            model.set_params(test_time_augmentation=not tta)
        suffix = "with_tta" if tta else "without_tta"
        for m in TTA_METRICS:
            report[f"{m}_{suffix}"] = other[m]
        report["test_patients"] = sorted(map(str, np.unique(groups[test])))
        report["seconds"] = time.perf_counter() - start
        report.pop("classification_report")
        folds.append(report)
        print(
            f"fold {k}: "
            + ", ".join(f"{m} {report[m]:.3f}" for m in METRICS)
            + f" ({report['seconds']:.0f} s; test patients {' '.join(report['test_patients'])})",
            flush=True,
        )
    summary = {
        m: {
            "mean": float(np.mean([f[m] for f in folds])),
            "std": float(np.std([f[m] for f in folds])),
        }
        for m in METRICS
    }
    extra = [
        key
        for key in folds[0]
        if key.endswith(("_tta", "_first_model", "_at_validation_threshold"))
    ]
    for key in extra:
        values = [f[key] for f in folds]
        summary[key] = {"mean": float(np.mean(values)), "std": float(np.std(values))}
    for m, stats in summary.items():
        print(f"{m:<18} {stats['mean']:.3f} +/- {stats['std']:.3f}")
    atomic_write_text(
        args.out,
        json.dumps(
            {
                "epochs": args.epochs,
                "params": params,
                "n_patches": int(len(y)),
                "fraction": args.fraction,
                "augmentation": args.augmentation,
                "seeds": args.seeds,
                "folds": folds,
                "summary": summary,
            },
            indent=2,
        ),
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
