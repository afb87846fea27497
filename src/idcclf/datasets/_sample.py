"""The real IDC sample shipped inside the package."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from sklearn.utils import Bunch

from ._idc import load_idc

_SAMPLE_SOURCE = (
    "Embedded sample of the public 'Breast Histopathology Images' data set\n"
    "(IDC_regular_ps50_idx5; Janowczyk & Madabhushi, J Pathol Inform 2016;7:29;\n"
    "Cruz-Roa et al., SPIE Medical Imaging 2014), shipped inside idcclf: a seeded random\n"
    "subset of 60 real RGB patches of each of 40 patients (12 complete, 28 partial),\n"
    "edge patches smaller than 50x50 among them, copied byte for byte (see\n"
    "idcclf/_data/sample/README.md and tools/make_sample.py)."
)


def sample_path() -> Path:
    """Return the root folder of the real IDC sample embedded in the package.

    Returns
    -------
    pathlib.Path
        Folder laid out as ``<patient>/<0|1>/<patient>_idx5_x<X>_y<Y>_class<C>.png``;
        pass it to :func:`load_idc` or to ``idcclf predict``.
    """
    # idcclf/datasets/_sample.py -> idcclf/_data/sample
    return Path(__file__).resolve().parents[1] / "_data" / "sample"


def load_sample(
    *, return_X_y: bool = False, **kwargs: Any
) -> Bunch | tuple[np.ndarray, np.ndarray]:
    """Load the real IDC sample embedded in the package.

    2,400 real patches, 60 of each of 40 patients, of the public *Breast
    Histopathology Images* set (IDC_regular_ps50_idx5), 28% IDC as in the full set,
    with 61 edge patches smaller than 50x50; see ``idcclf/_data/sample/README.md``.

    Parameters
    ----------
    return_X_y : bool, default=False
        Return ``(data, target)`` instead of a Bunch.
    **kwargs
        Passed to :func:`load_idc` (``patients``, ``max_per_class``, ``size_policy``,
        ``on_error``, ``cache``, ``cache_check``, ``memory_map``, ``data_home``,
        ``n_jobs``, ``random_state``, ``verbose``).

    Returns
    -------
    data : sklearn.utils.Bunch or tuple of ndarray
        As :func:`load_idc`; ``DESCR`` starts with the sample's source.
    """
    if "path" in kwargs:
        raise TypeError("load_sample() reads the embedded sample; use load_idc(path) instead")
    bunch = load_idc(sample_path(), return_X_y=False, **kwargs)
    bunch.DESCR = _SAMPLE_SOURCE + "\n\n" + bunch.DESCR
    return (bunch.data, bunch.target) if return_X_y else bunch
