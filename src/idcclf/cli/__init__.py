"""The ``idcclf`` command line: one module per subcommand, registered in ``COMMANDS``.

Each command module defines ``add_parser(subparsers)`` (cheap: no TensorFlow import)
and ``run(args) -> int``. Heavy imports happen inside ``run`` so that ``--help`` and
argument errors answer at once.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from ._common import CLIError, quiet_tensorflow_start

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
    # TensorFlow's C++ start-up chatter hides the output users came for.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if getattr(args, "needs_tensorflow", True):
            quiet_tensorflow_start()
        return int(args.run(args) or 0)
    except CLIError as exc:
        print(f"idcclf {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"idcclf {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
