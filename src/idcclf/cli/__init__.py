"""The ``idcclf`` command line: one module per subcommand, registered in ``COMMANDS``.

Each command module defines ``add_parser(subparsers)`` (cheap: no TensorFlow import)
and ``run(args) -> int``. TensorFlow is started (quietly, see
``_common.quiet_tensorflow_start``) only by the commands that need a model, once their
arguments and data have been checked, so that ``--help``, ``idcclf split`` and argument
errors answer at once.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import sys
import warnings
from collections.abc import Iterator

from ._errors import CLIError

#: Subcommand name -> module in this package.
COMMANDS = {
    "train": "train",
    "predict": "predict",
    "evaluate": "evaluate",
    "heatmap": "heatmap",
    "split": "split",
    "study": "study",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="idcclf",
        description="Classify breast histopathology patches for invasive ductal carcinoma "
        "(IDC) with CancerNet.",
    )
    from .. import __version__

    parser.add_argument("--version", action="version", version=f"idcclf {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    for module_name in COMMANDS.values():
        importlib.import_module(f".{module_name}", __name__).add_parser(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``idcclf`` command; returns the exit status."""
    # TensorFlow's C++ logging hides the output users came for.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    parser = build_parser()
    args = parser.parse_args(argv)
    with _one_line_warnings(args.command):
        try:
            return int(args.run(args) or 0)
        except CLIError as exc:
            print(f"idcclf {args.command}: error: {exc}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            print(f"idcclf {args.command}: interrupted", file=sys.stderr)
            return 130


@contextlib.contextmanager
def _one_line_warnings(command: str) -> Iterator[None]:
    """Show warnings as ``idcclf <command>: warning: ...``, without source lines."""
    original = warnings.formatwarning

    def format_warning(message, category, filename, lineno, line=None) -> str:
        return f"idcclf {command}: warning: {message}\n"

    # formatwarning, not showwarning: warnings recorded by catch_warnings stay recorded.
    warnings.formatwarning = format_warning
    try:
        yield
    finally:
        warnings.formatwarning = original


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
