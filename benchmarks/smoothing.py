"""What averaging over slide neighbours does to cross-validated predictions.

Reads the test predictions that ``benchmarks/cv_accuracy.py --predictions PATH.npz``
saved (every test patch's fold, patient, slide coordinates, label and probability)
and scores them again after :func:`idcclf.slides.smooth_probabilities` with each
``--radius`` (0: the patches on their own, as cross-validated). Nothing is retrained:
the models and test patients are those of the run. Prints one Markdown table: per
fold and radius, balanced accuracy (threshold 0.5) and ROC AUC on all the fold's test
patches and on those of whole-slide patients only, then mean +/- std over the folds;
and one more: the test patches of all folds pooled, with 95 % intervals from
resampling the patients (``idcclf.metrics.patient_bootstrap``, 1000 resamples), since
the whole-slide patients are few.

Whole-slide patients are the patient folders under ``--whole-slides`` (default
``../shared/data/idc``, whose 22 patients are complete); the others (``idc-partial``)
are random samples of their slides, so most of their patches have few scored
neighbours, and smoothing can do little for them.

``--model I`` scores the I-th model (from 1) of a seed ensemble on its own, from the
``proba_per_model`` that ``cv_accuracy.py --seeds N`` saves, instead of the ensemble's
mean.

Usage::

    python benchmarks/smoothing.py PREDICTIONS.npz [--radius 0 1 2 3] [--model 1]
        [--whole-slides ../shared/data/idc] [--out smoothing.json]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
WHOLE_SLIDES = REPO.parent / "shared" / "data" / "idc"


def score(y, proba) -> dict[str, float]:
    from idcclf.metrics import evaluation_report

    report = evaluation_report(y, proba)
    return {"balanced_accuracy": report["balanced_accuracy"], "roc_auc": report["roc_auc"]}


def smoothed_by_radius(arrays: dict, radii) -> dict[int, np.ndarray]:
    """Every saved probability smoothed with each radius, all folds at once.

    Each patient is tested in one fold only, and smoothing stays within a patient, so
    smoothing the folds together mixes no two models on one patient.
    """
    from idcclf.slides import smooth_probabilities

    return {
        radius: smooth_probabilities(
            arrays["proba"], arrays["coords"], arrays["patient"], radius=radius
        )
        for radius in radii
    }


def smoothing_scores(arrays: dict, smoothed: dict, whole_patients: set[str]) -> list[dict]:
    """One row per fold and radius: the scores on all test patches and whole slides."""
    rows = []
    for fold in np.unique(arrays["fold"]):
        mine = arrays["fold"] == fold
        y, patients = arrays["label"][mine], arrays["patient"][mine]
        whole = np.isin(patients, sorted(whole_patients))
        for radius, smooth in smoothed.items():
            proba = smooth[mine]
            row = {"fold": int(fold), "radius": radius, "n_patches": int(mine.sum())}
            row.update(score(y, proba))
            row["n_whole_slide_patients"] = len(set(patients[whole]))
            if row["n_whole_slide_patients"]:
                whole_scores = score(y[whole], proba[whole])
                row.update({f"{k}_whole_slides": v for k, v in whole_scores.items()})
            rows.append(row)
    return rows


def pooled_scores(arrays: dict, smoothed: dict, whole_patients: set[str]) -> list[dict]:
    """Per radius: every fold's test patches pooled, with patient-resampled intervals."""
    from idcclf.metrics import patient_bootstrap

    y, patients = arrays["label"], arrays["patient"]
    subsets = {
        "all": np.ones(len(y), bool),
        "whole_slides": np.isin(patients, sorted(whole_patients)),
    }
    rows = []
    for radius, proba in smoothed.items():
        for name, mine in subsets.items():
            if not mine.any():
                continue
            intervals = patient_bootstrap(y[mine], proba[mine], patients[mine])
            row = {"radius": radius, "patients": name, "n_patients": intervals["n_patients"]}
            for metric in ("balanced_accuracy", "roc_auc"):
                row[metric] = {k: intervals[metric][k] for k in ("estimate", "low", "high")}
            rows.append(row)
    return rows


def pooled_table(rows: list[dict]) -> str:
    lines = [
        "| radius | patients | n | BAC [95 % interval] | ROC AUC [95 % interval] |",
        "|---|---|---|---|---|",
    ]
    for row in rows:
        cells = [
            f"{row[m]['estimate']:.3f} [{row[m]['low']:.3f}, {row[m]['high']:.3f}]"
            for m in ("balanced_accuracy", "roc_auc")
        ]
        lines.append(
            f"| {row['radius']} | {row['patients'].replace('_', ' ')} | {row['n_patients']} "
            f"| {cells[0]} | {cells[1]} |"
        )
    return "\n".join(lines)


def table(rows: list[dict]) -> str:
    keys = ("balanced_accuracy", "roc_auc")
    lines = [
        "| fold | radius | BAC | ROC AUC | whole-slide patients | BAC, whole slides "
        "| ROC AUC, whole slides |",
        "|---|---|---|---|---|---|---|",
    ]

    def cells(row_or_stats, suffix=""):
        return [
            "n/a" if row_or_stats.get(k + suffix) is None else row_or_stats[k + suffix]
            for k in keys
        ]

    for row in rows:
        values = cells(row) + [row["n_whole_slide_patients"]] + cells(row, "_whole_slides")
        lines.append(f"| {row['fold']} | {row['radius']} | " + " | ".join(map(_fmt, values)) + " |")
    for radius in sorted({row["radius"] for row in rows}):
        mine = [row for row in rows if row["radius"] == radius]
        stats = []
        for key in [*keys, *(k + "_whole_slides" for k in keys)]:
            values = [row[key] for row in mine if row.get(key) is not None]
            stats.append(f"{np.mean(values):.3f} ± {np.std(values):.3f}" if values else "n/a")
        lines.append(
            f"| mean ± std | {radius} | {stats[0]} | {stats[1]} | | {stats[2]} | {stats[3]} |"
        )
    return "\n".join(lines)


def _fmt(value) -> str:
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("predictions", type=Path, help="cv_accuracy.py --predictions file")
    parser.add_argument("--radius", type=int, nargs="+", default=[0, 1, 2, 3])
    parser.add_argument("--whole-slides", type=Path, default=WHOLE_SLIDES)
    parser.add_argument("--out", type=Path, default=None, help="also write the rows as JSON")
    parser.add_argument("--model", type=int, default=None, help="one model of a seed ensemble")
    args = parser.parse_args(argv)
    if any(radius < 0 for radius in args.radius):
        parser.error(f"--radius must be 0 or more, got {args.radius}")
    if not args.predictions.is_file():
        parser.exit(2, f"no predictions at {args.predictions}\n")
    whole = set()
    if args.whole_slides.is_dir():
        whole = {d.name for d in args.whole_slides.iterdir() if d.is_dir()}
    with np.load(args.predictions, allow_pickle=False) as saved:
        arrays = {key: saved[key] for key in saved.files}
    if args.model is not None:
        per_model = arrays.get("proba_per_model")
        if per_model is None:
            parser.exit(2, f"{args.predictions} holds no proba_per_model (not --seeds N > 1)\n")
        if not 1 <= args.model <= per_model.shape[1]:
            parser.exit(2, f"--model must be 1 to {per_model.shape[1]}, got {args.model}\n")
        arrays["proba"] = per_model[:, args.model - 1]
    smoothed = smoothed_by_radius(arrays, args.radius)
    rows = smoothing_scores(arrays, smoothed, whole)
    pooled = pooled_scores(arrays, smoothed, whole)
    print(table(rows))
    print("\nAll folds pooled:\n")
    print(pooled_table(pooled))
    if args.out:
        from idcclf._io import atomic_write_text

        atomic_write_text(args.out, json.dumps({"folds": rows, "pooled": pooled}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
