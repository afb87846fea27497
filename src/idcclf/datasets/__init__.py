"""Loaders for the IDC breast histopathology patch data set.

The public *Breast Histopathology Images* set (IDC_regular_ps50_idx5; Janowczyk &
Madabhushi 2016, Cruz-Roa et al. 2014) is a tree of RGB PNG patches::

    <root>/<patient>/<0|1>/<patient>_idx5_x<X>_y<Y>_class<C>.png

:func:`load_idc` reads such a tree (validating every file name against its folders),
decodes the PNGs in parallel and caches the decoded arrays on disk; :func:`load_sample`
reads the small real sample that ships inside the package. See ``docs/loaders.md``.

Modules, as scikit-learn lays out its loaders: ``_base`` (names, records),
``_params`` (parameter checks), ``_scan`` (the one tree walk), ``_decode`` (PNG
decoding and its pool), ``_cache``, ``_memory``, ``_progress`` (``verbose``),
``_assemble`` (rows, DESCR, warnings), ``_job`` (one cache entry), ``_idc``
(``load_idc`` over one root or several) and ``_sample``.
"""

from ._base import (
    CACHE_CHECKS,
    ON_ERROR,
    PATCH_SIZE,
    SIZE_POLICIES,
    TARGET_NAMES,
    parse_patch_filename,
)
from ._decode import decode_executor, load_patches
from ._idc import load_idc
from ._sample import load_sample, sample_path

__all__ = [
    "CACHE_CHECKS",
    "ON_ERROR",
    "PATCH_SIZE",
    "SIZE_POLICIES",
    "TARGET_NAMES",
    "decode_executor",
    "load_idc",
    "load_patches",
    "load_sample",
    "parse_patch_filename",
    "sample_path",
]
