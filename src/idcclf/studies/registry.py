"""The named studies: what each compares, and how its settings are labelled.

Standard library only, so that listing the studies (``idcclf study --help``) stays instant.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["METRICS", "STUDIES", "STUDY_DEFAULTS", "Study", "get_study"]

#: Metrics of every study, in table order; the first one picks the best setting.
METRICS = ("balanced_accuracy", "sensitivity", "specificity", "f1", "roc_auc")

#: Parameters every study sets on the classifier (before ``base_params``). The folds
#: are the validation, so the classifier keeps all its training part (no internal
#: split, hence no early stopping). Classes are weighted as in the tutorial; the
#: ``imbalance`` study sets the weighting itself.
STUDY_DEFAULTS: dict[str, Any] = {"validation_fraction": 0.0, "class_weight": "balanced"}


@dataclass(frozen=True)
class Study:
    """A named grid search over ``IDCClassifier`` knobs.

    Parameters
    ----------
    name : str
        Identifier, e.g. ``'dropout'``.
    question : str
        What the study answers, one sentence.
    grid : dict or list of dict, or callable
        ``param_grid`` for ``GridSearchCV``; a callable receives ``random_state`` and
        returns one (for grids that hold seeded objects such as samplers).
    pipeline : bool, default=False
        Search over the resampling pipeline (steps ``flatten``, ``sampler``,
        ``classifier``) instead of the bare classifier.
    label : callable or None, default=None
        Turns one candidate's params into a short setting name for tables and plots.
    """

    name: str
    question: str
    grid: Mapping[str, Sequence] | Sequence[Mapping[str, Sequence]] | Callable
    pipeline: bool = False
    label: Callable[[dict], str] | None = field(default=None, compare=False)

    def param_grid(self, random_state=None) -> list[dict[str, list]]:
        """The grid as a list of dicts of lists."""
        grid = self.grid(random_state) if callable(self.grid) else self.grid
        grids = [grid] if isinstance(grid, Mapping) else list(grid)
        return [{key: list(values) for key, values in g.items()} for g in grids]

    def n_settings(self, random_state=None) -> int:
        """Number of parameter combinations."""
        return sum(math.prod(len(v) for v in g.values()) for g in self.param_grid(random_state))

    def setting_label(self, params: dict) -> str:
        """Short name of one setting, e.g. ``'block_dropout=0.25, placement=after_pool'``."""
        if self.label is not None:
            return self.label(params)
        return ", ".join(f"{_short(key)}={format_param(value)}" for key, value in params.items())


def _short(key: str) -> str:
    key = key.removeprefix("classifier__")
    return {"dropout_placement": "placement"}.get(key, key)


def format_param(value) -> str:
    """A parameter value as text: numbers and strings as they are, objects by class name."""
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, str | bool | int) or value is None:
        return str(value)
    return type(value).__name__


def _imbalance_grid(random_state) -> list[dict]:
    from imblearn.under_sampling import RandomUnderSampler

    return [
        {"sampler": ["passthrough"], "classifier__class_weight": [None, "balanced"]},
        {
            "sampler": [RandomUnderSampler(random_state=random_state)],
            "classifier__class_weight": [None],
        },
    ]


def _imbalance_label(params: dict) -> str:
    if params.get("sampler", "passthrough") not in ("passthrough", None):
        return "undersampling"
    return "class weights" if params.get("classifier__class_weight") else "none"


#: The studies :func:`idcclf.studies.run_study` knows, by name.
STUDIES: dict[str, Study] = {
    study.name: study
    for study in (
        Study(
            "dropout",
            "Does dropout work better after or before pooling, and at which rate?",
            {"dropout_placement": ["after_pool", "before_pool"], "block_dropout": [0.1, 0.25, 0.5]},
        ),
        Study(
            "batch_norm",
            "Does batch normalization after each convolution help?",
            {"batch_norm": [True, False]},
        ),
        Study(
            "learning_rate",
            "Which learning rate trains best in a fixed number of epochs?",
            {"learning_rate": [1e-1, 1e-2, 1e-3, 1e-4]},
        ),
        Study(
            "optimizer",
            "Adagrad (the tutorial's) or Adam?",
            {"optimizer": ["adagrad", "adam"]},
        ),
        Study(
            "imbalance",
            "Train on the data as it is, weigh the classes, or undersample the majority?",
            _imbalance_grid,
            pipeline=True,
            label=_imbalance_label,
        ),
    )
}


def get_study(name: str | Study) -> Study:
    """Look a study up by name.

    Raises
    ------
    ValueError
        For an unknown name, listing the known ones.
    """
    if isinstance(name, Study):
        return name
    try:
        return STUDIES[name]
    except (KeyError, TypeError):
        raise ValueError(
            f"unknown study {name!r}; known studies: {', '.join(sorted(STUDIES))}"
        ) from None
