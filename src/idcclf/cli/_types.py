"""Argument types shared by the subcommands: each checks one value and names the problem."""

from __future__ import annotations

import argparse
from pathlib import Path


def existing_path(value: str) -> Path:
    """A file or folder that exists."""
    path = Path(value)
    if not path.exists():
        raise argparse.ArgumentTypeError(f"{value}: no such file or directory")
    return path


def positive_int(value: str) -> int:
    """An integer of at least 1."""
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not an integer") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"{value} must be at least 1")
    return number


def fraction(value: str) -> float:
    """A share in [0, 1)."""
    number = _number(value)
    if not 0.0 <= number < 1.0:
        raise argparse.ArgumentTypeError(f"{value} must be in [0, 1)")
    return number


def positive_float(value: str) -> float:
    """A number above 0."""
    number = _number(value)
    if not number > 0:
        raise argparse.ArgumentTypeError(f"{value} must be positive")
    return number


def _number(value: str) -> float:
    try:
        return float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number") from None
