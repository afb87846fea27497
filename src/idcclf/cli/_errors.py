"""How errors reach the user: one line, ``idcclf <command>: error: ...``, exit status 2.

Commands raise :class:`CLIError` for what they check themselves, and run library calls
inside :func:`library_errors`, which turns the library's expected errors into a
CLIError whose advice names this command's flags instead of Python parameters.
``main`` prints every CLIError the same way.
"""

from __future__ import annotations

import argparse
import contextlib
import re
from collections.abc import Iterator

#: Errors the library raises for bad data, bad settings or too little memory; anything
#: else is a bug and keeps its traceback.
LIBRARY_ERRORS = (ValueError, OSError, MemoryError, FloatingPointError)


class CLIError(Exception):
    """An error reported to the user as one line, with exit status 2."""


def one_line(exc: BaseException) -> str:
    """The message of ``exc`` on one line."""
    return " ".join(str(exc).split()) or type(exc).__name__


@contextlib.contextmanager
def library_errors(args: argparse.Namespace, context: str = "") -> Iterator[None]:
    """Turn the library's expected errors raised inside into a one-line CLIError.

    ``context`` (e.g. the file being read) starts the message when given.
    """
    try:
        yield
    except LIBRARY_ERRORS as exc:
        message = in_cli_terms(one_line(exc), args)
        raise CLIError(f"{context}: {message}" if context else message) from None


def in_cli_terms(message: str, args: argparse.Namespace) -> str:
    """``message`` with the library's Python-level advice replaced by command-line flags."""
    for pattern, replacement in _FIXED_ADVICE:
        message = re.sub(pattern, replacement, message)
    if hasattr(args, "val") and re.search(r"into 3 parts needs at least 3 patients", message):
        message += " (2 with --val 0: no validation part)"
    message = re.sub(_PATIENT_FOLDER_ADVICE, lambda m: _patient_folder_advice(m, args), message)
    return re.sub(_MEMORY_ADVICE, lambda _: _memory_advice(args), message)


# (pattern, replacement) pairs for advice whose flag is the same on every command.
_FIXED_ADVICE = [
    (r"pass on_error='skip'", "pass --skip-bad-files"),
    (
        r"early_stopping=True needs a validation split: set validation_fraction > 0",
        "--early-stopping needs a validation split: set --val-size above 0",
    ),
    (r"set validation_fraction=0(?![\d.])", "pass --val-size 0"),
    (r"\bvalidation_fraction=0(?![\d.])", "--val-size 0"),
    (r"lower learning_rate \(now", "lower --learning-rate (now"),
    (r" \(force=True\)", ""),
    # The command line never drops small patches, so the count is always 0.
    (r", 0 dropped by size_policy='drop'", ""),
    (r"\bload_idc would need", "loading would need"),
    (r"use at most (\d+) folds", r"use at most --cv \1"),
]
_PATIENT_FOLDER_ADVICE = re.compile(
    r"e\.g\. load_idc\((?P<q>['\"])(?P<root>.*?)(?P=q), "
    r"patients=\[(?P<p>['\"])(?P<id>.*?)(?P=p)\]\)"
)
_MEMORY_ADVICE = re.compile(r"Pass memory_map=True.*$")


def _patient_folder_advice(match: re.Match, args: argparse.Namespace) -> str:
    if hasattr(args, "patients"):
        return f"e.g. --data {match['root']} --patients {match['id']}"
    return f"e.g. --data {match['root']}"


def _memory_advice(args: argparse.Namespace) -> str:
    flags = ["fewer --data folders"]
    if hasattr(args, "patients"):
        flags.append("--patients ID ...")
    if hasattr(args, "max_per_class"):
        flags.append("--max-per-class N")
    return f"Load fewer patches: {', or '.join(flags)}."
