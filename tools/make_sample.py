"""Build the real IDC sample embedded in idcclf (src/idcclf/_data/sample).

Re-run from the repository root with::

    python tools/make_sample.py

It reads the full patient folders in ``../shared/data/idc`` (``--source``), picks

- patients: those that have patches smaller than 50x50 (most such patches first), so
  the loader's size policies are exercised on real edge patches, then, if fewer than
  ``--n-patients``, others in seeded pseudo-random order;
- per patient and class: ``--per-class`` of the 50x50 patches in seeded
  pseudo-random order, plus every patch that is not 50x50;

and copies the PNG files byte for byte (never re-encoded) into the same layout,
replacing the previous sample, then writes its README.md.

The pseudo-random order ranks files by ``sha256(f"{seed}:{file name}")``, which
depends on nothing but the seed and the names, so the same source gives the same
sample on any platform and Python/numpy version.
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import struct
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_SOURCE = REPO.parent / "shared" / "data" / "idc"
DEFAULT_DEST = REPO / "src" / "idcclf" / "_data" / "sample"
HARD_LIMIT_BYTES = 25 * 1024 * 1024
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_size(path: Path) -> tuple[int, int]:
    """(width, height) from the PNG header, without decoding."""
    with open(path, "rb") as fh:
        head = fh.read(24)
    if not head.startswith(PNG_SIGNATURE) or head[12:16] != b"IHDR":
        raise ValueError(f"{path} is not a PNG file")
    return struct.unpack(">II", head[16:24])


def rank(seed: int, name: str) -> str:
    return hashlib.sha256(f"{seed}:{name}".encode()).hexdigest()


def disk_usage(paths: list[Path]) -> int:
    """Bytes allocated on disk (file-system blocks), as ``du`` would count them."""
    total = 0
    for p in paths:
        st = p.stat()
        blocks = getattr(st, "st_blocks", None)
        total += blocks * 512 if blocks is not None else st.st_size
    return total


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--source", type=Path, default=DEFAULT_SOURCE)
    ap.add_argument("--dest", type=Path, default=DEFAULT_DEST)
    ap.add_argument("--n-patients", type=int, default=12)
    ap.add_argument("--per-class", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    source: Path = args.source.resolve()
    dest: Path = args.dest.resolve()
    if not source.is_dir():
        print(f"source folder not found: {source}", file=sys.stderr)
        return 1

    # Survey every patient: files per class and which ones are not 50x50.
    survey: dict[str, dict[str, list[tuple[str, tuple[int, int]]]]] = {}
    for pdir in sorted(p for p in source.iterdir() if p.is_dir()):
        survey[pdir.name] = {}
        for c in ("0", "1"):
            files = sorted((pdir / c).glob("*.png")) if (pdir / c).is_dir() else []
            survey[pdir.name][c] = [(f.name, png_size(f)) for f in files]

    def n_odd(p: str) -> int:
        return sum(size != (50, 50) for c in "01" for _, size in survey[p][c])

    with_odd = sorted((p for p in survey if n_odd(p)), key=lambda p: (-n_odd(p), p))
    others = sorted((p for p in survey if not n_odd(p)), key=lambda p: rank(args.seed, p))
    chosen = sorted((with_odd + others)[: args.n_patients])

    # Replace the previous sample (only what this script creates).
    dest.mkdir(parents=True, exist_ok=True)
    for old in dest.iterdir():
        if old.is_dir():
            shutil.rmtree(old)
    rows = []
    copied: list[Path] = []
    for p in chosen:
        row = {"patient": p}
        for c in ("0", "1"):
            files = survey[p][c]
            regular = [n for n, size in files if size == (50, 50)]
            odd = [n for n, size in files if size != (50, 50)]
            picked = sorted(regular, key=lambda n: rank(args.seed, n))[: args.per_class]
            out_dir = dest / p / c
            out_dir.mkdir(parents=True, exist_ok=True)
            for n in sorted(picked + odd):
                shutil.copyfile(source / p / c / n, out_dir / n)  # byte for byte
                copied.append(out_dir / n)
            row[c] = len(picked) + len(odd)
            row[f"odd{c}"] = len(odd)
            row[f"avail{c}"] = len(files)
        rows.append(row)

    total_bytes = sum(f.stat().st_size for f in copied)
    du_bytes = disk_usage(copied)
    if total_bytes > HARD_LIMIT_BYTES:
        print(f"sample too big: {total_bytes} bytes > {HARD_LIMIT_BYTES}", file=sys.stderr)
        return 1
    odd_sizes: dict[tuple[int, int], int] = {}
    for p in chosen:
        for c in "01":
            for _n, size in survey[p][c]:
                if size != (50, 50):
                    odd_sizes[size] = odd_sizes.get(size, 0) + 1

    n0 = sum(r["0"] for r in rows)
    n1 = sum(r["1"] for r in rows)
    n_odd_total = sum(r["odd0"] + r["odd1"] for r in rows)
    n_odd1 = sum(r["odd1"] for r in rows)
    odd_note = (
        "all the smaller patches are class 0 (slide edges are mostly background)"
        if n_odd1 == 0
        else f"{n_odd1} of the {n_odd_total} smaller patches are class 1"
    )
    cmd = "python tools/make_sample.py"
    if argv:
        cmd += " " + " ".join(argv)
    table = "\n".join(
        f"| {r['patient']} | {r['0']} (of {r['avail0']}) | {r['1']} (of {r['avail1']}) "
        f"| {r['odd0'] + r['odd1']} |"
        for r in rows
    )
    shapes = ", ".join(
        f"{w}x{h}: {k}" for (w, h), k in sorted(odd_sizes.items(), key=lambda t: (-t[1], t[0]))
    )
    contents = textwrap.fill(
        f"{len(chosen)} patients, {n0 + n1} patches: {n0} class 0 (no IDC), {n1} class 1 "
        f"(IDC). {n_odd_total} patches are smaller than 50x50 (all such patches of these "
        f"patients; width x height: {shapes}). The per-class cap makes the sample much "
        f"more balanced ({100 * n1 / (n0 + n1):.0f}% IDC) than the full set (28% IDC), and "
        f"{odd_note}: do not read class priors or accuracy baselines off the sample. "
        f"Total size: {total_bytes:,} bytes ({total_bytes / 1e6:.1f} MB) of PNG data, "
        f"{du_bytes / 1e6:.1f} MB allocated on the disk it was built on (4 KiB blocks).",
        88,
    )
    readme = f"""# Embedded IDC sample

Real patches bundled with idcclf so that tests, examples and `idcclf predict` work
without downloading anything. Load them with `idcclf.datasets.load_sample()`; their
root folder is `idcclf.datasets.sample_path()`. The loader ignores this README (it
reads only `*.png` files).

## Source

A subset of the public *Breast Histopathology Images* set (IDC_regular_ps50_idx5):
RGB PNG patches of 50x50 px cut from whole-mount slides of breast cancer specimens,
labelled for invasive ductal carcinoma (IDC).

- Janowczyk A., Madabhushi A. "Deep learning for digital pathology image analysis:
  a comprehensive tutorial with selected use cases." J Pathol Inform 2016;7:29.
- Cruz-Roa A. et al. "Automatic detection of invasive ductal carcinoma in whole slide
  images with convolutional neural networks." SPIE Medical Imaging 2014.

Layout, as in the full set: `<patient>/<class>/<patient>_idx5_x<X>_y<Y>_class<class>.png`,
class 0 = no IDC, 1 = IDC; X, Y are the top-left pixel coordinates in the slide.
The files are copied byte for byte from the full set (never re-encoded).

## Contents

{contents}

| patient | class 0 | class 1 | smaller than 50x50 |
|---|---|---|---|
{table}

## How it was chosen

- Patients: the {len(with_odd)} patients of the source that have patches smaller than 50x50
  (so the loader's `size_policy` is exercised on real edge patches), most such patches
  first, completed in seeded pseudo-random order up to {args.n_patients}.
- Per patient and class: {args.per_class} of the 50x50 patches (all of them if fewer),
  in seeded pseudo-random order (files ranked by `sha256("<seed>:<file name>")`,
  seed {args.seed}), plus every patch that is not 50x50.

## Rebuild

From the repository root, with the full patient folders in `../shared/data/idc`:

    {cmd}
"""
    (dest / "README.md").write_text(readme, encoding="utf-8")
    print(f"wrote {n0 + n1} patches of {len(chosen)} patients to {dest}")
    print(f"class 0: {n0}, class 1: {n1}, smaller than 50x50: {n_odd_total}")
    print(f"{total_bytes:,} bytes of PNG data, {du_bytes:,} bytes on disk")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
