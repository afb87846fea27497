"""What the subcommands share: reading patch data, loading models, starting TensorFlow.

Every command that reads patches goes through :func:`load_data` (IDC trees) or
:func:`read_png_files` (loose PNG files), so ``--data`` and ``--skip-bad-files`` mean
the same everywhere and loader errors reach the user the same way.
"""

from __future__ import annotations

import argparse
import time
import warnings
from collections.abc import Sequence
from pathlib import Path

from .._format import plural
from ._errors import CLIError, library_errors, one_line

__all__ = ["CLIError", "library_errors", "one_line"]

#: Folders written by ``idcclf split``; training/ and testing/ mark its output.
SPLIT_PARTS = ("training", "validation", "testing")


# ----------------------------------------------------------------------------- data


def add_data_arguments(parser: argparse.ArgumentParser, *, several: bool = True) -> None:
    """``--data`` (repeatable when ``several``) and ``--skip-bad-files``."""
    if several:
        parser.add_argument(
            "--data",
            metavar="DIR",
            type=Path,
            action="append",
            help="root of <patient>/<0|1>/*.png (default: the bundled sample); give it "
            "several times to use several roots together",
        )
    add_skip_bad_files(parser)


def add_skip_bad_files(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--skip-bad-files",
        action="store_true",
        help="leave out unreadable PNGs (and, in patch trees, PNGs whose names do not "
        "follow <patient>_idx5_x<X>_y<Y>_class<0|1>.png), with a warning, instead of "
        "stopping",
    )


def split_layout(root: Path) -> dict[str, Path] | None:
    """The parts of ``idcclf split``'s output at ``root``, or None for another layout.

    training/ and testing/ must be there; validation/ is optional.
    """
    parts = {name: root / name for name in SPLIT_PARTS if (root / name).is_dir()}
    return parts if {"training", "testing"} <= parts.keys() else None


def check_data_roots(roots: Sequence[Path]) -> None:
    """Refuse a missing ``--data`` folder, or ``idcclf split``'s output as one tree."""
    for root in roots:
        if not root.exists():
            raise CLIError(f"--data {root}: no such directory")
        if not root.is_dir():
            raise CLIError(f"--data {root}: not a directory")
        if split_layout(root) is not None:
            raise CLIError(
                f"--data {root} holds the output of 'idcclf split' (training/, "
                f"validation/, testing/): pass the parts to use, e.g. --data {root / 'testing'}"
            )


def load_data(
    args: argparse.Namespace,
    roots: Sequence[Path] | None = None,
    *,
    announce: bool = True,
    **options,
):
    """Load the patches of ``roots`` (default ``--data``; none: the bundled sample).

    ``options`` go to ``load_idc`` (``--patients`` is passed when the command has it);
    bad files are skipped with ``--skip-bad-files``. Loader errors become a CLIError.
    Returns the Bunch and a short name of the source; with ``announce`` prints its size.
    """
    roots = list(args.data or []) if roots is None else list(roots)
    check_data_roots(roots)
    from ..datasets import load_idc, load_sample

    options.setdefault("patients", getattr(args, "patients", None))
    options["on_error"] = "skip" if args.skip_bad_files else "raise"
    # A cold decode of a large tree takes a minute: say how far it is (on stderr).
    options.setdefault("verbose", 0 if getattr(args, "quiet", False) else 1)
    started = time.perf_counter()
    with library_errors(args):
        if not roots:
            data = load_sample(**options)
        else:
            data = load_idc(roots[0] if len(roots) == 1 else roots, **options)
    source = "bundled sample" if not roots else ", ".join(map(str, roots))
    if announce:
        print(
            f"data: {source}: {describe(data.target, data.groups)} "
            f"({time.perf_counter() - started:.1f} s to load)",
            flush=True,
        )
    return data, source


def describe(y, groups) -> str:
    """``"2400 patches, 40 patients, 682 IDC"``."""
    return (
        f"{plural(len(y), 'patch', 'patches')}, {plural(len(set(groups)), 'patient')}, "
        f"{int(sum(y))} IDC"
    )


def require_both_classes(y, where: str) -> None:
    """Refuse to train on patches of a single class, saying which class it is."""
    labels = sorted({int(label) for label in y})
    if len(labels) < 2:
        kind = "IDC (1)" if labels == [1] else "no IDC (0)"
        raise CLIError(
            f"{where}: every patch is {kind}; training needs patches of both classes "
            "(give more patients with --data)"
        )


def read_png_files(args: argparse.Namespace, files: list[Path]):
    """Decode loose PNG files; with ``--skip-bad-files`` unreadable ones are left out.

    Returns the patches and the files they come from.
    """
    from ..datasets import load_patches

    try:
        return load_patches(files), files
    except ValueError as exc:
        if not args.skip_bad_files:
            raise CLIError(
                f"{one_line(exc)}; pass --skip-bad-files to leave bad files out"
            ) from None
    # Decoding one file at a time tells every bad file apart, at no cost when none is bad.
    good, bad = [], []
    for path in files:
        try:
            load_patches([path], n_jobs=1)
            good.append(path)
        except ValueError as exc:
            bad.append(one_line(exc))
    if not good:
        raise CLIError(f"no readable PNG file among the {plural(len(files), 'file')} given")
    warnings.warn(
        f"skipped {plural(len(bad), 'bad file')}:\n" + "\n".join(f"  {b}" for b in bad),
        UserWarning,
        stacklevel=2,
    )
    return load_patches(good), good


# --------------------------------------------------------------------------- models


def quiet_tensorflow_start() -> None:
    """Start TensorFlow quietly; every command calls it before its first import of
    TensorFlow, Keras or the estimator (unpickling a model imports them too)."""
    from .._tensorflow import quiet_tensorflow

    quiet_tensorflow()


def check_model_path(path: Path) -> None:
    if not path.exists():
        raise CLIError(f"{path}: no such model file")
    if not path.is_file():
        raise CLIError(f"{path}: the model must be a file written by 'idcclf train'")


def load_model(path: Path):
    """Load an ``IDCClassifier`` saved with joblib, or raise a one-line CLIError."""
    check_model_path(path)
    quiet_tensorflow_start()
    import joblib

    from ..estimator import IDCClassifier

    try:
        model = joblib.load(path)
    except Exception as exc:  # truncated pickles raise EOFError, garbage UnpicklingError...
        raise CLIError(
            f"{path}: not a readable idcclf model ({type(exc).__name__}: {exc})"
        ) from None
    if not isinstance(model, IDCClassifier) or not hasattr(model, "model_"):
        raise CLIError(f"{path}: not a fitted idcclf model (holds {type(model).__name__})")
    return model


def split_model_argument(items: list[Path]) -> tuple[Path | None, list[Path]]:
    """Tell an optional leading MODEL file from the PNG paths that follow it.

    The first item is the model when it is a file that is not a PNG; otherwise every
    item is a path and the bundled pretrained model is meant (``None``).
    """
    first = items[0]
    if first.is_file() and first.suffix.lower() != ".png":
        return first, items[1:]
    return None, items


def load_model_or_pretrained(path: Path | None):
    """The model saved at ``path``, or the bundled pretrained one when ``path`` is None."""
    if path is not None:
        return load_model(path)
    quiet_tensorflow_start()
    from ..pretrained import load_pretrained

    try:
        return load_pretrained()
    except FileNotFoundError as exc:
        raise CLIError(f"{exc}; pass a MODEL file") from None


def predict_idc(
    model,
    patches,
    model_name: object,
    diverged: str = "its weights are broken",
    *,
    groups=None,
):
    """IDC probability of every patch, or a CLIError naming the model that cannot.

    ``diverged`` says why a model would predict NaN. ``groups``, the patient of each
    patch, reaches models that normalize each patient's stains.
    """
    from ..standardize import normalizes_stains

    patients = {"groups": groups} if normalizes_stains(model) else {}
    try:
        # The positive (IDC) class is the last of classes_ (1 for the IDC data's 0/1 labels).
        proba = model.predict_proba(patches, **patients)[:, -1]
    except ValueError as exc:  # e.g. a model trained on patches of another shape
        raise CLIError(f"{model_name}: cannot predict these patches ({one_line(exc)})") from None
    return check_finite(proba, model_name, diverged)


def check_finite(proba, model_name: object, diverged: str = "its weights are broken"):
    """``proba``, or a CLIError when the model predicted NaN (``diverged`` says why)."""
    import numpy as np

    if not np.isfinite(proba).all():
        raise CLIError(f"{model_name} predicts NaN probabilities: {diverged}")
    return proba


# -------------------------------------------------------------------- shared options


def add_threshold(parser: argparse.ArgumentParser, meaning: str) -> None:
    parser.add_argument(
        "--threshold",
        type=float,
        default=0.5,
        help=f"probability at or above which {meaning} (default: 0.5)",
    )


def check_threshold(threshold: float) -> None:
    if not 0.0 <= threshold <= 1.0:
        raise CLIError(f"--threshold {threshold} must be in [0, 1]")


def add_test_time_augmentation(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--tta",
        action="store_true",
        help="test-time augmentation: average each patch's IDC probability over its 8 "
        "flips and quarter turns (8 times the prediction time)",
    )


def add_smoothing(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--smooth",
        type=int,
        default=0,
        metavar="RADIUS",
        help="average each patch's IDC probability with those of the same patient's "
        "patches at most RADIUS grid cells away on the slide (1: its 3 x 3 block); "
        "default 0: each patch on its own",
    )


def check_smoothing(radius: int) -> None:
    if radius < 0:
        raise CLIError(f"--smooth {radius} must be a radius of 0 or more grid cells")


def smoothed(proba, data, args: argparse.Namespace):
    """``proba``, averaged over slide neighbourhoods of ``--smooth`` cells when given."""
    if args.smooth == 0:
        return proba
    from ..slides import smooth_probabilities

    return smooth_probabilities(proba, data.coords, data.groups, radius=args.smooth)


def use_test_time_augmentation(model, args: argparse.Namespace):
    """``model``, predicting with test-time augmentation when ``--tta`` was given."""
    if args.tta:
        model.set_params(test_time_augmentation=True)
    return model
