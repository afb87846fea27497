"""The patients ``idcclf train`` trains, validates and tests on, decided before training.

Either a patient tree is split by patient here (the validation patients are those
``IDCClassifier.fit`` will hold out, worked out ahead so they can be shown before
training), or ``idcclf split``'s output is used part by part, as given.
"""

from __future__ import annotations

import argparse
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .._format import plural
from ._common import (
    CLIError,
    library_errors,
    load_data,
    require_both_classes,
    split_layout,
)

DEFAULT_VAL_SIZE = 0.1
DEFAULT_TEST_SIZE = 0.1


@dataclass
class Part:
    """Labels and patients of one part (patches only where they are needed)."""

    y: np.ndarray
    groups: np.ndarray
    X: np.ndarray | None = None

    @property
    def patients(self) -> list[str]:
        return sorted(map(str, np.unique(self.groups)))

    def line(self, name: str, note: str = "") -> str:
        patients = self.patients
        return (
            f"  {name:<11}{plural(len(self.y), 'patch', 'patches'):>15}, "
            f"{int(self.y.sum()):>5} IDC, {plural(len(patients), 'patient')}: "
            f"{' '.join(patients) or '-'}{note}"
        )


@dataclass
class Plan:
    """What training gets (``fit``, validation included when the estimator holds it out),
    the validation and test parts, and how validation is done."""

    source: str
    fit: Part
    training: Part
    validation: Part | None
    test: Part
    given: bool  # the parts of 'idcclf split' output, used as they are
    validation_fraction: float  # for IDCClassifier; 0 when the parts are given


def plan_parts(args: argparse.Namespace) -> Plan:
    """Load the data and decide the training, validation and test patients."""
    roots = args.data or []
    layouts = [split_layout(root) for root in roots if root.is_dir()]
    if any(layouts):
        if len(roots) > 1:
            raise CLIError(
                "--data: give the output of 'idcclf split' alone (one --data), not with "
                "other folders"
            )
        return _given_parts(args, roots[0], layouts[0])
    return _split_by_patient(args)


def shares(args: argparse.Namespace) -> tuple[float, float]:
    """``--val-size`` and ``--test-size``, defaults filled in."""
    val = DEFAULT_VAL_SIZE if args.val_size is None else args.val_size
    test = DEFAULT_TEST_SIZE if args.test_size is None else args.test_size
    return val, test


def check_split_options(args: argparse.Namespace) -> None:
    """Refuse --val-size / --test-size combinations that leave a part empty."""
    val, test = shares(args)
    if val + test >= 1:
        raise CLIError(f"--val-size {val} and --test-size {test} leave nothing to train on")
    if test == 0:
        raise CLIError("--test-size must be above 0: the metrics are measured on test patients")
    if args.early_stopping and val == 0:
        raise CLIError("--early-stopping needs validation patients: set --val-size above 0")


def _split_by_patient(args: argparse.Namespace) -> Plan:
    """Split a patient tree into training (validation held out by the estimator) and test."""
    val, test = shares(args)
    data, source = load_data(args)
    require_both_classes(data.target, f"--data {source}")
    n_patients = len(set(data.groups))
    needed = 3 if val > 0 else 2
    if n_patients < needed:
        parts = "training, validation and test parts" if val > 0 else "training and test parts"
        raise CLIError(
            f"--data {source} has {plural(n_patients, 'patient')}; a split by patient into "
            f"{parts} needs at least {needed}" + (" (2 with --val-size 0)" if val > 0 else "")
        )
    from ..splits import patient_split

    with library_errors(args):
        fit_index, _, test_index = patient_split(
            data.groups,
            data.target,
            train_size=1 - test,
            val_size=0.0,
            random_state=args.random_state,
        )
    fit = Part(data.target[fit_index], data.groups[fit_index], data.data[fit_index])
    test_part = Part(data.target[test_index], data.groups[test_index], data.data[test_index])
    fraction = val / (1 - test)
    if fraction == 0:
        training, validation = fit, None
    else:
        held = planned_validation(fit.y, fit.groups, fraction, args.random_state)
        training = Part(fit.y[~held], fit.groups[~held])
        validation = Part(fit.y[held], fit.groups[held])
    require_both_classes(training.y, f"the training patients ({' '.join(training.patients)})")
    return Plan(source, fit, training, validation, test_part, False, fraction)


def planned_validation(y, groups, fraction: float, random_state: int) -> np.ndarray:
    """Mask of the patches ``IDCClassifier(validation_fraction=fraction).fit`` holds out.

    The estimator's own split, applied ahead of time so that the patients can be shown
    before training; ``train`` checks ``validation_groups_`` against it afterwards.
    """
    from ..splits import validation_split

    n_groups = np.unique(groups).size
    if n_groups < 2:
        raise CLIError(
            f"the training part has {plural(n_groups, 'patient')}: too few to hold one out "
            "for validation; pass --val-size 0 or give more patients"
        )
    with warnings.catch_warnings():
        # The estimator repeats this split (and its warning about small classes).
        warnings.simplefilter("ignore", UserWarning)
        _, held = validation_split(y, groups, fraction, random_state)
    mask = np.zeros(len(y), dtype=bool)
    mask[held] = True
    return mask


def _given_parts(args: argparse.Namespace, root: Path, parts: dict[str, Path]) -> Plan:
    """Load the parts of 'idcclf split' output; its validation part is scored after training."""
    if args.val_size is not None or args.test_size is not None:
        raise CLIError(
            f"--val-size and --test-size do not apply to --data {root}: it is the output of "
            "'idcclf split', whose parts are used as given"
        )
    if args.early_stopping:
        raise CLIError(
            f"--early-stopping needs validation patients held out while training; with the "
            f"output of 'idcclf split' (--data {root}) its validation part is scored after "
            "training instead: drop --early-stopping"
        )
    print(
        f"data: {root} is the output of 'idcclf split': using its parts as given (no new split)",
        flush=True,
    )
    loaded = {}
    for name, folder in parts.items():
        if name == "validation" and not any(folder.glob("*/*.png")):
            continue  # 'idcclf split --val 0' leaves it empty
        data, _ = load_data(args, [folder])
        loaded[name] = Part(data.target, data.groups, data.data)
    training = loaded["training"]
    require_both_classes(training.y, f"--data {parts['training']}")
    return Plan(
        str(root), training, training, loaded.get("validation"), loaded["testing"], True, 0.0
    )


def print_plan(plan: Plan, args: argparse.Namespace) -> None:
    """Show the patients of every part, before training starts."""
    if plan.given:
        print("parts (as given):")
    else:
        val, test = shares(args)
        print(
            f"split by patient (--val-size {val:g}, --test-size {test:g}, "
            f"--random-state {args.random_state}):"
        )
    print(plan.training.line("training"))
    if plan.validation is not None:
        when = "scored after training" if plan.given else "held out while training"
        print(plan.validation.line("validation", f" ({when})"))
    print(plan.test.line("test"))
    if plan.validation is not None and not plan.given and len(plan.validation.patients) == 1:
        print(
            "note: a single validation patient: validation accuracy measures one patient's "
            "patches and can stay flat from epoch to epoch because of it"
        )
