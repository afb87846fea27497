"""Small IDC trees written by hand for the loader tests (fixtures: _patch_fixtures)."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

ARRAY_FIELDS = ("data", "target", "groups", "coords", "filenames", "original_shapes")


def png_bytes(arr: np.ndarray, mode: str | None = None) -> bytes:
    buf = io.BytesIO()
    img = Image.fromarray(arr) if mode is None else Image.fromarray(arr).convert(mode)
    img.save(buf, format="PNG")
    return buf.getvalue()


def raw_png(width: int, height: int, bit_depth: int, color_type: int, rows: list[bytes]) -> bytes:
    """A PNG written by hand (Pillow cannot write 16-bit RGB)."""

    def chunk(ctype: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(ctype + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + ctype + data + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0)
    idat = zlib.compress(b"".join(b"\x00" + r for r in rows))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def patch_array(seed: int, h: int = 50, w: int = 50) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def write_patch(
    root: Path,
    patient: str,
    cls: int,
    x: int,
    y: int,
    *,
    arr: np.ndarray | None = None,
    content: bytes | None = None,
    name: str | None = None,
    folder: str | None = None,
) -> Path:
    folder = str(cls) if folder is None else folder
    name = name or f"{patient}_idx5_x{x}_y{y}_class{cls}.png"
    path = root / patient / folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    if content is None:
        content = png_bytes(patch_array(hash((patient, cls, x, y)) % 2**32) if arr is None else arr)
    path.write_bytes(content)
    return path


def make_tree(root: Path, n_per_class: int = 2, patients: tuple[str, ...] = ("10", "11")) -> Path:
    for p in patients:
        for c in (0, 1):
            for k in range(n_per_class):
                write_patch(root, p, c, 50 * k, 50 * c)
    return root


def assert_same(a, b, descr: bool = True) -> None:
    for f in ARRAY_FIELDS:
        np.testing.assert_array_equal(a[f], b[f], err_msg=f)
        assert a[f].dtype == b[f].dtype, f
    if descr:
        assert a.DESCR == b.DESCR
