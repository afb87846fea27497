"""Text formatting shared by reports, tables and commands: one rule for missing values.

A metric that is undefined (e.g. sensitivity without IDC patches) is None or NaN; it is
shown as ``n/a`` in text and Markdown, left empty in CSV, and written as null in JSON
(:func:`idcclf.metrics.report_to_json`). Standard library only, so that any module
(the command line included) can import it at no cost.
"""

from __future__ import annotations

import math
import numbers

__all__ = ["MISSING", "format_mean_std", "format_value", "is_missing", "plural"]

#: How an undefined value is shown in text and Markdown.
MISSING = "n/a"


def is_missing(value: object) -> bool:
    """Whether ``value`` is None or a non-finite number (NaN, infinity)."""
    if value is None:
        return True
    return _is_float(value) and not math.isfinite(value)


def _is_float(value: object) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, numbers.Integral)


def format_value(value: object, digits: int = 3, *, missing: str = MISSING) -> str:
    """Format one table cell or metric.

    Parameters
    ----------
    value : object
        A float (NumPy floats included) is written with ``digits`` decimals; None,
        NaN and infinity as ``missing``; anything else with ``str``.
    digits : int, default=3
        Decimals of floats.
    missing : str, default='n/a'
        Text of an undefined value (e.g. ``''`` for CSV).

    Returns
    -------
    str

    Examples
    --------
    >>> format_value(0.81234), format_value(None), format_value(float("nan"), missing="")
    ('0.812', 'n/a', '')
    >>> format_value(12), format_value("8863")
    ('12', '8863')
    """
    if is_missing(value):
        return missing
    if _is_float(value):
        return f"{float(value):.{digits}f}"
    return str(value)


def format_mean_std(mean: float | None, std: float | None, digits: int = 3) -> str:
    """``'mean ± std'`` with ``digits`` decimals, or ``n/a`` when the mean is undefined.

    Examples
    --------
    >>> format_mean_std(0.8161, 0.0342), format_mean_std(float("nan"), 0.1)
    ('0.816 ± 0.034', 'n/a')
    """
    if is_missing(mean):
        return MISSING
    return f"{format_value(mean, digits)} ± {format_value(std, digits)}"


def plural(n: int, word: str, words: str | None = None) -> str:
    """``n`` and ``word``, or ``words`` (default ``word`` + ``s``) unless ``n`` is 1.

    Examples
    --------
    >>> plural(1, "epoch"), plural(3, "epoch"), plural(0, "bad file")
    ('1 epoch', '3 epochs', '0 bad files')
    >>> plural(1, "patch", "patches"), plural(2, "patch", "patches")
    ('1 patch', '2 patches')
    """
    return f"{n} {word if n == 1 else (words or word + 's')}"
