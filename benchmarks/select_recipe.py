"""Screen training recipes on a fixed group of validation patients.

A seeded, class-stratified group of patients (``--val-patients``, about 30) is held out
once and printed; every recipe trains on all the other patients and is scored on that
group (``--fraction`` keeps that share of every patient's patches of each class, for
quick screening). The test patients of a later cross-validation are never involved in choosing:
this is the only place where recipes are compared.

Usage::

    python benchmarks/select_recipe.py [--data ROOT ...] [--fraction 0.3] [--epochs 3]
        [--lever baseline --lever adam ...]
        [--recipe 'wide: filters=(48, 96, 192)' ...] [--seed 0] [--out select.json]
        [--standardize-patients [--means-only] | --normalize-stains] [--upsample 2]

``--lever NAME`` runs one of the named recipes in ``LEVERS``; ``--recipe 'NAME:
k=v, k=v'`` runs ``IDCClassifier`` parameters given as Python keyword arguments. Every
recipe starts from the baseline (defaults, ``class_weight="balanced"``, ``--epochs``)
and its parameters override it. Each run prints and appends to the JSON (atomically,
after every run): validation balanced accuracy, sensitivity, specificity, ROC AUC,
PR AUC and F1 at 0.5; balanced accuracy at a threshold chosen on the estimator's own
internal validation split (training patients, never the screening group); balanced
accuracy and ROC AUC with test-time augmentation; and the fit wall time.
``--standardize-patients`` standardizes every patient's colours
(``idcclf.standardize_patients``, over all of its patches, before ``--fraction``) for
all the recipes of the run (``--means-only``: their mean colours only); its rows are
marked ``standardize_patients`` (and ``means_only``). ``--normalize-stains`` redraws
every patient's patches with reference H&E stains instead (``idcclf.normalize_stains``);
its rows are marked ``normalize_stains``. ``--upsample FACTOR`` enlarges every patch
FACTOR times (bilinear) for all the recipes of the run, whose ``input_shape`` follows;
its rows are marked ``upsample``.
``--table`` prints the runs of ``--out`` as a Markdown table, with each run's change
against the baseline of the same seed.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cv_accuracy import (  # noqa: E402
    DEFAULT_ROOTS,
    add_standardize_options,
    check_standardize_options,
    load_roots,
    subsample,
    use_augmentation,
    validation_threshold,
)

BASELINE = {"class_weight": "balanced"}
#: Named recipes: parameters on top of the baseline.
LEVERS = {
    "baseline": {},
    "adam": {"optimizer": "adam", "learning_rate": 1e-4},
    "epochs6": {"epochs": 6},
    "cosine": {"lr_schedule": "cosine"},
    "stain": {"stain_jitter": 0.05},
    "wide": {"filters": (48, 96, 192)},
    "unweighted": {"class_weight": None},
    "stain_label_smoothing": {"stain_jitter": 0.05, "label_smoothing": 0.1},
}
SHOWN = ("balanced_accuracy", "roc_auc", "f1", "bac_val_threshold", "bac_tta", "fit_seconds")


def parse_recipe(text: str) -> tuple[str, dict]:
    """``'name: k=v, k=v'`` as ``(name, {k: v})``; values are Python literals."""
    name, sep, body = text.partition(":")
    if not sep or not name.strip():
        raise ValueError(f"a recipe is 'NAME: k=v, ...', got {text!r}")
    call = ast.parse(f"f({body})", mode="eval").body
    if call.args:
        raise ValueError(f"recipe {name!r}: give parameters as k=v, got {body!r}")
    return name.strip(), {kw.arg: ast.literal_eval(kw.value) for kw in call.keywords}


def validation_patients(y, groups, n_patients: int, seed: int) -> np.ndarray:
    """A seeded, class-stratified group of about ``n_patients`` patients."""
    from sklearn.model_selection import StratifiedGroupKFold

    n_splits = max(2, round(len(np.unique(groups)) / n_patients))
    splitter = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    _, held = next(splitter.split(np.zeros(len(y)), y, groups))
    return np.unique(groups[held])


def run_recipe(name, params, X, y, groups, val_mask, args) -> dict:
    from idcclf import IDCClassifier
    from idcclf.metrics import evaluation_report

    train, val = np.flatnonzero(~val_mask), np.flatnonzero(val_mask)
    settings = {**BASELINE, "epochs": args.epochs, "random_state": args.seed, **params}
    if args.upsample > 1:
        settings.setdefault("input_shape", tuple(X.shape[1:]))
    clf = IDCClassifier(**settings)
    start = time.perf_counter()
    clf.fit(X[train], y[train], groups=groups[train])
    fit_seconds = time.perf_counter() - start
    proba = clf.predict_proba(X[val])[:, 1]
    report = evaluation_report(y[val], proba)
    threshold = validation_threshold(clf, X, y, groups, train)
    bac_at_threshold = (
        None
        if threshold is None
        else evaluation_report(y[val], proba, threshold=threshold)["balanced_accuracy"]
    )
    clf.set_params(test_time_augmentation=not clf.test_time_augmentation)
    tta = evaluation_report(y[val], clf.predict_proba(X[val])[:, 1])
    result = {
        "name": name,
        "params": {k: list(v) if isinstance(v, tuple) else v for k, v in settings.items()},
        "seed": args.seed,
        "fraction": args.fraction,
        "standardize_patients": args.standardize_patients,
        "means_only": args.means_only,
        "normalize_stains": args.normalize_stains,
        **({"upsample": args.upsample} if args.upsample > 1 else {}),
        "n_train_patches": int(len(train)),
        "fit_seconds": fit_seconds,
        "seconds": time.perf_counter() - start,
        "bac_val_threshold": bac_at_threshold,
        "validation_threshold": threshold,
        "bac_tta": tta["balanced_accuracy"],
        "roc_auc_tta": tta["roc_auc"],
        "tta_switched_to": bool(clf.test_time_augmentation),
    }
    for key in ("balanced_accuracy", "sensitivity", "specificity", "roc_auc", "pr_auc", "f1"):
        result[key] = report[key]
    return result


def append_json(path: Path, entry: dict) -> None:
    from idcclf._io import atomic_write_text

    runs = json.loads(path.read_text()) if path.exists() else []
    runs.append(entry)
    atomic_write_text(path, json.dumps(runs, indent=2))


def _figure(value) -> str:
    """A score to three decimals, or a dash where the run has none."""
    return "–" if value is None else f"{value:.3f}"


def table(runs: list[dict]) -> str:
    """Markdown table of screening runs, with deltas against the same seed's baseline."""
    base = {r["seed"]: r for r in runs if r["name"] == "baseline"}
    lines = [
        "| recipe | seed | BAC | Δ BAC | ROC AUC | Δ AUC | F1 | BAC, validation threshold "
        "| BAC, TTA | fit s |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in runs:
        ref = base.get(r["seed"])
        delta = [f"{r[m] - ref[m]:+.3f}" if ref else "–" for m in ("balanced_accuracy", "roc_auc")]
        lines.append(
            f"| {r['name']} | {r['seed']} | {r['balanced_accuracy']:.3f} | {delta[0]} | "
            f"{r['roc_auc']:.3f} | {delta[1]} | {r['f1']:.3f} | "
            f"{_figure(r['bac_val_threshold'])} | {r['bac_tta']:.3f} | {r['fit_seconds']:.0f} |"
        )
    return "\n".join(lines)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, action="append", default=None)
    parser.add_argument("--val-patients", type=int, default=30)
    parser.add_argument("--split-seed", type=int, default=0)
    parser.add_argument("--fraction", type=float, default=1.0)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0, help="random_state of every fit")
    parser.add_argument("--lever", action="append", default=[], choices=sorted(LEVERS))
    parser.add_argument("--recipe", action="append", default=[], metavar="'NAME: k=v, ...'")
    parser.add_argument("--augmentation", choices=("fused", "layers"), default="fused")
    add_standardize_options(parser)
    parser.add_argument("--out", type=Path, default=Path("select_recipe.json"))
    parser.add_argument("--table", action="store_true", help="print --out as a table, run nothing")
    args = parser.parse_args(argv)
    if args.table:
        return args
    if not 0 < args.fraction <= 1:
        parser.error(f"--fraction must be in (0, 1], got {args.fraction}")
    check_standardize_options(parser, args)
    args.runs = [(name, LEVERS[name]) for name in args.lever]
    for text in args.recipe:
        try:
            args.runs.append(parse_recipe(text))
        except (ValueError, SyntaxError) as exc:
            parser.error(f"--recipe {text!r}: {exc}")
    if not args.runs:
        args.runs = [("baseline", {})]
    for name, params in args.runs:
        if "normalize_stains" in params:
            parser.error(
                f"recipe {name!r}: use --normalize-stains rather than normalize_stains=, "
                "the same model scored with predict_proba(X) alone"
            )
    args.data = args.data or list(DEFAULT_ROOTS)
    for root in args.data:
        if not root.is_dir():
            parser.exit(2, f"no data at {root}: pass --data\n")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.table:
        print(table(json.loads(args.out.read_text())))
        return 0
    use_augmentation(args.augmentation)
    try:
        X, y, groups = load_roots(
            args.data,
            standardize=args.standardize_patients,
            means_only=args.means_only,
            normalize_stains=args.normalize_stains,
            upsample=args.upsample,
        )
    except ValueError as exc:
        print(f"select_recipe: {exc}", file=sys.stderr)
        return 2
    held = validation_patients(y, groups, args.val_patients, args.split_seed)
    val_mask = np.isin(groups, held)
    if args.fraction < 1:
        # Validation patients are thinned too: the recipes are still all scored on the
        # same patches, and prediction with test-time augmentation stays cheap.
        keep = subsample(y, groups, args.fraction)
        X, y, groups, val_mask = X[keep], y[keep], groups[keep], val_mask[keep]
    print(
        f"validation patients ({len(held)}, {int(val_mask.sum())} patches, "
        f"{y[val_mask].mean():.1%} IDC): {' '.join(map(str, held))}\n"
        f"training: {int((~val_mask).sum())} patches of "
        f"{len(np.unique(groups[~val_mask]))} patients (fraction {args.fraction})",
        flush=True,
    )
    for name, params in args.runs:
        result = run_recipe(name, params, X, y, groups, val_mask, args)
        result["validation_patients"] = [str(p) for p in held]
        append_json(args.out, result)
        print(
            f"{name} (seed {args.seed}): "
            + ", ".join(f"{key} {_figure(result[key])}" for key in SHOWN[:-1])
            + f", fit {result['fit_seconds']:.0f} s",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
