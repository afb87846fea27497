"""Compare two recipes fold by fold over several seeds, from their saved predictions.

In a patient-grouped cross-validation of this recipe, the spread between seeds is
about as large as the gains of the levers measured, so a lever is judged on pairs:
the same fold, the same ``random_state``, the two recipes. This script reads the
``cv_accuracy.py --predictions`` files of recipe A and of recipe B, where the i-th
file of each was made with the same seed (``--first-seed``), and lines up their test
patches. It prints, per fold and seed, each run's balanced accuracy and ROC AUC and
the change from A to B. Then it prints the mean change over all pairs and over seeds,
with standard errors, and how many pairs rose. It also scores each recipe's seed
ensemble: the mean probability of its first k runs, for every k.

Only the folds that every file holds are scored (a run stopped after 4 folds holds
folds 1-4); the script says which.

Usage::

    python benchmarks/paired_runs.py --a A_seed0.npz A_seed1.npz \\
        --b B_seed0.npz B_seed1.npz [--names A B] [--threshold 0.5] [--out F.json]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from compare_patients import order_like  # noqa: E402

METRICS = {"balanced_accuracy": "balanced accuracy", "roc_auc": "ROC AUC"}
FIELDS = ("fold", "patient", "coords", "label", "proba")


def load_runs(paths: list[Path]) -> tuple[list[int], np.ndarray, np.ndarray, np.ndarray]:
    """The common folds, their labels and folds, and every run's probabilities.

    The probabilities are in the first file's patch order, one row per file.
    """
    runs = []
    for path in paths:
        with np.load(path) as data:
            missing = [field for field in FIELDS if field not in data.files]
            if missing:
                raise ValueError(f"{path} has no {', '.join(missing)}: not a predictions file")
            runs.append({field: data[field] for field in FIELDS})
    folds = sorted(set.intersection(*(set(run["fold"].tolist()) for run in runs)))
    if not folds:
        raise ValueError("the files share no fold")
    runs = [{k: v[np.isin(run["fold"], folds)] for k, v in run.items()} for run in runs]
    first = runs[0]
    probas = [first["proba"]]
    for path, run in zip(paths[1:], runs[1:], strict=True):
        probas.append(run["proba"][order_like(first, run, (paths[0], path))])
    return folds, first["label"], first["fold"], np.stack(probas).astype(float)


def fold_scores(proba, label, fold, folds, threshold) -> dict[str, list[float]]:
    """Each metric of one set of probabilities, fold by fold."""
    from idcclf.metrics import evaluation_report

    reports = [
        evaluation_report(label[fold == k], proba[fold == k], threshold=threshold) for k in folds
    ]
    return {metric: [float(r[metric]) for r in reports] for metric in METRICS}


def paired_summary(scores_a: list[dict], scores_b: list[dict], metric: str) -> dict:
    """The changes from A to B on one metric: every pair, then per seed."""
    changes = np.array(
        [np.subtract(b[metric], a[metric]) for a, b in zip(scores_a, scores_b, strict=True)]
    )
    pairs = changes.ravel()
    per_seed = changes.mean(axis=1)
    summary = {
        "changes": changes.tolist(),
        "n_pairs": int(pairs.size),
        "mean": float(pairs.mean()),
        "higher": int((pairs > 0).sum()),
        "per_seed": per_seed.tolist(),
    }
    if pairs.size > 1:
        summary["std"] = float(pairs.std(ddof=1))
        summary["standard_error"] = summary["std"] / np.sqrt(pairs.size)
    if per_seed.size > 1:
        summary["standard_error_over_seeds"] = float(per_seed.std(ddof=1) / np.sqrt(per_seed.size))
    return summary


def compare(probas_a, probas_b, label, fold, folds, threshold) -> dict:
    """Per-run scores, paired changes and seed ensembles of both recipes."""
    scores = {
        side: [fold_scores(p, label, fold, folds, threshold) for p in probas]
        for side, probas in (("a", probas_a), ("b", probas_b))
    }
    # An ensemble of one is the first run, already scored.
    ensembles = {
        side: scores[side][:1]
        + [
            fold_scores(probas[:k].mean(axis=0), label, fold, folds, threshold)
            for k in range(2, len(probas) + 1)
        ]
        for side, probas in (("a", probas_a), ("b", probas_b))
    }
    return {
        "folds": folds,
        "threshold": threshold,
        "runs": scores,
        "changes": {m: paired_summary(scores["a"], scores["b"], m) for m in METRICS},
        "ensembles": ensembles,
    }


def report(result: dict, names: tuple[str, str]) -> str:
    folds = result["folds"]
    head = " | ".join(f"fold {k}" for k in folds)
    lines = [f"Folds scored: {', '.join(map(str, folds))}; threshold {result['threshold']}."]
    for metric, title in METRICS.items():
        change = result["changes"][metric]
        lines += ["", f"| {title} | run | {head} | mean |", "|---|---|" + "---|" * (len(folds) + 1)]
        for i, (a, b) in enumerate(
            zip(result["runs"]["a"], result["runs"]["b"], strict=True), start=1
        ):
            for name, values in ((names[0], a[metric]), (names[1], b[metric])):
                cells = " | ".join(f"{v:.3f}" for v in values)
                lines.append(f"| {name} | {i} | {cells} | {np.mean(values):.4f} |")
            delta = change["changes"][i - 1]
            cells = " | ".join(f"{v:+.3f}" for v in delta)
            lines.append(f"| change | {i} | {cells} | {np.mean(delta):+.4f} |")
        text = (
            f"{title}, {names[1]} - {names[0]}: {change['mean']:+.4f} over {change['n_pairs']} "
            f"pairs, higher in {change['higher']} of {change['n_pairs']}"
        )
        if "std" in change:
            text += f" (SD {change['std']:.4f}, standard error {change['standard_error']:.4f})"
        per_seed = ", ".join(f"{v:+.4f}" for v in change["per_seed"])
        text += f"; per seed {per_seed}"
        if "standard_error_over_seeds" in change:
            text += f" (standard error over seeds {change['standard_error_over_seeds']:.4f})"
        lines += ["", text]
    lines += ["", f"| seed ensemble | runs | {head} | mean BAC | mean ROC AUC |"]
    lines.append("|---|---|" + "---|" * (len(folds) + 2))
    for side, name in zip(("a", "b"), names, strict=True):
        for k, scores in enumerate(result["ensembles"][side], start=1):
            cells = " | ".join(f"{v:.3f}" for v in scores["balanced_accuracy"])
            lines.append(
                f"| {name} | {k} | {cells} | {np.mean(scores['balanced_accuracy']):.4f} "
                f"| {np.mean(scores['roc_auc']):.4f} |"
            )
    return "\n".join(lines)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--a", type=Path, nargs="+", required=True, help="recipe A's runs")
    parser.add_argument("--b", type=Path, nargs="+", required=True, help="recipe B's runs")
    parser.add_argument("--names", nargs=2, default=("A", "B"), help="the two recipes' names")
    parser.add_argument("--threshold", type=float, default=0.5)
    parser.add_argument("--out", type=Path, default=None, help="write the figures as JSON")
    args = parser.parse_args(argv)
    if len(args.a) != len(args.b):
        parser.error(f"--a has {len(args.a)} files and --b {len(args.b)}: pair them by seed")
    if not 0.0 < args.threshold < 1.0:
        parser.error(f"--threshold must lie in (0, 1), got {args.threshold}")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        folds, label, fold, probas = load_runs([*args.a, *args.b])
    except (OSError, ValueError) as exc:
        print(f"paired_runs: {exc}", file=sys.stderr)
        return 2
    n = len(args.a)
    result = compare(probas[:n], probas[n:], label, fold, folds, args.threshold)
    print(report(result, tuple(args.names)))
    if args.out is not None:
        from idcclf._io import atomic_write_text

        result["names"] = list(args.names)
        result["a"] = [str(p) for p in args.a]
        result["b"] = [str(p) for p in args.b]
        given = sys.argv[1:] if argv is None else list(argv)
        result["command"] = " ".join(["python", "benchmarks/paired_runs.py", *map(str, given)])
        atomic_write_text(args.out, json.dumps(result, indent=1) + "\n")
        print(f"\nwritten to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
