"""``idcclf evaluate``: metrics, plots and a per-patient table of a saved model."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from .._format import format_value, plural
from ._common import (
    add_data_arguments,
    add_smoothing,
    add_test_time_augmentation,
    add_threshold,
    check_model_path,
    check_smoothing,
    check_threshold,
    load_data,
    load_model,
    predict_idc,
    smoothed,
    use_test_time_augmentation,
)
from ._output import RunOutput, add_overwrite
from ._patients import (
    checked_report,
    interval_line,
    model_patients,
    print_intervals,
    warn_if_unknown,
    with_intervals,
)

DEFAULT_OUT = Path("idcclf-eval")
#: Everything evaluate writes into --out.
OUTPUTS = (
    "metrics.json",
    "report.txt",
    "confusion_matrix.png",
    "roc_curve.png",
    "pr_curve.png",
    "patients.csv",
    "patients.md",
    "heatmaps",
)


def add_parser(subparsers) -> None:
    """Register ``idcclf evaluate`` and its options."""
    parser = subparsers.add_parser(
        "evaluate",
        help="evaluate a saved model on an IDC patch tree: metrics, plots, per-patient table",
        description="Predict every patch of an IDC patch tree with a model saved by 'idcclf "
        "train' and write to --out: metrics.json and report.txt (accuracy, balanced "
        "accuracy, sensitivity, specificity, precision, F1, ROC and PR AUC, confusion "
        "matrix), confusion_matrix.png, roc_curve.png, pr_curve.png, and patients.csv and "
        "patients.md (one row per patient). Evaluate on patients the model was not trained "
        "on: 'idcclf train' prints which patients it held out for its test; a warning "
        "names the evaluated patients the model was trained or validated on, and the "
        "figures without them are reported beside the others.",
    )
    parser.add_argument(
        "model", type=Path, metavar="MODEL", help="model file written by 'idcclf train' (joblib)"
    )
    add_data_arguments(parser)
    parser.add_argument(
        "--patients",
        nargs="+",
        metavar="ID",
        help="evaluate only these patients (folder names under --data)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=DEFAULT_OUT,
        help=f"output folder, created if missing (default: ./{DEFAULT_OUT})",
    )
    add_overwrite(parser)
    add_threshold(parser, "a patch is called IDC")
    add_test_time_augmentation(parser)
    add_smoothing(parser)
    parser.add_argument(
        "--heatmaps",
        action="store_true",
        help="also draw one heatmap per patient in <out>/heatmaps/",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    check_threshold(args.threshold)
    check_smoothing(args.smooth)
    check_model_path(args.model)
    output = RunOutput(args.out, OUTPUTS, overwrite=args.overwrite)
    started = time.perf_counter()
    data, source = load_data(args)
    model = use_test_time_augmentation(load_model(args.model), args)
    proba = smoothed(predict_idc(model, data.data, args.model, groups=data.groups), data, args)

    from ..slides import patient_table

    patients = model_patients(model, args.model)
    warn_if_unknown(patients, "the patients evaluated are new to it")
    report = checked_report(data.target, proba, data.groups, patients, threshold=args.threshold)
    with_intervals(report, data.target, proba, data.groups)
    rows = patient_table(data.groups, data.target, proba, threshold=args.threshold)
    with output:
        write_outputs(output, args, data, proba, report, rows, source)
    print(f"\n{plural(len(proba), 'patch', 'patches')}, threshold {args.threshold:g}:")
    print_headline(report)
    print_intervals(report, "evaluated")
    if report.get("without_training_patients"):
        print_intervals(report["without_training_patients"], "without those trained on")
    print(f"\nsaved in {args.out}: {', '.join(path.name for path in output.written())}")
    print(f"done in {time.perf_counter() - started:.0f} s")
    return 0


def write_outputs(output: RunOutput, args, data, proba, report, rows, source: str) -> None:
    """Write the report, plots, per-patient tables and (with --heatmaps) heatmaps."""
    from .._io import atomic_write_text
    from ..metrics import report_to_json
    from ..plots import plot_confusion_matrix, plot_pr_curve, plot_roc_curve
    from ..slides import plot_heatmap, to_csv, to_markdown

    y, threshold = data.target, args.threshold
    facts = {
        "model": str(args.model),
        "data": source,
        "n_patients": len(rows),
        "smoothing_radius": args.smooth,
    }
    atomic_write_text(output / "metrics.json", report_to_json({**report, **facts}))
    atomic_write_text(output / "report.txt", report_text(args, source, report, rows))
    plot_confusion_matrix(report, output / "confusion_matrix.png")
    if 0 < y.sum() < len(y):
        plot_roc_curve(y, proba, output / "roc_curve.png", threshold=threshold)
        plot_pr_curve(y, proba, output / "pr_curve.png", threshold=threshold)
    else:
        print("skipped roc_curve.png and pr_curve.png: the data has a single class")
    to_csv(rows, output / "patients.csv")
    to_markdown(rows, output / "patients.md")
    if args.heatmaps:
        (output / "heatmaps").mkdir()
        for row in rows:
            mine = data.groups == row["patient"]
            plot_heatmap(
                data.data[mine],
                data.coords[mine],
                proba[mine],
                y[mine],
                output / "heatmaps" / f"{row['patient']}.png",
                threshold=threshold,
                title=f"patient {row['patient']}",
            )


def report_text(args, source: str, report: dict, rows: list[dict]) -> str:
    """report.txt: the report, its intervals, the check of the model's training patients
    (and the report without them) and the per-patient table."""
    from ..metrics import format_report
    from ..slides import to_markdown

    parts = [
        f"model: {args.model}\ndata: {source}\n{_smoothing_line(args.smooth)}\n"
        f"{_overlap_line(report)}\n",
        f"{format_report(report)}\n{interval_line(report['patient_bootstrap'])}\n",
    ]
    clean = report.get("without_training_patients")
    if clean is not None:
        parts.append(
            f"without the patients the model was trained on "
            f"({plural(clean['n_patients'], 'patient')}, "
            f"{plural(clean['n_samples'], 'patch', 'patches')}):\n\n{format_report(clean)}\n"
            f"{interval_line(clean['patient_bootstrap'])}\n"
        )
    parts.append(f"per patient:\n\n{to_markdown(rows)}")
    return "\n".join(parts)


def _smoothing_line(radius: int) -> str:
    if radius == 0:
        return "probabilities: each patch on its own"
    return (
        f"probabilities: each patch's averaged with its patient's patches at most "
        f"{plural(radius, 'grid cell')} away (--smooth {radius})"
    )


def _overlap_line(report: dict) -> str:
    """What report.txt says of the patients the model was trained on."""
    shared = report["training_patients_in_test"]
    if shared is None:
        return "patients the model was trained on: not recorded with the model (unchecked)"
    if not shared:
        return "patients the model was trained on: none of them is evaluated here"
    left = "" if report["without_training_patients"] else "; no patient is left without them"
    return (
        "evaluated patients the model was trained on (training or validation): "
        f"{' '.join(shared)}; the figures below include them{left}"
    )


def print_headline(report: dict) -> None:
    """The headline figures; beside them, those without the model's training patients."""
    from ..metrics import HEADLINE

    clean = report.get("without_training_patients")
    if clean is not None:
        print(f"  {'':<18} {'all':<8} without the patients the model was trained on")
    for name in HEADLINE:
        line = f"  {name:<18} {format_value(report[name], 4)}"
        if clean is not None:
            line = f"{line:<29} {format_value(clean[name], 4)}"
        print(line)
    (tn, fp), (fn, tp) = report["confusion_matrix"]
    print(f"  confusion matrix   TN {tn}  FP {fp}  FN {fn}  TP {tp}")
