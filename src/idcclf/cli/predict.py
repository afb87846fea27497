"""``idcclf predict``: print the IDC probability of PNG patches."""

from __future__ import annotations

import argparse
import itertools
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path

from .._format import plural
from ._common import (
    CLIError,
    add_skip_bad_files,
    add_smoothing,
    add_test_time_augmentation,
    add_threshold,
    check_finite,
    check_smoothing,
    check_threshold,
    library_errors,
    load_model_or_pretrained,
    predict_idc,
    read_png_files,
    split_model_argument,
    use_test_time_augmentation,
)
from ._types import existing_path


def add_parser(subparsers) -> None:
    """Register ``idcclf predict`` and its options."""
    parser = subparsers.add_parser(
        "predict",
        help="print the IDC probability of each PNG patch",
        description="Print the IDC probability of each PNG file given, or of every PNG "
        "under each folder given (searched recursively, in sorted order), then a summary "
        "line (on stderr, so that stdout stays a table). Patches smaller than 50x50 are "
        "padded with white, as in training. Without MODEL, the pretrained CancerNet "
        "bundled with idcclf is used.",
        usage="idcclf predict [-h] [--threshold T] [--skip-bad-files] [--tta] "
        "[--smooth RADIUS] [--scheduler ADDRESS] [MODEL] PATH [PATH ...]",
    )
    parser.add_argument(
        "items",
        type=existing_path,
        nargs="+",
        metavar="[MODEL] PATH",
        help="optional model file written by 'idcclf train' (joblib), then PNG files or "
        "folders of PNG files",
    )
    add_threshold(parser, "a patch is called IDC")
    add_skip_bad_files(parser)
    add_test_time_augmentation(parser)
    add_smoothing(parser)
    parser.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="run on the Dask scheduler at ADDRESS (e.g. tcp://host:8786), one task per "
        "patient: each PATH is then a patient folder (with 0/ and 1/ sub-folders) or a "
        "folder of them, and each patient's lines are printed as it finishes",
    )
    parser.set_defaults(run=run)


def collect_pngs(paths: list[Path]) -> list[Path]:
    """The PNG files named, and those under the folders named, in a stable order."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            try:
                found = sorted(p for p in path.rglob("*.png") if p.is_file())
            except OSError as exc:
                raise CLIError(f"{path}: cannot list this folder ({exc.strerror or exc})") from None
            if not found:
                raise CLIError(f"{path}: no PNG files in this folder")
            files += found
        else:
            files.append(path)
    return files


def run(args: argparse.Namespace) -> int:
    check_threshold(args.threshold)
    check_smoothing(args.smooth)
    model_path, paths = split_model_argument(args.items)
    if not paths:
        raise CLIError(f"{model_path}: no PNG files or folders given after MODEL")
    if args.scheduler is None:
        scored = score_here(args, model_path, paths)
    else:
        scored = score_on_scheduler(args, model_path, paths)
    print_predictions(scored, args.threshold)
    return 0


def print_predictions(scored: Iterable[tuple[Path, float]], threshold: float) -> None:
    """One ``probability, prediction, file`` line per patch, then the summary on stderr.

    The header waits for the first patch, so that an error before it prints nothing.
    """
    rows = iter(scored)
    first = next(rows, None)
    print("probability\tprediction\tfile", flush=True)
    n_patches = n_idc = 0
    for path, p in itertools.chain([] if first is None else [first], rows):
        called = p >= threshold
        print(f"{p:.4f}\t{'IDC' if called else 'no IDC'}\t{path}")
        n_patches, n_idc = n_patches + 1, n_idc + int(called)
    share = f" ({n_idc / n_patches:.1%})" if n_patches else ""
    print(
        f"{plural(n_patches, 'patch', 'patches')}: {n_idc} predicted IDC{share} "
        f"at threshold {threshold:g}",
        file=sys.stderr,
    )


def score_here(
    args: argparse.Namespace, model_path: Path | None, paths: list[Path]
) -> Iterator[tuple[Path, float]]:
    """Every PNG file named or found under ``paths``, with its IDC probability."""
    files = collect_pngs(paths)
    # Read before decoding, so that a name without a place fails at once.
    places = slide_places(files) if args.smooth else None
    patches, files = read_png_files(args, files)
    from ..standardize import normalizes_stains

    # The model after the patches: a bad file is reported without starting TensorFlow.
    model = use_test_time_augmentation(load_model_or_pretrained(model_path), args)
    model_name = model_path or "pretrained model"
    patients = None
    if normalizes_stains(model):
        need = f"{model_name}, which normalizes each patient's stains,"
        places = places or slide_places(files, need)
        patients = [places[path][0] for path in files]
    proba = predict_idc(model, patches, model_name, groups=patients)
    if args.smooth:
        proba = smoothed_by_place(proba, [places[path] for path in files], args.smooth)
    return zip(files, proba.tolist(), strict=True)


def slide_places(files: list[Path], need: str = "--smooth") -> dict[Path, tuple[str, int, int]]:
    """The patient and the ``x``, ``y`` slide position of every file, read from its name.

    ``need`` names what needs them, for the error on a name without them.
    """
    from ..datasets import parse_patch_filename

    places = {}
    for path in files:
        try:
            places[path] = parse_patch_filename(path)[:3]
        except ValueError as exc:
            raise CLIError(
                f"{path}: {need} needs the patient and the slide position in every file "
                f"name ({exc})"
            ) from None
    return places


def smoothed_by_place(proba, places: list[tuple[str, int, int]], radius: int):
    """``proba`` averaged over slide neighbours; ``places`` as from :func:`slide_places`."""
    from ..slides import smooth_probabilities

    patients = [patient for patient, _, _ in places]
    coords = [(x, y) for _, x, y in places]
    return smooth_probabilities(proba, coords, patients, radius=radius)


def score_on_scheduler(
    args: argparse.Namespace, model_path: Path | None, paths: list[Path]
) -> Iterator[tuple[Path, float]]:
    """``score_here`` on a Dask cluster, one task per patient (``idcclf.predict_patients``).

    The patients' lines come as their tasks finish. Errors are reported as on the local
    path: the library's through ``library_errors``, NaN probabilities by ``check_finite``.
    """
    if args.skip_bad_files:
        raise CLIError(
            "--skip-bad-files does not apply with --scheduler: a bad file stops its "
            "patient's task; fix or remove it, or predict here without --scheduler"
        )
    try:
        from distributed import Client
    except ImportError:
        raise CLIError("--scheduler needs dask.distributed: pip install 'idcclf[dask]'") from None
    model = use_test_time_augmentation(load_model_or_pretrained(model_path), args)
    with library_errors(args, f"cannot reach the scheduler at {args.scheduler}"):
        client = Client(args.scheduler)
    return _patients_scored(args, client, model, model_path or "pretrained model", paths)


def _patients_scored(args, client, model, model_name, paths) -> Iterator[tuple[Path, float]]:
    from ..distributed import predict_patients

    with client, library_errors(args):
        for result in predict_patients(model, paths, client=client):
            proba = check_finite(result.idc_proba, model_name)
            parent = Path(result.folder).parent
            if args.smooth:
                files = [parent / name for name in result.filenames]
                places = slide_places(files)
                proba = smoothed_by_place(proba, [places[path] for path in files], args.smooth)
            for name, p in zip(result.filenames, proba.tolist(), strict=True):
                yield parent / name, p
