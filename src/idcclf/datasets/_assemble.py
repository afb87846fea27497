"""From checked file lists to the returned Bunch: picking, decoding, DESCR, warnings."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.utils import Bunch

from ._base import PATCH_SIZE, TARGET_NAMES, USABLE, Patch, Status
from ._decode import DecodePool, Statuses
from ._scan import Bad


def raise_bad(bad: Sequence[Bad]) -> None:
    """Raise the ValueError of ``on_error="raise"`` for the first bad file."""
    path, reason = bad[0]
    more = f" ({len(bad) - 1} more bad file(s) found)" if len(bad) > 1 else ""
    raise ValueError(
        f"bad IDC patch file {path}: {reason}{more}. "
        "Fix or remove it, or pass on_error='skip' to leave bad files out."
    )


def _where(meta: dict[str, Any]) -> str:
    return ", ".join(root for root, _ in meta["roots"])


def emit_warnings(meta: dict[str, Any]) -> None:
    """Warn about skipped and dropped files (again on every cache hit)."""
    bad = meta["skipped"]
    if bad:
        lines = [f"  {path}: {reason}" for path, reason in bad]
        msg = f"load_idc skipped {len(bad)} bad file(s) under {_where(meta)}:\n"
        warnings.warn(msg + "\n".join(lines), UserWarning, stacklevel=3)
    if meta["n_dropped"]:
        warnings.warn(
            f"load_idc dropped {meta['n_dropped']} patch(es) under {_where(meta)} that are "
            f"smaller than {PATCH_SIZE}x{PATCH_SIZE} (size_policy='drop')",
            UserWarning,
            stacklevel=3,
        )


def merge(parts: Sequence[tuple[dict[str, Any], dict[str, Any]]]) -> dict[str, Any]:
    """The metadata of several parts loaded one after the other."""
    meta = dict(parts[0][1])
    for _, other in parts[1:]:
        meta["roots"] = meta["roots"] + other["roots"]
        meta["skipped"] = meta["skipped"] + other["skipped"]
        for key in ("n_padded", "n_resized", "n_dropped"):
            meta[key] += other[key]
    return meta


def _rng(random_state: Any) -> np.random.Generator | np.random.RandomState:
    if isinstance(random_state, np.random.Generator | np.random.RandomState):
        return random_state
    return np.random.default_rng(random_state)


def decode_capped(
    paths: list[str],
    labels: np.ndarray,
    *,
    size_policy: str,
    max_per_class: int,
    random_state: Any,
    pool: DecodePool,
    progress: Any = None,
) -> tuple[list[int], np.ndarray, np.ndarray, Statuses]:
    """Decode a random subset of at most ``max_per_class`` usable patches per class.

    Files are decoded in a fixed random order per class, in rounds, until the class
    has ``max_per_class`` usable patches, so dropped or bad files are replaced by the
    next ones. Returns the decoded indices (ascending) with their rows, stored shapes
    and statuses.
    """
    rng = _rng(random_state)
    queues = {
        lab: np.flatnonzero(labels == lab)[rng.permutation(int((labels == lab).sum()))]
        for lab in (0, 1)
    }
    taken = {0: 0, 1: 0}
    accepted = {0: 0, 1: 0}
    parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    status_all: Statuses = []
    while True:
        batch = []
        for lab in (0, 1):
            nxt = queues[lab][taken[lab] : taken[lab] + max_per_class - accepted[lab]]
            taken[lab] += len(nxt)
            batch.append(nxt)
        idx = np.concatenate(batch)
        if idx.size == 0:
            break
        data, shapes, status = pool.decode([paths[i] for i in idx], size_policy, None, progress)
        for i, (code, _) in zip(idx, status, strict=True):
            if code in USABLE:
                accepted[int(labels[i])] += 1
        parts.append((idx, data, shapes))
        status_all.extend(status)
    if not parts:
        empty = np.empty((0, PATCH_SIZE, PATCH_SIZE, 3), np.uint8)
        return [], empty, np.zeros((0, 2), np.int64), []
    idx = np.concatenate([p[0] for p in parts])
    order = np.argsort(idx, kind="stable")
    data = np.concatenate([p[1] for p in parts])[order]
    shapes = np.concatenate([p[2] for p in parts])[order]
    return idx[order].tolist(), data, shapes, [status_all[j] for j in order]


def row_arrays(kept: Sequence[Patch], data: np.ndarray, shapes: np.ndarray) -> dict[str, Any]:
    """The arrays of the result, one row per kept patch."""
    return {
        "data": data if isinstance(data, np.memmap) else np.ascontiguousarray(data),
        "target": np.array([c.label for c in kept], dtype=np.int64),
        "groups": np.array([c.patient for c in kept], dtype=str),
        "coords": np.array([(c.x, c.y) for c in kept], dtype=np.int64).reshape(-1, 2),
        "filenames": np.array([c.relpath for c in kept], dtype=str),
        "original_shapes": np.ascontiguousarray(shapes, dtype=np.int64),
    }


def _root_lines(roots: list[list[Any]]) -> list[str]:
    if len(roots) == 1:
        return [f"root: {roots[0][0]}"]
    lines = [f"roots ({len(roots)}):"]
    for root, counts in roots:
        n = sum(c[0] + c[1] for c in counts.values())
        lines.append(f"    {root}: {len(counts)} patient(s), {n} patches")
    return lines


def describe(meta: dict[str, Any]) -> str:
    """The DESCR text of a load."""
    counts = {p: c for _, per_patient in meta["roots"] for p, c in per_patient.items()}
    n0 = sum(c[0] for c in counts.values())
    n1 = sum(c[1] for c in counts.values())
    patients = sorted(counts)
    rows = "\n".join(f"    {p:>10}  {c[0]:>7}  {c[1]:>7}" for p, c in sorted(counts.items()))
    mpc = meta["max_per_class"]
    lines = [
        "IDC breast histopathology patches (idcclf.datasets.load_idc)",
        "",
        *_root_lines(meta["roots"]),
        f"patients ({len(patients)}): {', '.join(patients)}",
        f"patches: {n0 + n1} (class 0 'no IDC': {n0}; class 1 'IDC': {n1})",
        "data: uint8 RGB array of shape (n, 50, 50, 3)",
        "",
        f"    {'patient':>10}  {'class 0':>7}  {'class 1':>7}",
        rows,
        "",
        f"max_per_class: {mpc}"
        + (f" (random subset, random_state={meta['random_state']})" if mpc else ""),
        f"size_policy: {meta['size_policy']!r}; patches smaller than 50x50: "
        f"{meta['n_padded']} padded with white (bottom/right), {meta['n_resized']} "
        f"resized to 50x50, {meta['n_dropped']} dropped",
        f"on_error: {meta['on_error']!r}; bad files skipped: {len(meta['skipped'])}",
        "",
        "Labels come from the class folders, checked against the file names; coords are",
        "the (x, y) of each patch's top-left corner in its slide, from the file name.",
    ]
    return "\n".join(lines)


def make_bunch(arrays: dict[str, np.ndarray], descr: str) -> Bunch:
    return Bunch(
        data=arrays["data"],
        target=arrays["target"],
        groups=arrays["groups"],
        coords=arrays["coords"],
        filenames=arrays["filenames"],
        original_shapes=arrays["original_shapes"],
        target_names=np.array(TARGET_NAMES),
        DESCR=descr,
    )


def count_statuses(codes: np.ndarray) -> dict[str, int]:
    return {
        "n_padded": int((codes == Status.PADDED).sum()),
        "n_resized": int((codes == Status.RESIZED).sum()),
        "n_dropped": int((codes == Status.DROPPED).sum()),
    }
