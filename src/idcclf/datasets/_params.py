"""Checking and normalising the parameters of the loaders."""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np

from ._base import CACHE_CHECKS, ON_ERROR, SIZE_POLICIES


def check_params(
    size_policy: Any,
    on_error: Any,
    max_per_class: Any,
    random_state: Any,
    cache_check: Any,
    verbose: Any = 0,
) -> None:
    """Validate the parameters, naming the first bad one."""
    if not isinstance(verbose, numbers.Integral) or verbose < 0:
        raise ValueError(f"verbose must be an int >= 0, got {verbose!r}")
    if size_policy not in SIZE_POLICIES:
        raise ValueError(f"size_policy must be one of {SIZE_POLICIES}, got {size_policy!r}")
    if on_error not in ON_ERROR:
        raise ValueError(f"on_error must be one of {ON_ERROR}, got {on_error!r}")
    if cache_check not in CACHE_CHECKS:
        raise ValueError(f"cache_check must be one of {CACHE_CHECKS}, got {cache_check!r}")
    if max_per_class is not None and (
        isinstance(max_per_class, bool)
        or not isinstance(max_per_class, numbers.Integral)
        or max_per_class < 1
    ):
        raise ValueError(f"max_per_class must be None or an int >= 1, got {max_per_class!r}")
    if random_state is not None and not isinstance(
        random_state, numbers.Integral | np.random.Generator | np.random.RandomState
    ):
        raise ValueError(
            "random_state must be None, an int, a numpy Generator or RandomState, "
            f"got {random_state!r}"
        )


def normalize_patients(patients: Any) -> list[str] | None:
    """The patient ids as strings (None: every patient)."""
    if patients is None:
        return None
    if isinstance(patients, str | numbers.Integral):
        patients = [patients]
    out = []
    for p in patients:
        if isinstance(p, bool) or not isinstance(p, str | numbers.Integral):
            raise ValueError(f"patients must hold str or int ids, got {p!r}")
        out.append(str(p))
    if not out:
        raise ValueError("patients is empty; pass None to load all patients")
    return out
