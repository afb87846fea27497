"""Build the real IDC sample embedded in idcclf (src/idcclf/_data/sample).

Re-run from the repository root with::

    python tools/make_sample.py

It reads two roots of the public set laid out as ``<patient>/<0|1>/<file>.png``: the
complete patient folders in ``../shared/data/idc`` (``--complete``) and the partial ones
in ``../shared/data/idc-partial`` (``--partial``), and picks

- ``--n-complete`` complete patients: those with patches smaller than 50x50 first (most
  such patches first), so the loader's size policies meet real edge patches, then others
  in seeded pseudo-random order;
- ``--n-partial`` partial patients, in seeded pseudo-random order among those with at
  least ``--per-patient`` patches and ``--min-per-class`` of each class;
- per patient, ``--per-patient`` patches. Positives are handed out one per patient in
  turn (patients in id order) until they make ``--positive-share`` of the sample, so
  patients short of positives do not pull the share below the full set's; the rest are
  negatives. Up to ``--max-odd`` of the patient's smaller-than-50x50 patches (one of
  each shape in turn, so every shape is kept) come first in their class, then 50x50
  ones in seeded pseudo-random order.

It copies the PNG files byte for byte (never re-encoded) into the same layout and
writes its README.md, in a folder beside the destination that replaces the previous
sample only once complete: a failed run leaves the previous sample as it was. A
destination that holds anything but patient folders and a README.md is refused.

The pseudo-random order ranks names by ``sha256(f"{seed}:{name}")``, which depends on
nothing but the seed and the names, so the same sources give the same sample on any
platform and Python version.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import struct
import sys
import textwrap
from pathlib import Path

from idcclf._io import replace_dir, staging_dir

REPO = Path(__file__).resolve().parents[1]
DEFAULT_COMPLETE = REPO.parent / "shared" / "data" / "idc"
DEFAULT_PARTIAL = REPO.parent / "shared" / "data" / "idc-partial"
DEFAULT_DEST = REPO / "src" / "idcclf" / "_data" / "sample"
HARD_LIMIT_BYTES = 25 * 1024 * 1024
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# The full public set: 198,738 class 0 and 78,786 class 1 patches.
FULL_SET_SHARE = 78_786 / (198_738 + 78_786)
SHIPPED_CONFIG = REPO / "src" / "idcclf" / "_data" / "pretrained" / "config.json"


def shipped_model_patients() -> set[str]:
    """Patients the shipped model was trained or validated on, as its config records them."""
    config = json.loads(SHIPPED_CONFIG.read_text())
    return set(config.get("training_groups") or []) | set(config.get("validation_groups") or [])


Files = dict[str, list[tuple[str, tuple[int, int]]]]  # class -> [(name, (w, h))]


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


def survey(root: Path) -> dict[str, Files]:
    """Every patient folder of ``root``: its files per class with their sizes."""
    out: dict[str, Files] = {}
    for pdir in sorted(p for p in root.iterdir() if p.is_dir()):
        out[pdir.name] = {}
        for c in "01":
            files = sorted((pdir / c).glob("*.png")) if (pdir / c).is_dir() else []
            out[pdir.name][c] = [(f.name, png_size(f)) for f in files]
    return out


def n_odd(files: Files) -> int:
    return sum(size != (50, 50) for c in "01" for _, size in files[c])


def choose_patients(
    complete: dict[str, Files], partial: dict[str, Files], args: argparse.Namespace
) -> tuple[list[str], list[str]]:
    """(complete patients, partial patients) of the sample, each sorted by id."""
    with_odd = sorted(
        (p for p in complete if n_odd(complete[p])), key=lambda p: (-n_odd(complete[p]), p)
    )
    others = sorted(
        (p for p in complete if not n_odd(complete[p])), key=lambda p: rank(args.seed, p)
    )
    eligible = [
        p
        for p, files in partial.items()
        if len(files["0"]) + len(files["1"]) >= args.per_patient
        and min(len(files["0"]), len(files["1"])) >= args.min_per_class
    ]
    chosen_partial = sorted(eligible, key=lambda p: rank(args.seed, p))[: args.n_partial]
    return sorted((with_odd + others)[: args.n_complete]), sorted(chosen_partial)


def allocate_positives(
    avail: dict[str, tuple[int, int]], per_patient: int, share: float
) -> dict[str, int]:
    """Class 1 patches per patient: one per patient in turn until ``share`` is reached.

    Every patient keeps at least one patch of each class, and takes more positives only
    when it has too few negatives to fill ``per_patient``.
    """
    n1 = {p: max(1, per_patient - a0) for p, (a0, _) in avail.items()}
    target = round(share * per_patient * len(avail))
    while sum(n1.values()) < target:
        grown = False
        for p in sorted(avail, key=int):
            if sum(n1.values()) >= target:
                break
            if n1[p] < min(avail[p][1], per_patient - 1):
                n1[p] += 1
                grown = True
        if not grown:  # every patient has given all the positives it can
            break
    return n1


def pick(files: Files, n: dict[str, int], max_odd: int, seed: int) -> dict[str, list[str]]:
    """The file names of one patient to copy, per class (``n[c]`` of class ``c``)."""
    odd = [(c, name, size) for c in "01" for name, size in files[c] if size != (50, 50)]
    odd.sort(key=lambda t: rank(seed, t[1]))
    seen: dict[tuple[int, int], int] = {}
    turn = []  # each patch's turn among those of its shape: one of each shape first
    for _c, _name, size in odd:
        turn.append(seen.get(size, 0))
        seen[size] = turn[-1] + 1
    odd = [t for _, t in sorted(zip(turn, odd, strict=True), key=lambda z: z[0])]
    picked: dict[str, list[str]] = {"0": [], "1": []}
    for c, name, _size in odd[:max_odd]:
        if len(picked[c]) < n[c]:
            picked[c].append(name)
    for c in "01":
        regular = sorted(
            (nm for nm, size in files[c] if size == (50, 50)), key=lambda nm: rank(seed, nm)
        )
        picked[c] += regular[: n[c] - len(picked[c])]
    return picked


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--complete", type=Path, default=DEFAULT_COMPLETE)
    ap.add_argument("--partial", type=Path, default=DEFAULT_PARTIAL)
    ap.add_argument("--dest", type=Path, default=DEFAULT_DEST)
    ap.add_argument("--n-complete", type=int, default=12)
    ap.add_argument("--n-partial", type=int, default=28)
    ap.add_argument("--per-patient", type=int, default=60)
    ap.add_argument("--min-per-class", type=int, default=5)
    ap.add_argument("--positive-share", type=float, default=round(FULL_SET_SHARE, 3))
    ap.add_argument("--max-odd", type=int, default=12)
    ap.add_argument("--seed", type=int, default=0)
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    roots = {"complete": args.complete.resolve(), "partial": args.partial.resolve()}
    for kind, root in roots.items():
        if not root.is_dir():
            print(f"{kind} source folder not found: {root}", file=sys.stderr)
            return 1
    complete, partial = survey(roots["complete"]), survey(roots["partial"])
    if set(complete) & set(partial):
        print(f"patients in both roots: {sorted(set(complete) & set(partial))}", file=sys.stderr)
        return 1
    chosen_c, chosen_p = choose_patients(complete, partial, args)
    files = {p: complete[p] for p in chosen_c} | {p: partial[p] for p in chosen_p}
    source = {p: "complete" for p in chosen_c} | {p: "partial" for p in chosen_p}
    avail = {p: (len(f["0"]), len(f["1"])) for p, f in files.items()}
    n1 = allocate_positives(avail, args.per_patient, args.positive_share)

    dest: Path = args.dest.resolve()
    foreign = not_a_sample(dest)
    if foreign:
        print(f"{dest} holds more than a sample ({foreign}); not replacing it", file=sys.stderr)
        return 1
    dest.parent.mkdir(parents=True, exist_ok=True)
    # Build beside dest and swap it in only when complete, so a failure (too big, a bad
    # source file) leaves the previous sample as it was.
    staging = staging_dir(dest)
    try:
        rows, total_bytes, du_bytes = build(staging, files, source, avail, n1, roots, args)
        if total_bytes > HARD_LIMIT_BYTES:
            print(f"sample too big: {total_bytes} bytes > {HARD_LIMIT_BYTES}", file=sys.stderr)
            return 1
        cmd = " ".join(["python tools/make_sample.py", *(argv or [])])
        readme = render_readme(rows, args, total_bytes, du_bytes, cmd)
        (staging / "README.md").write_text(readme, encoding="utf-8")
        replace_dir(staging, dest)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    n0 = sum(r["n"]["0"] for r in rows)
    n1_total = sum(r["n"]["1"] for r in rows)
    print(f"wrote {n0 + n1_total} patches of {len(rows)} patients to {dest}")
    n_odd_total = sum(len(r["odd"]) for r in rows)
    print(f"class 0: {n0}, class 1: {n1_total}, smaller than 50x50: {n_odd_total}")
    print(f"{total_bytes:,} bytes of PNG data, {du_bytes:,} bytes on disk")
    return 0


def build(
    out: Path,
    files: dict[str, Files],
    source: dict[str, str],
    avail: dict[str, tuple[int, int]],
    n1: dict[str, int],
    roots: dict[str, Path],
    args: argparse.Namespace,
) -> tuple[list[dict], int, int]:
    """Copy the picked patches into ``out``: (README rows, PNG bytes, bytes on disk)."""
    rows, copied = [], []
    seen_by_shipped_model = shipped_model_patients()
    for p in sorted(files, key=int):
        n = {"1": n1[p], "0": min(avail[p][0], args.per_patient - n1[p])}
        picked = pick(files[p], n, args.max_odd, args.seed)
        sizes = {name: size for c in "01" for name, size in files[p][c]}
        for c in "01":
            out_dir = out / p / c
            out_dir.mkdir(parents=True, exist_ok=True)
            for name in sorted(picked[c]):
                shutil.copyfile(roots[source[p]] / p / c / name, out_dir / name)  # byte for byte
                copied.append(out_dir / name)
        odd_sizes = [sizes[nm] for c in "01" for nm in picked[c] if sizes[nm] != (50, 50)]
        trained = p in seen_by_shipped_model
        rows.append(
            {"patient": p, "source": source[p], "n": n, "avail": avail[p], "odd": odd_sizes,
             "all_odd": n_odd(files[p]), "shipped_trained": trained}
        )  # fmt: skip
    return rows, sum(f.stat().st_size for f in copied), disk_usage(copied)


def not_a_sample(dest: Path) -> str | None:
    """The first entry of ``dest`` that this script would not have written, if any."""
    if not dest.exists():
        return None
    if not dest.is_dir():
        return "not a folder"
    for entry in sorted(dest.iterdir()):
        if not (entry.name == "README.md" or (entry.is_dir() and entry.name.isdigit())):
            return entry.name
    return None


def render_readme(
    rows: list[dict], args: argparse.Namespace, total_bytes: int, du_bytes: int, cmd: str
) -> str:
    n0 = sum(r["n"]["0"] for r in rows)
    n1 = sum(r["n"]["1"] for r in rows)
    n_c = sum(r["source"] == "complete" for r in rows)
    odd_sizes: dict[tuple[int, int], int] = {}
    for r in rows:
        for size in r["odd"]:
            odd_sizes[size] = odd_sizes.get(size, 0) + 1
    n_odd_total = sum(odd_sizes.values())
    shapes = ", ".join(
        f"{w}x{h}: {k}" for (w, h), k in sorted(odd_sizes.items(), key=lambda t: (-t[1], t[0]))
    )
    both = sum(min(r["n"].values()) > 0 for r in rows)
    contents = textwrap.fill(
        f"{len(rows)} patients ({n_c} complete, {len(rows) - n_c} partial), {n0 + n1} "
        f"patches: {n0} class 0 (no IDC), {n1} class 1 (IDC), so {100 * n1 / (n0 + n1):.1f}% "
        f"IDC, as in the full set ({100 * FULL_SET_SHARE:.1f}%). {both} of the {len(rows)} "
        f"patients have patches of both classes. {n_odd_total} patches are smaller than "
        f"50x50 (width x height: {shapes}). Total size: {total_bytes:,} bytes "
        f"({total_bytes / 1e6:.1f} MB) of PNG data, {du_bytes / 1e6:.1f} MB allocated on the "
        f"disk it was built on (4 KiB blocks).",
        88,
    )
    table = "\n".join(
        f"| {r['patient']} | {r['source']} | {r['n']['0']} (of {r['avail'][0]}) "
        f"| {r['n']['1']} (of {r['avail'][1]}) | {len(r['odd'])} (of {r['all_odd']}) "
        f"| {'yes' if r['shipped_trained'] else 'no'} |"
        for r in rows
    )
    seen = [r["patient"] for r in rows if r["shipped_trained"]]
    unseen = [r["patient"] for r in rows if not r["shipped_trained"]]
    if unseen:
        text = (
            f"The model `load_pretrained()` returns was trained or validated on {len(seen)} "
            f"of these patients: scores on them say nothing about how it generalizes. "
            f"Evaluate it on the other {len(unseen)} only: `load_sample(patients=[...])` "
            f"with these ids: {' '.join(unseen)}."
        )
    else:
        text = (
            f"The model `load_pretrained()` returns was trained or validated on all "
            f"{len(seen)} of these patients (its config lists them), so its scores on this "
            "sample say nothing about how it generalizes: docs/evaluation.md gives its "
            "recipe's figures on patients it never saw, by patient-grouped cross-validation."
        )
    shipped = textwrap.fill(text, 88)
    return f"""# Embedded IDC sample

Real patches bundled with idcclf so that tests, examples and `idcclf predict` work
without downloading anything. Load them with `idcclf.datasets.load_sample()`; their
root folder is `idcclf.datasets.sample_path()`. The loader ignores this README (it
reads only `*.png` files).

## Source

A subset of the public *Breast Histopathology Images* set (IDC_regular_ps50_idx5):
RGB PNG patches of 50x50 px cut from whole-mount slides of breast cancer specimens,
labelled for invasive ductal carcinoma (IDC). The full set has 277,524 patches of
279 patients.

- Janowczyk A., Madabhushi A. "Deep learning for digital pathology image analysis:
  a comprehensive tutorial with selected use cases." J Pathol Inform 2016;7:29.
- Cruz-Roa A. et al. "Automatic detection of invasive ductal carcinoma in whole slide
  images with convolutional neural networks." SPIE Medical Imaging 2014.

Layout, as in the full set: `<patient>/<class>/<patient>_idx5_x<X>_y<Y>_class<class>.png`,
class 0 = no IDC, 1 = IDC; X, Y are the top-left pixel coordinates in the slide.
The files are copied byte for byte from the full set (never re-encoded). "Complete"
patients come from a copy holding every patch of the patient, "partial" ones from a
copy holding a random subset of the patient's patches; "of N" below counts the
patches of that copy.

## Contents

{contents}

| patient | source | class 0 | class 1 | smaller than 50x50 | shipped model trained or validated on it |
|---|---|---|---|---|---|
{table}

## The shipped model and these patients

{shipped}

## How it was chosen

- Patients: {args.n_complete} complete patients, those with patches smaller than 50x50
  first (most such patches first; so the loader's `size_policy` meets real edge
  patches), then in seeded pseudo-random order; and {args.n_partial} partial patients
  in seeded pseudo-random order among those with at least {args.per_patient} patches
  and {args.min_per_class} of each class.
- Per patient: {args.per_patient} patches. Positives are handed out one per patient in
  turn (patients in id order) until they make {100 * args.positive_share:.1f}% of the
  sample, so patients with few positives do not pull the share down; the rest are
  negatives. Up to {args.max_odd} of the patient's smaller-than-50x50 patches (one of
  each shape in turn) come first in their class, then 50x50 patches.
- Pseudo-random order: names ranked by `sha256("<seed>:<name>")`, seed {args.seed}.

## Rebuild

From the repository root, with the complete patient folders in `../shared/data/idc`
and the partial ones in `../shared/data/idc-partial`:

    {cmd}
"""


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
