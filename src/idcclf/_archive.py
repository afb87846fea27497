"""The inputs of :func:`idcclf.predict_patients`: an archive's patient folders, their
PNG files and labels, and the model to score them with."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from pathlib import Path

import numpy as np

#: Class folders of a patient folder; the folder is the label of its patches.
CLASS_FOLDERS = ("0", "1")

_COORDS = re.compile(r"_x(\d+)_y(\d+)")


def has_class_folder(folder: Path) -> bool:
    return any((folder / name).is_dir() for name in CLASS_FOLDERS)


def patient_folders(roots) -> list[tuple[str, Path]]:
    """``(patient, folder)`` of every patient under ``roots``, roots in order, sorted within.

    A folder with a ``0`` or ``1`` sub-folder is a patient folder; any other folder is
    a root whose sub-folders with class folders are its patients.
    """
    if isinstance(roots, (str, os.PathLike)):
        roots = [roots]
    roots = [Path(r) for r in roots]
    if not roots:
        raise ValueError("roots is empty: pass an archive folder or patient folders")
    found: list[tuple[str, Path]] = []
    for root in roots:
        if not root.exists():
            raise FileNotFoundError(f"{root}: no such folder")
        if not root.is_dir():
            raise NotADirectoryError(f"{root}: not a folder")
        if has_class_folder(root):
            found.append((root.name, root))
            continue
        children = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
        patients = [(p.name, p) for p in children if has_class_folder(p)]
        if not patients:
            raise ValueError(
                f"{root}: neither a patient folder (with 0/ or 1/ sub-folders) nor a "
                "folder of patient folders (<root>/<patient>/<0|1>/*.png)"
            )
        found += patients
    seen: dict[str, Path] = {}
    for patient, folder in found:
        if patient in seen:
            raise ValueError(
                f"patient {patient!r} is given twice: {seen[patient]} and {folder}; "
                "results are keyed by patient, so each must be unique"
            )
        seen[patient] = folder
    return found


def patient_files(folder: Path) -> tuple[list[Path], list[int]]:
    """The patient's non-hidden ``*.png`` files, class folder then name order, and labels."""
    files: list[Path] = []
    labels: list[int] = []
    for label, name in enumerate(CLASS_FOLDERS):
        class_dir = folder / name
        if not class_dir.is_dir():
            continue
        with os.scandir(class_dir) as entries:
            # Broken links stay in, so that decoding names them instead of losing them.
            names = sorted(
                e.name
                for e in entries
                if e.name[-4:].lower() == ".png" and not e.name.startswith(".") and not e.is_dir()
            )
        files += [class_dir / n for n in names]
        labels += [label] * len(names)
    return files, labels


def coords_of(names: Iterable[str]) -> np.ndarray:
    out = []
    for name in names:
        match = _COORDS.search(name)
        out.append((int(match[1]), int(match[2])) if match else (-1, -1))
    return np.array(out, dtype=np.int64).reshape(-1, 2)


def check_model(model):
    """The fitted estimator ``model`` names: a joblib file, an estimator, or None."""
    if model is None:
        from .pretrained import load_pretrained

        return load_pretrained()
    if isinstance(model, (str, os.PathLike)):
        import joblib

        path = Path(model)
        if not path.is_file():
            raise FileNotFoundError(f"model file {path} not found")
        try:
            model = joblib.load(path)
        except Exception as exc:  # a truncated pickle raises EOFError, garbage others
            raise ValueError(
                f"{path}: not a readable model ({type(exc).__name__}: {exc})"
            ) from None
    if not hasattr(model, "predict_proba"):
        raise TypeError(f"model must have predict_proba, got {type(model).__name__}")
    from sklearn.utils.validation import check_is_fitted

    check_is_fitted(model)
    return model
