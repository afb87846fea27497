"""``idcclf evaluate``: metrics, plots and a per-patient table of a saved model."""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

from ._common import CLIError, add_test_time_augmentation

DEFAULT_OUT = Path("idcclf-eval")


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "evaluate",
        help="evaluate a saved model on an IDC patch tree: metrics, plots, per-patient table",
        description="Predict every patch of an IDC patch tree with a model saved by 'idcclf "
        "train' and write to --out: metrics.json and report.txt (accuracy, balanced "
        "accuracy, sensitivity, specificity, precision, F1, ROC and PR AUC, confusion "
        "matrix), confusion_matrix.png, roc_curve.png, pr_curve.png, and patients.csv and "
        "patients.md (one row per patient). Evaluate on patients the model was not trained "
        "on: 'idcclf train' prints which patients it held out for its test.",
    )
    parser.add_argument(
        "model", type=Path, metavar="MODEL", help="model file written by 'idcclf train' (joblib)"
    )
    parser.add_argument(
        "--data",
        type=Path,
        help="root of <patient>/<0|1>/*.png (default: the bundled sample)",
    )
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
    parser.add_argument(
        "--threshold",
        type=float,
        default=0.5,
        help="probability at or above which a patch is called IDC (default: 0.5)",
    )
    add_skip_bad_files(parser)
    add_test_time_augmentation(parser)
    parser.add_argument(
        "--heatmaps",
        action="store_true",
        help="also draw one heatmap per patient in <out>/heatmaps/",
    )
    parser.set_defaults(run=run)


def add_skip_bad_files(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--skip-bad-files",
        action="store_true",
        help="leave out unreadable PNGs and PNGs whose names do not follow "
        "<patient>_idx5_x<X>_y<Y>_class<0|1>.png, with a warning, instead of stopping",
    )


def load_error(exc: BaseException) -> CLIError:
    """A one-line CLIError for a loader error, its advice put in command-line terms."""
    return CLIError(one_line(exc).replace("pass on_error='skip'", "pass --skip-bad-files"))


def check_threshold(threshold: float) -> None:
    if not 0.0 <= threshold <= 1.0:
        raise CLIError(f"--threshold {threshold} must be in [0, 1]")


def check_model_path(path: Path) -> None:
    if not path.exists():
        raise CLIError(f"{path}: no such model file")
    if not path.is_file():
        raise CLIError(f"{path}: the model must be a file written by 'idcclf train'")


def one_line(exc: BaseException) -> str:
    """The message of ``exc`` on one line, for a CLIError."""
    return " ".join(str(exc).split()) or type(exc).__name__


def run(args: argparse.Namespace) -> int:
    check_threshold(args.threshold)
    check_model_path(args.model)
    if args.out.exists() and not args.out.is_dir():
        raise CLIError(f"--out {args.out}: exists and is not a directory")
    if args.data is not None and not args.data.is_dir():
        raise CLIError(f"--data {args.data}: no such directory")

    from ._common import load_model, use_test_time_augmentation

    started = time.perf_counter()
    model = use_test_time_augmentation(load_model(args.model), args)

    from ..datasets import load_idc, load_sample

    on_error = "skip" if args.skip_bad_files else "raise"
    try:
        if args.data is None:
            data = load_sample(patients=args.patients, on_error=on_error)
        else:
            data = load_idc(args.data, patients=args.patients, on_error=on_error)
    except (ValueError, OSError, MemoryError) as exc:
        raise load_error(exc) from None
    source = "bundled sample" if args.data is None else str(args.data)
    n_patients = len(set(data.groups))
    print(
        f"data: {source}: {len(data.target)} patches, {n_patients} patients, "
        f"{int(data.target.sum())} IDC"
    )

    from .._io import atomic_write_text
    from ..metrics import HEADLINE, evaluation_report, format_report, report_to_json
    from ..plots import plot_confusion_matrix, plot_pr_curve, plot_roc_curve
    from ..slides import patient_table, plot_heatmap, to_csv, to_markdown

    try:
        proba = model.predict_proba(data.data)[:, -1]
    except ValueError as exc:  # e.g. a model trained on patches of another shape
        raise CLIError(f"{args.model}: cannot predict these patches ({one_line(exc)})") from None
    y = data.target
    report = evaluation_report(y, proba, threshold=args.threshold)
    rows = patient_table(data.groups, y, proba, threshold=args.threshold)

    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    written = [
        atomic_write_text(
            out / "metrics.json",
            report_to_json(
                {**report, "model": str(args.model), "data": source, "n_patients": n_patients}
            ),
        ),
        atomic_write_text(
            out / "report.txt",
            f"model: {args.model}\ndata: {source}\n\n{format_report(report)}\n"
            f"per patient:\n\n{to_markdown(rows)}",
        ),
        plot_confusion_matrix(report, out / "confusion_matrix.png"),
    ]
    if 0 < y.sum() < len(y):
        written.append(plot_roc_curve(y, proba, out / "roc_curve.png", threshold=args.threshold))
        written.append(plot_pr_curve(y, proba, out / "pr_curve.png", threshold=args.threshold))
    else:
        print("skipped roc_curve.png and pr_curve.png: the data has a single class")
    to_csv(rows, out / "patients.csv")
    to_markdown(rows, out / "patients.md")
    written += [out / "patients.csv", out / "patients.md"]
    if args.heatmaps:
        (out / "heatmaps").mkdir(exist_ok=True)
        for row in rows:
            mine = data.groups == row["patient"]
            plot_heatmap(
                data.data[mine],
                data.coords[mine],
                proba[mine],
                y[mine],
                out / "heatmaps" / f"{row['patient']}.png",
                threshold=args.threshold,
                title=f"patient {row['patient']}",
            )
        written.append(out / "heatmaps")

    print(f"\n{len(y)} patches, threshold {args.threshold:g}:")
    for name in HEADLINE:
        value = report[name]
        print(f"  {name:<18} {'n/a' if math.isnan(value) else f'{value:.4f}'}")
    (tn, fp), (fn, tp) = report["confusion_matrix"]
    print(f"  confusion matrix   TN {tn}  FP {fp}  FN {fn}  TP {tp}")
    print(f"\nsaved in {out}: {', '.join(Path(p).name for p in written)}")
    print(f"done in {time.perf_counter() - started:.0f} s")
    return 0
