"""The patients a model learned from, and the guard against scoring it on them.

A model scored on patches of its own training patients looks better than it will be
on new patients. ``idcclf train`` records its training and validation patients, on
the model (``training_groups_``, ``validation_groups_``) and in ``metrics.json``;
``idcclf evaluate``, ``idcclf heatmap`` and the test part of ``idcclf train`` warn in
one line when the patients they score are among them, and ``evaluate`` reports the
figures without them beside the others.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from pathlib import Path

from .._format import format_value, plural

#: The library's own warning about the same overlap; the command line says it its way.
_LIBRARY_WARNING = r"\d+ of the \d+ evaluated patients were also training patients"
#: Patient ids named in a warning before "...".
_NAMED = 10


@dataclass
class ModelPatients:
    """The training and validation patients of a model (None where not recorded)."""

    name: str
    training: list[str] | None
    validation: list[str] | None
    about: str = ""  # what is known of the training data when the patients are not

    @property
    def used(self) -> list[str] | None:
        """Training and validation patients together; None when neither is recorded."""
        if self.training is None and self.validation is None:
            return None
        return sorted({*(self.training or []), *(self.validation or [])})


def _ids(values) -> list[str] | None:
    return None if values is None else sorted({str(value) for value in values})


def model_patients(model, model_path: Path | None) -> ModelPatients:
    """What ``model`` (saved at ``model_path``; None: the pretrained one) was fitted on.

    The model's ``training_groups_`` and ``validation_groups_`` first. Where the model
    does not record them (saved before they existed, or fitted without patient ids):
    the ``training_patients`` (and ``validation_patients``) of the ``metrics.json``
    that ``idcclf train`` wrote beside it, or for the pretrained model those of its
    ``pretrained_info_``.
    """
    training = _ids(getattr(model, "training_groups_", None))
    validation = _ids(getattr(model, "validation_groups_", None))
    if model_path is None:
        info = getattr(model, "pretrained_info_", None) or {}
        name, recorded = "the pretrained model", info
        about = f" (it was trained on {info['data']})" if info.get("data") else ""
    else:
        name, about = str(model_path), ""
        recorded = {} if training is not None else _run_metrics(model_path.parent / "metrics.json")
    if training is None:
        training = _ids(recorded.get("training_patients"))
    if validation is None:
        validation = _ids(recorded.get("validation_patients"))
    return ModelPatients(name, training, validation, about)


def _run_metrics(path: Path) -> dict:
    """The ``metrics.json`` of a training run, or {} when there is none to read."""
    try:
        recorded = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return recorded if isinstance(recorded, dict) else {}


def warn_if_unknown(patients: ModelPatients, claim: str) -> None:
    """Warn, when the model does not record its training patients, that ``claim``
    (e.g. "the patients evaluated are new to it") cannot be checked."""
    if patients.training is None:
        warnings.warn(
            f"{patients.name} does not record the patients it was trained on"
            f"{patients.about}: idcclf cannot check that {claim}",
            UserWarning,
            stacklevel=2,
        )


def checked_report(y, proba, groups, patients: ModelPatients | None, *, threshold: float):
    """``evaluation_report`` of the patches, checked against the model's patients.

    ``training_patients_in_test`` lists the patients scored that the model was fitted
    on (training or validation), or is None when the model does not record them; when
    some are, ``without_training_patients`` holds the figures without them and one
    warning line says so.
    """
    from ..metrics import evaluation_report

    used = None if patients is None else patients.used
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", _LIBRARY_WARNING, UserWarning)
        report = evaluation_report(
            y,
            proba,
            threshold=threshold,
            groups=None if used is None else groups,
            training_groups=used,
        )
    if used is None:
        report["training_patients_in_test"] = None
    elif report["training_patients_in_test"]:
        warnings.warn(_overlap_message(report, len(set(groups))), UserWarning, stacklevel=2)
    return report


def _overlap_message(report: dict, n_patients: int) -> str:
    shared = report["training_patients_in_test"]
    named = " ".join(shared[:_NAMED]) + (" ..." if len(shared) > _NAMED else "")
    clean = report["without_training_patients"]
    if clean is None:
        without = "no patient is left without them"
    else:
        without = (
            f"figures without them ({plural(clean['n_patients'], 'patient')}): balanced "
            f"accuracy {format_value(clean['balanced_accuracy'])}, ROC AUC "
            f"{format_value(clean['roc_auc'])}"
        )
    return (
        f"{len(shared)} of the {n_patients} patients evaluated "
        f"{'was' if len(shared) == 1 else 'were'} used to train this model (as training "
        f"or validation patients): {named}; {without}"
    )


def check_one_patient(patient: str, patients: ModelPatients) -> None:
    """Warn when ``patient`` is one the model was fitted on, or cannot be checked."""
    warn_if_unknown(patients, f"patient {patient} is new to it")
    if patient in (patients.used or []):
        warnings.warn(
            f"patient {patient} was used to train {patients.name} (as a training or "
            "validation patient): the map shows patches the model learned from, not how "
            "it does on a new patient",
            UserWarning,
            stacklevel=2,
        )


# ------------------------------------------------------------ intervals by patient

#: Below this many patients scored, the interval is printed beside the figures (it is
#: recorded in metrics.json whatever the count).
FEW_PATIENTS = 10
#: The figures whose interval is given.
INTERVAL_METRICS = ("balanced_accuracy", "roc_auc")


def with_intervals(report: dict, y, proba, groups) -> dict:
    """``report`` with ``patient_bootstrap``: 95% intervals by resampling patients.

    Added to ``without_training_patients`` too, on those patients' patches.
    """
    import numpy as np

    from ..metrics import patient_bootstrap

    threshold = report["threshold"]
    report["patient_bootstrap"] = patient_bootstrap(
        y, proba, groups, metrics=INTERVAL_METRICS, threshold=threshold
    )
    clean = report.get("without_training_patients")
    if clean is not None:
        keep = ~np.isin(np.asarray(groups).astype(str), report["training_patients_in_test"])
        clean["patient_bootstrap"] = patient_bootstrap(
            np.asarray(y)[keep],
            np.asarray(proba)[keep],
            np.asarray(groups)[keep],
            metrics=INTERVAL_METRICS,
            threshold=threshold,
        )
    return report


def interval_line(intervals: dict) -> str:
    """``4 patients; 95% confidence interval ...: balanced accuracy 0.734 [0.612, 0.851], ...``."""
    figures = ", ".join(
        f"{name.replace('_', ' ').replace('roc auc', 'ROC AUC')} "
        f"{format_value(intervals[name]['estimate'])} "
        f"[{format_value(intervals[name]['low'])}, {format_value(intervals[name]['high'])}]"
        for name in INTERVAL_METRICS
    )
    return (
        f"{plural(intervals['n_patients'], 'patient')}; {intervals['confidence']:.0%} "
        f"confidence interval by resampling the patients ({intervals['n_resamples']} "
        f"resamples): "
        f"{figures}"
    )


def print_intervals(report: dict, scored: str) -> None:
    """Print the intervals of ``report`` when it holds few patients (``scored``: which)."""
    intervals = report["patient_bootstrap"]
    if intervals["n_patients"] < FEW_PATIENTS:
        print(f"{scored}: {interval_line(intervals)}")
        print(
            f"  (fewer than {FEW_PATIENTS} patients: figures vary widely from one set of "
            "patients to another)"
        )
