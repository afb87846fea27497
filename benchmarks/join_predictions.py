"""Join the predictions files of one cross-validation that ran its folds in parts.

A run of ``cv_accuracy.py`` stopped after some folds (``--max-folds 4``) and finished
later (``--fold 5``, the same settings and ``--first-seed``) leaves two
``--predictions`` files. Joined, they are the one file a run of all folds would have
saved, for ``smoothing.py`` and ``paired_runs.py``. Files that share a fold or a
patient, or hold different fields, are refused: they are not parts of one run.

Usage::

    python benchmarks/join_predictions.py PART1.npz PART2.npz [...] --out JOINED.npz
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cv_accuracy import save_predictions  # noqa: E402


def join(paths: list[Path]) -> dict[str, np.ndarray]:
    """The arrays of every file, concatenated in the given order and sorted by fold."""
    parts = []
    for path in paths:
        with np.load(path, allow_pickle=False) as data:
            if "fold" not in data.files or "patient" not in data.files:
                raise ValueError(f"{path} has no fold and patient: not a predictions file")
            parts.append((path, {key: data[key] for key in data.files}))
    first_path, first = parts[0]
    seen_folds: dict[int, Path] = {}
    seen_patients: dict[str, Path] = {}
    for path, arrays in parts:
        if sorted(arrays) != sorted(first):
            raise ValueError(
                f"{path} holds {', '.join(sorted(arrays))}, {first_path} "
                f"{', '.join(sorted(first))}: not parts of one run"
            )
        for fold in np.unique(arrays["fold"]).tolist():
            if fold in seen_folds:
                raise ValueError(f"fold {fold} is in both {seen_folds[fold]} and {path}")
            seen_folds[fold] = path
        for patient in np.unique(arrays["patient"]).tolist():
            if patient in seen_patients:
                raise ValueError(
                    f"patient {patient} is in both {seen_patients[patient]} and {path}"
                )
            seen_patients[patient] = path
    joined = {key: np.concatenate([arrays[key] for _, arrays in parts]) for key in first}
    order = np.argsort(joined["fold"], kind="stable")
    return {key: values[order] for key, values in joined.items()}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("parts", type=Path, nargs="+", help="cv_accuracy.py --predictions files")
    parser.add_argument("--out", type=Path, required=True, help="the joined .npz")
    args = parser.parse_args(argv)
    if len(args.parts) < 2:
        parser.error("give at least two files to join")
    missing = [str(path) for path in args.parts if not path.is_file()]
    if missing:
        parser.exit(2, f"no predictions at {', '.join(missing)}\n")
    try:
        joined = join(args.parts)
    except ValueError as exc:
        parser.exit(2, f"{exc}\n")
    save_predictions(args.out, [joined])
    folds = ", ".join(map(str, np.unique(joined["fold"]).tolist()))
    n_patients = len(np.unique(joined["patient"]))
    print(f"wrote {args.out}: folds {folds}, {n_patients} patients, {len(joined['fold'])} patches")
    return 0


if __name__ == "__main__":
    sys.exit(main())
