"""Atomic writing: write to a temporary file or folder beside the target, then rename."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it onto ``path`` on success.

    A crash or exception before the end leaves ``path`` as it was (or absent) and
    removes the temporary file, so readers never see a half-written file.
    """
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"cannot write {path}: it is a directory")
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(tmp)
    # mkstemp makes the file private (0600); give it the mode a plain open() would.
    os.chmod(tmp, 0o666 & ~_umask())
    try:
        yield tmp
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def atomic_dump(obj, path: str | Path) -> Path:
    """``joblib.dump`` to ``path`` atomically: a kill mid-save keeps the old file."""
    import joblib

    with atomic_path(path) as tmp:
        joblib.dump(obj, tmp)
    return Path(path)


def staging_dir(dest: str | Path) -> Path:
    """A new empty folder beside ``dest``, to be renamed onto it by :func:`replace_dir`.

    It is created with the mode a plain ``mkdir`` would give (``mkdtemp`` makes it
    private, and the mode survives the rename).
    """
    dest = Path(dest)
    staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}.new-", dir=dest.parent))
    staging.chmod(0o777 & ~_umask())
    return staging


def replace_dir(new: str | Path, dest: str | Path) -> None:
    """Rename the folder ``new`` onto ``dest``, which may be absent, a folder or a link.

    ``new`` must be on the file system of ``dest`` (e.g. from :func:`staging_dir`).
    An existing ``dest`` is first moved aside and deleted only once ``new`` is in its
    place. If that rename fails, the old ``dest`` is put back (or, should that fail
    too, left in the hidden ``.<name>.old-*`` folder beside it, never deleted).
    """
    new, dest = Path(new), Path(dest)
    if not (dest.exists() or dest.is_symlink()):
        new.rename(dest)
        return
    aside = Path(tempfile.mkdtemp(prefix=f".{dest.name}.old-", dir=dest.parent))
    try:
        dest.rename(aside / dest.name)
    except OSError:
        aside.rmdir()
        raise
    try:
        new.rename(dest)
    except OSError:
        # Should putting it back fail too, the old folder stays in ``aside``, not lost.
        (aside / dest.name).rename(dest)
        aside.rmdir()
        raise
    shutil.rmtree(aside, ignore_errors=True)
