"""Score shipped models on their validation patients, the ones no weight was fitted to.

Usage::

    python benchmarks/pretrained_validation.py [--folder DIR ...] [--previous REV ...]
        [--data ROOT --data ROOT] [--resamples 1000] [--out RESULT.json]

The shipped model (``load_pretrained()``) trains on every patient of both
``../shared/data`` roots except its validation patients (``validation_groups_``),
which only reported a validation loss at the end of each epoch: nothing of the fit was
chosen on them (no early stopping, a fixed number of epochs), though the recipe was
chosen by cross-validation over all patients, these included. This scores each model given on
those patients: each ``--folder`` written by ``save_pretrained`` (the package's
model when none is given), then the model shipped at git revision ``--previous REV`` (read
with ``git show``, so a retrained model can be compared with the one it replaces).
Every model given must share its validation patients. Printed: balanced accuracy,
sensitivity, specificity, F1 and ROC AUC at the threshold 0.5, the 95 % interval of
balanced accuracy and ROC AUC from resampling patients, and, for each model after the
first, its difference from the first with a paired patient interval (the same
patients drawn for both models in each resample). A few patients give wide
intervals; the cross-validation in ``docs/evaluation.md`` is the estimate of the
recipe, this is one look at the weights that ship.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
from cv_accuracy import DEFAULT_ROOTS  # noqa: E402

SHIPPED = "src/idcclf/_data/pretrained"
HEADLINE = ("balanced_accuracy", "sensitivity", "specificity", "f1", "roc_auc")
INTERVALS = ("balanced_accuracy", "roc_auc")


def checkout_model(rev: str, into: Path, error) -> Path:
    """The shipped model's files at git revision ``rev``, copied into ``into``."""
    from idcclf.pretrained import CONFIG, WEIGHTS

    into.mkdir(parents=True)
    for name in (CONFIG, WEIGHTS):
        try:
            done = subprocess.run(
                ["git", "show", f"{rev}:{SHIPPED}/{name}"], cwd=REPO, capture_output=True
            )
        except FileNotFoundError:
            error(f"--previous {rev} reads the model with git, which is not installed")
        if done.returncode != 0:
            error(f"--previous {rev}: git show found no {SHIPPED}/{name}")
        (into / name).write_bytes(done.stdout)
    return into


def paired_difference(y, proba_a, proba_b, groups, n_resamples: int, seed: int = 0) -> dict:
    """Balanced accuracy and ROC AUC of b minus a, with 95 % intervals over patients.

    The resamples are those of ``patient_bootstrap`` with the same seed, shared by both
    models, so each row compares them on the same patients.
    """
    from idcclf._resample import patient_draw_weights, weighted_metrics

    positive = np.asarray(y) == 1
    patients, patient_of = np.unique(groups, return_inverse=True)
    weights = patient_draw_weights(len(patients), n_resamples, seed)
    a, b = (
        weighted_metrics(INTERVALS, positive, proba >= 0.5, proba, patient_of, weights)
        for proba in (proba_a, proba_b)
    )
    result = {}
    for name in INTERVALS:
        change = b[name] - a[name]  # NaN where a resample leaves the metric undefined
        resampled = change[1:][~np.isnan(change[1:])]
        if np.isnan(change[0]) or not resampled.size:
            result[name] = dict.fromkeys(("estimate", "low", "high", "higher_in_resamples"), np.nan)
            continue
        result[name] = {
            "estimate": float(change[0]),
            "low": float(np.percentile(resampled, 2.5)),
            "high": float(np.percentile(resampled, 97.5)),
            "higher_in_resamples": float(np.mean(resampled > 0)),
        }
    return result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--folder", type=Path, action="append", default=[])
    parser.add_argument("--previous", action="append", default=[], metavar="REV")
    parser.add_argument("--data", type=Path, action="append", default=None)
    parser.add_argument("--resamples", type=int, default=1000)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    if args.resamples < 1:
        parser.error(f"--resamples must be at least 1, got {args.resamples}")

    from idcclf import load_idc, load_pretrained
    from idcclf._io import atomic_write_text
    from idcclf.metrics import evaluation_report, patient_bootstrap
    from idcclf.pretrained import PRETRAINED_DIR

    with tempfile.TemporaryDirectory() as scratch:
        named = [(str(folder), folder) for folder in args.folder] or [("shipped", PRETRAINED_DIR)]
        named += [
            (f"shipped at {rev}", checkout_model(rev, Path(scratch) / f"rev{i}", parser.error))
            for i, rev in enumerate(args.previous)
        ]
        models = [(name, load_pretrained(folder)) for name, folder in named]
    validated = [
        sorted(map(str, model.validation_groups_ if model.validation_groups_ is not None else []))
        for _, model in models
    ]
    patients = validated[0]
    if not patients:
        parser.error(f"{models[0][0]} records no validation patients")
    for (name, _), theirs in zip(models, validated, strict=True):
        if theirs != patients:
            parser.error(f"{name} was validated on other patients than {models[0][0]}")
    roots = [str(root) for root in args.data or DEFAULT_ROOTS]
    bunch = load_idc(roots, patients=patients)
    y, groups = bunch.target, np.asarray(bunch.groups)
    print(
        f"{len(patients)} validation patients, {len(y):,} patches, {y.mean():.1%} IDC "
        f"({' '.join(patients)})"
    )
    record = {
        "command": " ".join(["python", "benchmarks/pretrained_validation.py", *sys.argv[1:]]),
        "patients": patients,
        "n_patches": int(len(y)),
        "models": [],
    }
    probas = []
    header = " | ".join(["model", *HEADLINE, "BAC 95 %", "ROC AUC 95 %"])
    print(f"| {header} |")
    print("|" + "---|" * (len(HEADLINE) + 3))
    for name, model in models:
        # groups: a model that normalizes stains per patient needs them; others ignore them.
        proba = model.predict_proba(bunch.data, groups=groups)[:, 1]
        probas.append(proba)
        report = evaluation_report(y, proba)
        ci = patient_bootstrap(y, proba, groups, metrics=INTERVALS, n_resamples=args.resamples)
        cells = [f"{report[key]:.3f}" for key in HEADLINE]
        cells += [f"[{ci[key]['low']:.3f}, {ci[key]['high']:.3f}]" for key in INTERVALS]
        print(f"| {name} | " + " | ".join(cells) + " |")
        record["models"].append(
            {
                "name": name,
                "params": model.get_params(),
                "command": model.pretrained_info_.get("command"),
                "report": {key: report[key] for key in HEADLINE},
                "intervals": {key: ci[key] for key in INTERVALS},
            }
        )
    for (name, _), proba, entry in zip(models[1:], probas[1:], record["models"][1:], strict=True):
        change = paired_difference(y, probas[0], proba, groups, args.resamples)
        entry["minus_first"] = change
        print(
            f"{name} minus {models[0][0]}: "
            + "; ".join(
                f"{key} {value['estimate']:+.3f} [{value['low']:+.3f}, {value['high']:+.3f}], "
                f"higher in {value['higher_in_resamples']:.0%} of resamples"
                for key, value in change.items()
            )
        )
    if args.out is not None:
        atomic_write_text(args.out, json.dumps(record, indent=2, default=str))
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
