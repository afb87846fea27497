"""Names, records and constants shared by the IDC loaders."""

from __future__ import annotations

import enum
import os
import re
from typing import NamedTuple

PATCH_SIZE = 50
TARGET_NAMES = ("no IDC", "IDC")
SIZE_POLICIES = ("pad", "resize", "drop")
ON_ERROR = ("raise", "skip")
CACHE_CHECKS = ("full", "fast")

NAME_RE = re.compile(
    r"(?P<patient>[^_/\\]+)_idx5_x(?P<x>\d+)_y(?P<y>\d+)_class(?P<label>[01])\.png",
    # ASCII: "\d" would take other scripts' digits (full-width "５") and IGNORECASE
    # would take "ſ" for "s" and "İ" for "i"; no real patch name has either.
    re.IGNORECASE | re.ASCII,
)
NAME_PATTERN = "<patient>_idx5_x<X>_y<Y>_class<0|1>.png"


class Status(enum.IntEnum):
    """What became of one decoded patch."""

    OK = 0
    PADDED = 1
    RESIZED = 2
    DROPPED = 3
    BAD = 4


#: Statuses of patches that end up in the result.
USABLE = (Status.OK, Status.PADDED, Status.RESIZED)


class Patch(NamedTuple):
    """One patch file whose name agrees with its folders.

    Tuples sort by patient, then label, then file name: the order of the rows.
    """

    patient: str
    label: int
    name: str
    x: int
    y: int
    #: Folder of the file relative to its root, ``/``-separated ("8863/0" or "0").
    folder: str
    #: The root folder the file was found under.
    root: str = ""

    @property
    def relpath(self) -> str:
        return f"{self.folder}/{self.name}"

    @property
    def path(self) -> str:
        return os.path.join(self.root, self.folder, self.name)


class BadPatch(Exception):
    """A patch file that cannot be used; ``str(exc)`` is the reason."""


def os_reason(exc: OSError, failed: str = "cannot read") -> str:
    """``"<failed> (<the OS's reason>)"``, the bad-file reason for an OSError."""
    return f"{failed} ({exc.strerror or exc})"


def is_ignored(name: str) -> bool:
    """Whether a folder entry is metadata that is never a patch."""
    # Hidden entries (.DS_Store, AppleDouble "._x.png", .ipynb_checkpoints) and the
    # __MACOSX folder of zips made on macOS.
    return name.startswith(".") or name == "__MACOSX"


def parse_patch_filename(name: str | os.PathLike[str]) -> tuple[str, int, int, int]:
    """Parse an IDC patch file name.

    Parameters
    ----------
    name : str or path-like
        A file name such as ``"8863_idx5_x51_y1251_class0.png"``. Leading folders are
        ignored, so a full path works too.

    Returns
    -------
    patient : str
        Patient id, e.g. ``"8863"``.
    x, y : int
        Pixel coordinates of the patch's top-left corner in its slide.
    label : int
        0 (no IDC) or 1 (IDC).

    Raises
    ------
    ValueError
        If the name does not match ``<patient>_idx5_x<X>_y<Y>_class<0|1>.png``; the
        message names the file.

    Examples
    --------
    >>> parse_patch_filename("8863_idx5_x51_y1251_class0.png")
    ('8863', 51, 1251, 0)
    """
    base = os.path.basename(os.fspath(name))
    m = NAME_RE.fullmatch(base)
    if m is None:
        raise ValueError(f"patch file name {base!r} does not match {NAME_PATTERN!r}")
    return m["patient"], int(m["x"]), int(m["y"]), int(m["label"])
