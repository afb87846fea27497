"""The output folder of a run: never half-written, never overwritten unless asked."""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

from ._errors import CLIError, one_line


def add_overwrite(parser: argparse.ArgumentParser, what: str = "--out") -> None:
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help=f"replace the files of an earlier run in {what} (default: refuse)",
    )


class RunOutput:
    """The files a command writes into ``--out``, staged and then moved in together.

    Created before the work starts, so that a taken ``--out`` is refused at once: a
    file, or a folder holding an earlier run's outputs (``names``) without
    ``overwrite``. Inside ``with``, write to ``output / name``: the files go to a
    hidden folder in ``--out``; on success they replace the earlier run's files (and
    the earlier outputs this run did not make are removed, so that no stale file is
    left beside the new ones). On an error or Ctrl-C the hidden folder is removed and
    ``--out`` is left as it was.
    """

    def __init__(self, out: Path, names: Sequence[str], *, overwrite: bool) -> None:
        self.out = Path(out)
        self.names = list(names)
        if self.out.exists() and not self.out.is_dir():
            raise CLIError(f"--out {self.out}: exists and is not a directory")
        earlier = [name for name in self.names if os.path.lexists(self.out / name)]
        if earlier and not overwrite:
            more = f" and {len(earlier) - 2} more" if len(earlier) > 2 else ""
            raise CLIError(
                f"--out {self.out} holds an earlier run's {', '.join(earlier[:2])}{more}: "
                f"pass --overwrite to replace {'it' if len(earlier) == 1 else 'them'}, "
                "or choose another --out"
            )
        self._stage: Path | None = None
        self._created = False

    def __enter__(self) -> RunOutput:
        self._created = not self.out.exists()
        try:
            self.out.mkdir(parents=True, exist_ok=True)
            self._stage = Path(tempfile.mkdtemp(prefix=".idcclf-", dir=self.out))
        except OSError as exc:
            self._discard()
            raise CLIError(f"--out {self.out}: cannot write there ({one_line(exc)})") from None
        return self

    @property
    def folder(self) -> Path:
        """The hidden folder the outputs are written to, inside ``with``."""
        return self._stage

    def __truediv__(self, name: str) -> Path:
        if name not in self.names:  # a name outside the list would escape the checks
            raise KeyError(f"{name} is not one of this run's outputs {self.names}")
        return self._stage / name

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            try:
                self._commit()
                return
            except OSError as error:
                exc = error
        self._discard()
        if isinstance(exc, OSError):
            raise CLIError(f"--out {self.out}: cannot write there ({one_line(exc)})") from None

    def written(self) -> list[Path]:
        """The outputs of this run, in ``names`` order (after the ``with`` block)."""
        return [self.out / name for name in self.names if os.path.lexists(self.out / name)]

    def _commit(self) -> None:
        for name in self.names:
            target, staged = self.out / name, self._stage / name
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target)
            elif os.path.lexists(target) and not os.path.lexists(staged):
                target.unlink()
            if os.path.lexists(staged):  # a file replaces its earlier version atomically
                os.replace(staged, target)
        shutil.rmtree(self._stage)

    def _discard(self) -> None:
        if self._stage is not None:
            shutil.rmtree(self._stage, ignore_errors=True)
        if self._created and self.out.is_dir() and not any(self.out.iterdir()):
            self.out.rmdir()
