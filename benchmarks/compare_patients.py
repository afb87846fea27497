"""Compare two cross-validations patient by patient, from their saved predictions.

Pooled over a fold, balanced accuracy weighs every patch alike, so one patient with
many IDC patches can decide a fold's sensitivity. This script lines up the test patches
of two ``cv_accuracy.py --predictions`` files (the same folds and patches, e.g. two
recipes) and prints, per patient: its patches, its IDC share, its share of the fold's
IDC patches, and each run's sensitivity and specificity at the threshold; then the
mean change per patient, over all patients and by IDC share.

Usage::

    python benchmarks/compare_patients.py A.npz B.npz [--fold 5] [--threshold 0.5]
        [--b-key proba_patient_batch_norm]

``--b-key`` reads run B's probabilities from another array of its file, e.g. the
per-patient batch-norm figures that ``cv_accuracy.py --patient-batch-norm`` saves beside
the fitted ones (then A and B may be the same file).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

#: IDC-share bins of the summary: [low, high).
SHARE_BINS = ((0.0, 0.2), (0.2, 0.4), (0.4, 0.6), (0.6, 1.01))


def patch_keys(run) -> list[str]:
    """One key per patch of a predictions file: its patient, slide position and label."""
    return [
        f"{patient}|{x}|{y}|{label}"
        for patient, (x, y), label in zip(run["patient"], run["coords"], run["label"], strict=True)
    ]


def order_like(run_a, run_b, names: tuple) -> np.ndarray:
    """Indices that put ``run_b``'s patches in ``run_a``'s order.

    Raises ``ValueError``, naming both runs, when they do not hold the same patches or
    put a patch in different folds.
    """
    keys_a, keys_b = patch_keys(run_a), patch_keys(run_b)
    if len(set(keys_a)) != len(keys_a) or sorted(keys_a) != sorted(keys_b):
        raise ValueError(f"{names[0]} and {names[1]} do not hold the same test patches")
    position = {key: i for i, key in enumerate(keys_b)}
    order = np.array([position[key] for key in keys_a], dtype=int)
    if not np.array_equal(run_a["fold"], run_b["fold"][order]):
        raise ValueError(f"{names[0]} and {names[1]} put the patches in other folds")
    return order


def load_aligned(path_a: Path, path_b: Path, key_b: str = "proba") -> dict:
    """Both files' probabilities on the same patches, in ``path_a``'s order.

    Run B's are its array ``key_b``; ``ValueError`` naming the file if it has none.
    """
    a, b = np.load(path_a), np.load(path_b)
    if key_b not in b.files:
        raise ValueError(f"{path_b} has no array {key_b!r} (it has {', '.join(b.files)})")
    order = order_like(a, b, (path_a, path_b))
    return {
        "fold": a["fold"],
        "patient": a["patient"].astype(str),
        "label": a["label"],
        "proba_a": a["proba"],
        "proba_b": b[key_b][order],
    }


def rates(proba: np.ndarray, label: np.ndarray, threshold: float) -> tuple[float, float]:
    """Sensitivity and specificity (NaN where a class is absent)."""
    predicted = proba >= threshold
    positive = label == 1
    sens = predicted[positive].mean() if positive.any() else np.nan
    spec = (~predicted[~positive]).mean() if (~positive).any() else np.nan
    return float(sens), float(spec)


def patient_rows(data: dict, threshold: float, fold: int | None) -> list[dict]:
    rows = []
    keep = np.ones(len(data["label"]), bool) if fold is None else data["fold"] == fold
    fold_idc = {k: data["label"][data["fold"] == k].sum() for k in np.unique(data["fold"])}
    for patient in np.unique(data["patient"][keep]):
        mine = keep & (data["patient"] == patient)
        label = data["label"][mine]
        patient_fold = data["fold"][mine][0]
        sens_a, spec_a = rates(data["proba_a"][mine], label, threshold)
        sens_b, spec_b = rates(data["proba_b"][mine], label, threshold)
        rows.append(
            {
                "patient": patient,
                "fold": int(patient_fold),
                "patches": int(mine.sum()),
                "idc_share": float(label.mean()),
                "share_of_fold_idc": float(label.sum() / max(fold_idc[patient_fold], 1)),
                "sens": (sens_a, sens_b),
                "spec": (spec_a, spec_b),
            }
        )
    return sorted(rows, key=lambda row: (row["fold"], -row["idc_share"]))


def table(rows: list[dict], names: tuple[str, str]) -> str:
    a, b = names
    lines = [
        f"| patient | fold | patches | IDC share | share of the fold's IDC | sensitivity {a} "
        f"| sensitivity {b} | specificity {a} | specificity {b} |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        cells = [f"{value:.2f}" for value in (*row["sens"], *row["spec"])]
        lines.append(
            f"| {row['patient']} | {row['fold']} | {row['patches']:,} | {row['idc_share']:.2f} "
            f"| {row['share_of_fold_idc']:.2f} | " + " | ".join(cells) + " |"
        )
    return "\n".join(lines)


def summary(rows: list[dict]) -> str:
    lines = []
    for label, low, high in [("all", 0.0, 1.01)] + [
        (f"IDC share {lo}-{hi:.1f}", lo, hi) for lo, hi in SHARE_BINS
    ]:
        chosen = [row for row in rows if low <= row["idc_share"] < high]
        sens = [row["sens"][1] - row["sens"][0] for row in chosen if not np.isnan(row["sens"][0])]
        spec = [row["spec"][1] - row["spec"][0] for row in chosen if not np.isnan(row["spec"][0])]
        if chosen:
            lines.append(
                f"{label}: {len(chosen)} patients, mean change per patient: sensitivity "
                f"{np.mean(sens):+.3f} ({len(sens)} with IDC), specificity {np.mean(spec):+.3f}"
                f" ({len(spec)} with non-IDC)"
            )
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("a", type=Path, help="predictions of the first run (.npz)")
    parser.add_argument("b", type=Path, help="predictions of the second run (.npz)")
    parser.add_argument("--fold", type=int, default=None, help="show one fold's patients only")
    parser.add_argument("--threshold", type=float, default=0.5)
    parser.add_argument(
        "--b-key", default="proba", help="the array of B's file to read (default: proba)"
    )
    args = parser.parse_args(argv)
    try:
        data = load_aligned(args.a, args.b, args.b_key)
    except (OSError, KeyError, ValueError) as exc:
        print(f"compare_patients: {exc}", file=sys.stderr)
        return 2
    rows = patient_rows(data, args.threshold, args.fold)
    print(table(rows, ("A", "B")))
    key = "" if args.b_key == "proba" else f" ({args.b_key})"
    print(f"\nA = {args.a}, B = {args.b}{key}, threshold {args.threshold}")
    print(summary(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
