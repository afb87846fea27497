"""``idcclf heatmap``: one patient's tissue, predicted IDC map and true IDC map."""

from __future__ import annotations

import argparse
from pathlib import Path

from .._format import format_value, plural
from ._common import (
    CLIError,
    add_skip_bad_files,
    add_smoothing,
    add_test_time_augmentation,
    add_threshold,
    check_model_path,
    check_smoothing,
    check_threshold,
    load_data,
    load_model_or_pretrained,
    predict_idc,
    smoothed,
    use_test_time_augmentation,
)
from ._output import RunOutput, add_overwrite
from ._patients import check_one_patient, model_patients


def add_parser(subparsers) -> None:
    """Register ``idcclf heatmap`` and its options."""
    parser = subparsers.add_parser(
        "heatmap",
        help="draw a patient's tissue with the predicted and the true IDC regions",
        description="Predict every patch of one patient folder (<patient>/0/*.png and "
        "<patient>/1/*.png) with a model saved by 'idcclf train', place the patches at the "
        "x, y coordinates in their file names, and draw side by side the rebuilt tissue, "
        "the predicted IDC probability map and the ground-truth IDC map as a PNG. Without "
        "MODEL, the pretrained CancerNet bundled with idcclf is used. A warning says so when "
        "the patient is one the model was trained or validated on.",
        usage="idcclf heatmap [-h] [--out FILE.png] [--overwrite] [--threshold T] "
        "[--skip-bad-files] [--tta] [--smooth RADIUS] [MODEL] PATIENT_DIR",
    )
    parser.add_argument(
        "items",
        type=Path,
        nargs="+",
        metavar="[MODEL] PATIENT_DIR",
        help="optional model file written by 'idcclf train' (joblib; default: the bundled "
        "pretrained CancerNet), then one patient's folder holding 0/ and 1/ subfolders",
    )
    parser.add_argument(
        "--out",
        type=Path,
        help="PNG file to write (default: heatmap_<patient>.png in the current folder)",
    )
    add_overwrite(parser, "--out")
    add_threshold(parser, "a patch is outlined as IDC")
    add_skip_bad_files(parser)
    add_test_time_augmentation(parser)
    add_smoothing(parser)
    parser.set_defaults(run=run)


def patient_folder(items: list[Path]) -> tuple[Path | None, Path]:
    """The optional MODEL and the patient folder, checked."""
    if len(items) > 2:
        raise CLIError("expected [MODEL] PATIENT_DIR, got more than two paths")
    model_path = items[0] if len(items) == 2 else None
    if model_path is not None:
        check_model_path(model_path)
    patient_dir = items[-1]
    if not patient_dir.is_dir():
        raise CLIError(f"{patient_dir}: no such patient folder")
    if not any((patient_dir / label).is_dir() for label in ("0", "1")):
        raise CLIError(
            f"{patient_dir}: not a patient folder (expected 0/ and 1/ subfolders of PNG patches)"
        )
    return model_path, patient_dir


def run(args: argparse.Namespace) -> int:
    """Predict one patient's patches and draw the tissue, predicted and true IDC maps."""
    check_threshold(args.threshold)
    check_smoothing(args.smooth)
    model_path, patient_dir = patient_folder(args.items)
    patient = patient_dir.resolve().name
    out = args.out if args.out is not None else Path(f"heatmap_{patient}.png")
    if out.is_dir():
        raise CLIError(f"--out {out}: is a directory; give the PNG file to write")
    if out.exists() and not args.overwrite:
        raise CLIError(f"--out {out}: exists; pass --overwrite to replace it")
    output = RunOutput(out.parent, [out.name], overwrite=True)
    data, _ = load_data(
        args, [patient_dir.resolve().parent], patients=[patient], cache=False, announce=False
    )
    model = use_test_time_augmentation(load_model_or_pretrained(model_path), args)
    check_one_patient(patient, model_patients(model, model_path))
    model_name = model_path or "pretrained model"
    proba = smoothed(predict_idc(model, data.data, model_name, groups=data.groups), data, args)

    from ..slides import patient_table, plot_heatmap

    with output:
        plot_heatmap(
            data.data,
            data.coords,
            proba,
            data.target,
            output / out.name,
            threshold=args.threshold,
            title=f"patient {patient}",
        )
    (row,) = patient_table(data.groups, data.target, proba, threshold=args.threshold)
    print(
        f"patient {patient}: {plural(row['n_patches'], 'patch', 'patches')}, "
        f"{row['n_idc_true']} IDC, {row['n_idc_pred']} predicted IDC (threshold "
        f"{args.threshold:g}), mean probability {row['mean_proba']:.3f}, "
        f"sensitivity {format_value(row['sensitivity'])}, "
        f"specificity {format_value(row['specificity'])}"
    )
    print(f"saved {out}")
    return 0
