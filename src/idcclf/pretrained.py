"""The CancerNet weights shipped in the package, and how they are written."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from ._io import atomic_path, atomic_write_text
from .estimator import IDCClassifier

PRETRAINED_DIR = Path(__file__).resolve().parent / "_data" / "pretrained"
WEIGHTS = "cancernet_weights.npz"
CONFIG = "config.json"


def load_pretrained(folder: str | os.PathLike | None = None) -> IDCClassifier:
    """Return the fitted ``IDCClassifier`` whose weights ship with idcclf.

    Parameters
    ----------
    folder : str or path, default=None
        A folder written by :func:`save_pretrained`; the bundled model by default.

    Returns
    -------
    IDCClassifier
        Fitted (``classes_`` 0 = no IDC, 1 = IDC): ready for ``predict_proba``. Its
        ``pretrained_info_`` says how it was trained and what it scored.
    """
    folder = Path(folder) if folder is not None else PRETRAINED_DIR
    config_path, weights_path = folder / CONFIG, folder / WEIGHTS
    if not config_path.is_file() or not weights_path.is_file():
        raise FileNotFoundError(
            f"no pretrained model in {folder} (expected {CONFIG} and {WEIGHTS})"
        )
    config = json.loads(config_path.read_text(encoding="utf-8"))
    clf = IDCClassifier(**config["params"])
    classes = np.asarray(config["classes"])
    shape = tuple(config["image_shape"])
    # Building the network the way fit does gives the same layers the weights came from.
    clf.initialize(np.zeros((len(classes), *shape), dtype=np.uint8), classes)
    with np.load(weights_path) as stored:
        clf.model_.set_weights([stored[f"w{i:03d}"] for i in range(len(stored.files))])
    clf.history_ = config.get("history", {})
    clf.best_epoch_ = config.get("best_epoch")
    # Written since these were recorded at fit; None for older folders.
    input_range = config.get("input_range")
    clf.input_range_ = None if input_range is None else tuple(input_range)
    for name in ("training_groups", "validation_groups"):
        groups = config.get(name)
        setattr(clf, f"{name}_", None if groups is None else np.asarray(groups))
    clf.pretrained_info_ = config.get("info", {})
    return clf


def save_pretrained(clf: IDCClassifier, folder: str | os.PathLike, info: dict | None = None):
    """Write a fitted classifier's weights and settings for :func:`load_pretrained`.

    Only the weights are kept (no optimizer state), so the files stay small.

    Parameters
    ----------
    clf : IDCClassifier
        A fitted classifier.
    folder : str or path
        Created if missing; its two files are replaced atomically.
    info : dict, default=None
        Free-form provenance (command, data, scores) stored in the config.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    params = {
        key: (list(value) if isinstance(value, tuple) else value)
        for key, value in clf.get_params().items()
        if key not in ("checkpoint_dir", "verbose")
    }
    config = {
        "params": params,
        "classes": clf.classes_.tolist(),
        "image_shape": list(clf.image_shape_),
        "history": clf.history_,
        "best_epoch": clf.best_epoch_,
        "input_range": getattr(clf, "input_range_", None),
        "training_groups": _as_list(getattr(clf, "training_groups_", None)),
        "validation_groups": _as_list(getattr(clf, "validation_groups_", None)),
        "info": info or {},
    }
    # The model's own arrays only: Keras' weight files carry the optimizer state too,
    # which doubles the size and is useless for prediction.
    arrays = {f"w{i:03d}": w for i, w in enumerate(clf.model_.get_weights())}
    with atomic_path(folder / WEIGHTS) as tmp, open(tmp, "wb") as handle:
        np.savez_compressed(handle, **arrays)
    atomic_write_text(folder / CONFIG, json.dumps(config, indent=2))
    return folder


def _as_list(values):
    return None if values is None else np.asarray(values).tolist()
