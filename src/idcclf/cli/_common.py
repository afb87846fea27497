"""Helpers shared by the subcommands: argument types and one-line errors."""

from __future__ import annotations

import argparse
import os
from pathlib import Path


class CLIError(Exception):
    """An error reported to the user as one line, with exit status 2."""


def existing_dir(value: str) -> Path:
    path = Path(value)
    if not path.exists():
        raise argparse.ArgumentTypeError(f"{value}: no such directory")
    if not path.is_dir():
        raise argparse.ArgumentTypeError(f"{value}: not a directory")
    return path


def existing_path(value: str) -> Path:
    path = Path(value)
    if not path.exists():
        raise argparse.ArgumentTypeError(f"{value}: no such file or directory")
    return path


def existing_file(value: str) -> Path:
    path = Path(value)
    if not path.exists():
        raise argparse.ArgumentTypeError(f"{value}: no such file")
    if not path.is_file():
        raise argparse.ArgumentTypeError(f"{value}: not a file")
    return path


def positive_int(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not an integer") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"{value} must be at least 1")
    return number


def fraction(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number") from None
    if not 0.0 <= number < 1.0:
        raise argparse.ArgumentTypeError(f"{value} must be in [0, 1)")
    return number


def positive_float(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number") from None
    if not number > 0:
        raise argparse.ArgumentTypeError(f"{value} must be positive")
    return number


def output_dir(value: str) -> Path:
    """A folder to write into: created if missing, refused if it is a file."""
    path = Path(value)
    if path.exists() and not path.is_dir():
        raise argparse.ArgumentTypeError(f"{value}: exists and is not a directory")
    return path


def load_model(path: Path):
    """Load an ``IDCClassifier`` saved with joblib, or raise a one-line CLIError."""
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


def add_test_time_augmentation(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--tta",
        action="store_true",
        help="test-time augmentation: average each patch's IDC probability over its 8 "
        "flips and quarter turns (8 times the prediction time)",
    )


def use_test_time_augmentation(model, args: argparse.Namespace):
    """``model``, predicting with test-time augmentation when ``--tta`` was given."""
    if args.tta:
        model.set_params(test_time_augmentation=True)
    return model


def quiet_tensorflow_start() -> None:
    """Import TensorFlow and initialize its devices with native stderr silenced.

    TensorFlow's C++ start-up messages (oneDNN notices, CUDA probing on machines without
    a GPU) are written before its logging can be configured, so environment variables
    cannot hide them; redirecting the stderr file descriptor for the start-up can.
    Python exceptions still propagate and are reported after stderr is restored.
    """
    import sys

    if "tensorflow" in sys.modules:
        return
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        import tensorflow as tf

        tf.config.list_physical_devices()
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


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
    from ..pretrained import load_pretrained

    try:
        return load_pretrained()
    except FileNotFoundError as exc:
        raise CLIError(f"{exc}; pass a MODEL file") from None
