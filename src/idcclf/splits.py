"""Train / validation / test splits that keep every patient on one side."""

from __future__ import annotations

import numpy as np
from sklearn.utils import Bunch, check_random_state

SPLIT_NAMES = ("train", "val", "test")
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
