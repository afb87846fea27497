"""Train / validation / test splits that keep every patient on one side.

:func:`patient_split` splits sample indices, :func:`split_by_patient` a loaded data
set, and :func:`materialize_split` a folder tree of patch files (``idcclf split``).
"""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
from sklearn.utils import Bunch, check_random_state

from ._io import replace_dir

SPLIT_NAMES = ("train", "val", "test")
#: Folder of each part written by :func:`materialize_split`, as in the tutorial.
SPLIT_FOLDERS = {"train": "training", "val": "validation", "test": "testing"}
#: Random patient orders tried; the one closest to the target sizes and class balance wins.
_N_TRIALS = 500


def patient_split(
    groups,
    y,
    *,
    train_size: float = 0.8,
    val_size: float = 0.1,
    random_state: int | np.random.RandomState | None = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Split sample indices into train, validation and test parts by patient.

    Each patient goes to exactly one part. Among many random assignments of patients
    the one whose part sizes (in patches) and positive rates are closest to the
    targets is kept, so the split is stratified as closely as the patients allow.

    Parameters
    ----------
    groups : array-like of shape (n_samples,)
        Patient id of every sample.
    y : array-like of shape (n_samples,)
        Labels; the positive rate of each part is matched to the whole.
    train_size, val_size : float, default=0.8, 0.1
        Target shares of patches; the test part gets the rest. ``val_size`` may be 0.
    random_state : int, RandomState or None, default=0
        Makes the split reproducible.

    Returns
    -------
    train, val, test : ndarray of int
        Sorted sample indices of each part (``val`` is empty when ``val_size=0``).
    """
    groups = np.asarray(groups)
    y = np.asarray(y)
    if groups.shape != y.shape or groups.ndim != 1:
        raise ValueError(f"groups {groups.shape} and y {y.shape} must be 1-D and of equal length")
    test_size = 1.0 - train_size - val_size
    if not (0 < train_size < 1 and 0 <= val_size < 1 and test_size > 1e-9):
        raise ValueError(
            f"train_size={train_size} and val_size={val_size} must be shares that leave a "
            "test part (train_size + val_size < 1)"
        )
    patients, patient_of = np.unique(groups, return_inverse=True)
    n_parts = 3 if val_size > 0 else 2
    if len(patients) < n_parts:
        raise ValueError(
            f"a split by patient into {n_parts} parts needs at least {n_parts} patients, "
            f"got {len(patients)}"
        )
    positive = (y == np.unique(y)[-1]).astype(float)
    patches = np.bincount(patient_of, minlength=len(patients)).astype(float)
    positives = np.bincount(patient_of, weights=positive, minlength=len(patients))
    targets = np.array([train_size, val_size, test_size])
    rng = check_random_state(random_state)

    best, best_cost = None, np.inf
    for _ in range(_N_TRIALS):
        part = _assign(rng.permutation(len(patients)), patches, targets, n_parts)
        cost = _cost(part, patches, positives, targets, n_parts)
        if cost < best_cost:
            best, best_cost = part, cost
    sample_part = best[patient_of]
    return tuple(np.flatnonzero(sample_part == k) for k in range(3))


def _assign(order, patches, targets, n_parts) -> np.ndarray:
    """Greedily give each patient, in ``order``, to the part furthest below its target."""
    part = np.empty(len(order), dtype=int)
    filled = np.zeros(3)
    total = patches.sum()
    parts = [0, 1, 2] if n_parts == 3 else [0, 2]
    # Seed every part with one patient so that none ends up empty.
    for k, patient in zip(parts, order[: len(parts)], strict=True):
        part[patient] = k
        filled[k] += patches[patient]
    for patient in order[len(parts) :]:
        deficit = [targets[k] * total - filled[k] for k in parts]
        k = parts[int(np.argmax(deficit))]
        part[patient] = k
        filled[k] += patches[patient]
    return part


def _cost(part, patches, positives, targets, n_parts) -> float:
    total, rate = patches.sum(), positives.sum() / patches.sum()
    cost = 0.0
    for k in [0, 1, 2] if n_parts == 3 else [0, 2]:
        size = patches[part == k].sum()
        cost += abs(size / total - targets[k]) / targets[k]
        cost += abs(positives[part == k].sum() / size - rate)
    return cost


def validation_split(
    y: np.ndarray, groups, fraction: float, seed: int | None
) -> tuple[np.ndarray, np.ndarray | None]:
    """Training and validation indices: stratified by class, grouped by patient if given.

    The split ``IDCClassifier(validation_fraction=fraction).fit`` holds out. With
    ``fraction`` 0 every sample trains and the validation part is None.
    """
    from sklearn.model_selection import StratifiedGroupKFold, StratifiedShuffleSplit

    everything = np.arange(len(y))
    if fraction == 0:
        return everything, None
    labels = np.asarray(y).astype(int)
    if groups is None:
        splitter = StratifiedShuffleSplit(n_splits=1, test_size=fraction, random_state=seed)
        try:
            return next(splitter.split(everything, labels))
        except ValueError as exc:
            raise ValueError(
                f"cannot hold out validation_fraction={fraction} of {len(y)} samples with "
                f"every class on both sides ({exc}); use more data or validation_fraction=0"
            ) from None
    n_groups = np.unique(groups).size
    if n_groups < 2:
        raise ValueError(
            "a validation split by patient needs at least 2 distinct groups, got "
            f"{n_groups}; pass more patients or set validation_fraction=0"
        )
    n_splits = min(n_groups, max(2, round(1 / fraction)))
    splitter = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    return next(splitter.split(everything, labels, groups))


def split_by_patient(
    bunch: Bunch,
    *,
    train_size: float = 0.8,
    val_size: float = 0.1,
    random_state: int | np.random.RandomState | None = 0,
) -> Bunch:
    """Split a loaded data set (from :func:`idcclf.load_idc`) into parts by patient.

    Parameters
    ----------
    bunch : Bunch
        With at least ``data``, ``target`` and ``groups``; every array field whose
        first dimension is the number of samples is split alongside.
    train_size, val_size, random_state
        As in :func:`patient_split`.

    Returns
    -------
    Bunch
        ``train``, ``val`` and ``test``, each a Bunch with the same fields.
    """
    indices = patient_split(
        bunch.groups,
        bunch.target,
        train_size=train_size,
        val_size=val_size,
        random_state=random_state,
    )
    n_samples = len(bunch.target)
    parts = {}
    for name, index in zip(SPLIT_NAMES, indices, strict=True):
        fields = {
            key: value[index]
            for key, value in bunch.items()
            if key != "target_names"
            and isinstance(value, np.ndarray)
            and value.ndim >= 1
            and len(value) == n_samples
        }
        parts[name] = Bunch(**fields)
    return Bunch(**parts)


# ----------------------------------------------------------------------- file trees


def scan_patch_tree(root: str | os.PathLike[str]) -> Bunch:
    """List the patch files of an IDC tree without decoding them.

    The tree is walked exactly as :func:`idcclf.load_idc` walks it, and held to the
    same rules: every ``.png`` must have a name that parses and agrees with its
    folders, and sit in a ``<patient>/<0|1>/`` folder (or, in a root whose only
    sub-folders are ``0`` and ``1``, in one of those); hidden entries and files not
    ending in ``.png`` are ignored.

    Parameters
    ----------
    root : str or path-like
        Folder holding one folder per patient, or one part written by
        :func:`materialize_split` (``0/`` and ``1/``).

    Returns
    -------
    Bunch
        ``paths`` (list of Path, sorted), ``groups`` (str array: patient of each file)
        and ``target`` (int array: 0 = no IDC, 1 = IDC).

    Raises
    ------
    FileNotFoundError, NotADirectoryError
        If ``root`` is missing or not a folder.
    ValueError
        Naming the first bad file (as ``load_idc(on_error="raise")`` does, before
        decoding), or if there is no patch at all.
    """
    from .datasets._scan import scan_tree

    tree = scan_tree(root, stat_files=False)
    good, bad = tree.candidates()
    if bad:
        path, reason = bad[0]
        more = f" ({len(bad) - 1} more bad file(s) found)" if len(bad) > 1 else ""
        raise ValueError(f"bad IDC patch file {path}: {reason}{more}")
    return Bunch(
        paths=[Path(root) / c.relpath for c in good],
        groups=np.array([c.patient for c in good], dtype=str),
        target=np.array([c.label for c in good], dtype=np.int64),
    )


def materialize_split(
    src: str | os.PathLike[str],
    dst: str | os.PathLike[str],
    *,
    train_size: float = 0.8,
    val_size: float = 0.1,
    link: bool = False,
    force: bool = False,
    random_state: int | np.random.RandomState | None = 0,
) -> Bunch:
    """Copy (or hard-link) an IDC tree into ``training/``, ``validation/``, ``testing/``.

    Patients are assigned to parts with :func:`patient_split`; each part gets ``0/``
    and ``1/`` folders holding its patients' files under their own names (the layout
    of the tutorial's ``build_dataset.py``, read by Keras' ``image_dataset_from_directory``).

    The parts are first written into a temporary folder inside ``dst`` and then renamed
    into place, so an interrupted run leaves no half-filled part behind.

    Parameters
    ----------
    src : str or path-like
        IDC tree, ``<patient>/<0|1>/*.png`` (or ``<0|1>/*.png``, see
        :func:`scan_patch_tree`).
    dst : str or path-like
        Output folder; created if missing. It must be empty unless ``force``.
    train_size, val_size : float, default=0.8, 0.1
        Target shares of patches; the test part gets the rest. ``val_size=0`` leaves
        ``validation/`` empty.
    link : bool, default=False
        Hard-link the files instead of copying them (no extra disk space; ``src`` and
        ``dst`` must be on one file system).
    force : bool, default=False
        Write into a non-empty ``dst``: its ``training/``, ``validation/`` and
        ``testing/`` folders are replaced as a whole (a file left from an earlier split
        could put a patient in two parts); anything else in ``dst`` is left alone.
        The replaced folders are listed in the result.
    random_state : int, RandomState or None, default=0
        Seed of the patient assignment.

    Returns
    -------
    Bunch
        ``parts``: for each of ``train``, ``val``, ``test`` a Bunch with ``folder``,
        ``patients`` (sorted list) and ``counts`` (``{0: n, 1: n}``); ``replaced``:
        folders of ``dst`` that were replaced; ``n_files``; ``linked``.

    Raises
    ------
    FileExistsError
        If ``dst`` is not empty and ``force`` is False, or is a file.
    ValueError
        For a bad tree (see :func:`scan_patch_tree`), bad sizes, too few patients, or
        ``dst`` equal to ``src``.
    OSError
        If a file cannot be copied or linked (e.g. ``link`` across file systems).
    """
    src, dst = Path(src), Path(dst)
    tree = scan_patch_tree(src)
    patients = np.unique(tree.groups)
    if len(patients) == 1:
        raise ValueError(
            f"{src}: every patch is of patient {patients[0]}; it looks like a single "
            "patient's folder: pass the folder that holds the patient folders"
        )
    if dst.exists() and not dst.is_dir():
        raise FileExistsError(f"{dst}: exists and is not a directory")
    if dst.resolve() == src.resolve():
        raise ValueError(f"{dst}: the destination must differ from the source tree")
    for folder in SPLIT_FOLDERS.values():
        replaced_folder = (dst / folder).resolve()
        if replaced_folder == src.resolve() or replaced_folder in src.resolve().parents:
            raise ValueError(
                f"{src}: the source lies in {dst / folder}, which the split would replace"
            )
    if dst.exists() and any(dst.iterdir()) and not force:
        raise FileExistsError(
            f"{dst}: not empty; pass --force (force=True) to replace its training/, "
            "validation/ and testing/ folders"
        )
    indices = patient_split(
        tree.groups,
        tree.target,
        train_size=train_size,
        val_size=val_size,
        random_state=random_state,
    )
    transfer = os.link if link else shutil.copy2
    dst.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=dst, prefix=".idcclf-split-"))
    parts, replaced = {}, []
    try:
        for name, index in zip(SPLIT_NAMES, indices, strict=True):
            folder = staging / SPLIT_FOLDERS[name]
            for label in ("0", "1"):
                (folder / label).mkdir(parents=True)
            for i in index:
                path = tree.paths[i]
                try:
                    transfer(path, folder / str(tree.target[i]) / path.name)
                except OSError as exc:
                    if link and exc.errno == errno.EXDEV:
                        raise OSError(
                            exc.errno,
                            f"cannot hard-link {path} into {dst}: they are on different "
                            "file systems; copy instead (no --link)",
                        ) from None
                    raise
            parts[name] = Bunch(
                folder=dst / SPLIT_FOLDERS[name],
                patients=sorted(np.unique(tree.groups[index]).tolist()),
                counts={label: int(np.sum(tree.target[index] == label)) for label in (0, 1)},
            )
        for name in SPLIT_NAMES:
            target = dst / SPLIT_FOLDERS[name]
            existed = target.exists() or target.is_symlink()
            replace_dir(staging / SPLIT_FOLDERS[name], target)
            if existed:
                replaced.append(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return Bunch(parts=parts, replaced=replaced, n_files=len(tree.paths), linked=link)
