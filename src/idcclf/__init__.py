"""idcclf: invasive ductal carcinoma classification of breast histopathology patches.

The public API is imported lazily, so that ``import idcclf`` and the command line's
``--help`` do not pay TensorFlow's start-up time until a model is needed.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_EXPORTS = {
    "IDCClassifier": "estimator",
    "build_cancernet": "model",
    "load_idc": "datasets",
    "load_sample": "datasets",
    "load_patches": "datasets",
    "load_pretrained": "pretrained",
    "choose_threshold": "metrics",
    "patient_split": "splits",
    "split_by_patient": "splits",
    "evaluation_report": "metrics",
    "sensitivity": "metrics",
    "specificity": "metrics",
    "quiet_tensorflow": "_tensorflow",
    "predict_patients": "distributed",
    "standardize_patients": "standardize",
    "normalize_stains": "standardize",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'idcclf' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(list(globals()) + __all__)
