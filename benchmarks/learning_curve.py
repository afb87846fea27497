"""Learning curve: cross-validated figures against the number of training patients.

Reads the JSON of ``benchmarks/cv_accuracy.py`` runs that differ only in
``--train-patients`` (one file per size, the full training folds included), or, with
``--by patches``, only in ``--train-fraction`` (the same patients, a share of their
patches), keeps the folds every file has, and prints a Markdown table of balanced
accuracy, ROC AUC and PR AUC (mean +/- std over those folds) per size, with each fold's
balanced accuracy (the folds' test patients are the same at every size, so they pair
up); ``--plot`` also draws it.

Usage::

    python benchmarks/cv_accuracy.py --train-patients 20 --max-folds 2 --out lc20.json
    python benchmarks/cv_accuracy.py --train-patients 40 --max-folds 2 --out lc40.json
    python benchmarks/learning_curve.py lc20.json lc40.json cv_full.json \\
        [--plot docs/img/learning_curve.png] [--by patients|patches]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

COLUMNS = ("balanced_accuracy", "roc_auc", "pr_auc")
#: Janowczyk & Madabhushi 2016, the best published balanced accuracy on this data set.
PUBLISHED_BAC = 0.847


def curve(records: list[dict], by: str = "patients") -> list[dict]:
    """One row per record, sorted by training ``by`` (patients or patches), on shared folds."""
    shared = set.intersection(*({f["fold"] for f in r["folds"]} for r in records))
    if not shared:
        raise ValueError("the runs share no fold: run them on the same --folds")
    rows = []
    for record in records:
        folds = [f for f in record["folds"] if f["fold"] in shared]
        row = {
            "train_patients": float(np.mean([f["n_train_patients"] for f in folds])),
            "train_patches": float(np.mean([f["n_train_patches"] for f in folds])),
            "folds": sorted(f["fold"] for f in folds),
        }
        for m in COLUMNS:
            values = [f[m] for f in folds]
            row[m] = (float(np.mean(values)), float(np.std(values)))
        row["balanced_accuracy_per_fold"] = [
            f["balanced_accuracy"] for f in sorted(folds, key=lambda f: f["fold"])
        ]
        rows.append(row)
    return sorted(rows, key=lambda row: row[f"train_{by}"])


def markdown(rows: list[dict]) -> str:
    lines = [
        "| training patients | training patches | folds | BAC | ROC AUC | PR AUC | BAC per fold |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        cells = [f"{row[m][0]:.3f} ± {row[m][1]:.3f}" for m in COLUMNS]
        cells.append(" / ".join(f"{v:.3f}" for v in row["balanced_accuracy_per_fold"]))
        folds = ",".join(map(str, row["folds"]))
        lines.append(
            f"| {row['train_patients']:.0f} | {row['train_patches']:.0f} | {folds} | "
            + " | ".join(cells)
            + " |"
        )
    return "\n".join(lines)


def plot(rows: list[dict], path: Path, by: str = "patients") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from idcclf._io import atomic_path

    fig, ax = plt.subplots(figsize=(5, 3.4))
    n = [row[f"train_{by}"] for row in rows]
    for m, label in (("balanced_accuracy", "balanced accuracy"), ("roc_auc", "ROC AUC")):
        ax.errorbar(
            n,
            [r[m][0] for r in rows],
            yerr=[r[m][1] for r in rows],
            marker="o",
            capsize=3,
            label=label,
        )
    ax.axhline(PUBLISHED_BAC, color="grey", linestyle="--", linewidth=1)
    label = f"published BAC {PUBLISHED_BAC}"
    ax.annotate(
        label, (n[-1], PUBLISHED_BAC), xytext=(0, -10), textcoords="offset points", ha="right",
        fontsize=8, color="grey",
    )  # fmt: skip
    # Doubling the data is the step that matters: a log axis shows it evenly.
    ax.set_xscale("log")
    ax.set_xticks(n, [f"{v:.0f}" for v in n])
    ax.minorticks_off()
    ax.set_xlabel(f"training {by} per fold (log scale)")
    ax.set_ylabel("unseen test patients")
    ax.set_title(f"Patient-grouped CV (folds {','.join(map(str, rows[0]['folds']))})")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", type=Path, help="cv_accuracy.py JSON files")
    parser.add_argument("--plot", type=Path, default=None)
    parser.add_argument(
        "--by",
        choices=("patients", "patches"),
        default="patients",
        help="the size the runs differ in (patches: runs of --train-fraction)",
    )
    args = parser.parse_args(argv)
    records = []
    for path in args.runs:
        try:
            records.append(json.loads(path.read_text()))
        except (OSError, ValueError) as exc:
            parser.error(f"cannot read {path}: {exc}")
        if not records[-1].get("folds"):
            parser.error(f"{path} holds no finished fold")
    try:
        rows = curve(records, args.by)
    except ValueError as exc:
        parser.error(str(exc))
    print(markdown(rows))
    if args.plot:
        plot(rows, args.plot, args.by)
    return 0


if __name__ == "__main__":
    sys.exit(main())
