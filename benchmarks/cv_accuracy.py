"""Patient-grouped cross-validation of the CancerNet training recipe on real data.

Every fold trains on some patients and is scored on patients it has never seen. Prints
each fold's figures (and its wall time) and their mean +/- std, and rewrites the JSON
after every fold (atomically), so an interrupted run keeps the folds it finished.

Usage::

    python benchmarks/cv_accuracy.py [--data ../shared/data/idc --data ...] [--folds 5]
        [--epochs 3] [--out cv_accuracy.json] [--recipe default|tutorial]
        [--set stain_jitter=0.05 --set learning_rate=0.02] [--fraction 0.25]
        [--train-patients 40] [--train-fraction 0.5] [--max-folds 2 | --fold 5]
        [--augmentation fused|layers]
        [--batch-norm fused|keras] [--seeds 3] [--first-seed 1] [--predictions PATH.npz]
        [--standardize-patients [--means-only] | --normalize-stains] [--patient-batch-norm]

``--data`` may be given more than once; the roots are loaded and concatenated (their
patient ids must not collide). By default both ``../shared/data/idc`` (22 complete
patients) and ``../shared/data/idc-partial`` (129 partial patients) are used.

``--recipe default`` is ``IDCClassifier``'s defaults with ``class_weight="balanced"``.
``--recipe tutorial`` is the original tutorial's recipe expressed with
``IDCClassifier``: Adagrad 1e-2, balanced class weights, the separate Keras
augmentation layers (``--augmentation layers``), Keras' own batch-normalization layers
(``--batch-norm keras``) and no batch-norm re-estimation. ``--batch-norm keras`` builds
CancerNet with ``fused_batch_norm=False`` (the same normalization, computed by Keras'
separate operations) for any recipe, to compare the two.
``--set NAME=VALUE`` changes an ``IDCClassifier`` parameter on top of the recipe
(VALUE is a Python literal). The folds depend only on the data and ``--folds``, so two
recipes run with the same data share their folds.

``--standardize-patients`` maps each patient's colours to one reference
(``idcclf.standardize_patients``, per RGB channel, measured over all of the patient's
patches, before ``--fraction`` thins them), in training and test patients alike;
``--means-only`` matches each patient's mean colour only (``std=None``).
``--normalize-stains`` redraws each patient's patches with reference H&E stains
(``idcclf.normalize_stains``, Macenko's method, also over all of the patient's
patches). ``--upsample FACTOR`` then enlarges every patch FACTOR times (bilinear, kept
as uint8), so that CancerNet sees each detail over more pixels, at about FACTOR²
times the cost per patch; ``input_shape`` follows unless ``--set`` gives it.

``--fraction`` keeps that random share of each patient's patches of each class (so the
patients and the class balance stay as they are), for quicker, indicative comparisons.
``--train-patients N`` trains each fold on a seeded random N of its training patients
(a learning curve; the subsets grow nested with N, and the test patients do not
change). ``--train-fraction F`` trains each fold on a seeded random share F of each of
its training patients' patches of each class (a learning curve in patches per patient:
the patients stay, the shares grow nested with F, the test patches do not change).
``--max-folds K`` runs the first K folds only; ``--fold K`` (repeatable) runs
fold K only, with the same training and test patients as in the full run. ``--table
RESULT.json [PART.json ...]`` prints a finished (or partial) result as a Markdown table
and runs nothing; given the parts of one run made in several goes (``--max-folds 4``,
then ``--fold 5``), it joins their folds, refusing parts whose settings differ or that
share a fold.

Besides the figures at the default 0.5 threshold, each fold also reports balanced
accuracy at a threshold chosen on the fold's validation patients (the estimator's
internal, patient-grouped validation split, never the test patients) with
``idcclf.metrics.choose_threshold``, and, unless ``--no-tta``, the same model's balanced
accuracy, ROC AUC and F1 with test-time augmentation switched (on, or off when ``--set
test_time_augmentation=True``). ``--seeds N`` trains N models per fold (seeds differ,
data and settings do not) and scores the mean of their probabilities, a seed ensemble;
the first model's own figures are reported beside it (``*_first_model``), and so are
each further model's (``*_model_2``, ...), so one run also measures the spread over
seeds; the validation threshold is left out, since each model held out other
validation patients. Model ``i`` (from 0) of fold ``k`` has ``random_state`` ``k +
100 * (F + i)``, with ``F`` from ``--first-seed F`` (default 0): ``--first-seed 1``
trains alone the models that ``--seeds 2`` trains second. ``--predictions PATH.npz``
also saves every test patch's fold, patient, slide coordinates, label and IDC
probability (the seed ensemble's mean, without test-time augmentation unless it was
set; with ``--seeds N > 1`` also each model's own, as ``proba_per_model`` with one
column per model), rewritten after every
fold, for analyses that need no retraining (``benchmarks/smoothing.py``).

``--patient-batch-norm`` also scores the same fitted models with their batch-norm
statistics re-estimated on each test patient's patches alone (test-time adaptation,
"AdaBN": ``idcclf._ops.recalibrate_batch_norm``, as at the end of a fit, on one
patient at a time; the fitted statistics are restored after each patient), reported as
``*_patient_batch_norm`` beside the figures of the fitted statistics, and saved as
``proba_patient_batch_norm`` with ``--predictions``.

``--patient-weight ALPHA`` weights each training patch by its patient's number of
training patches to the power ``-ALPHA`` (``sample_weight``), rescaled within each
class to a mean of 1, so that the class totals, and what ``class_weight`` makes of
them, stay as they were: 0 (the default) weights every patch alike, so a patient
counts by its patches; 1 gives every patient the same total weight before that
rescaling; 0.5 is between. The 22 whole slides hold 57 % of the patches of all 151
patients, so this asks whether the many partly sampled patients are underused.
"""

from __future__ import annotations

import argparse
import ast
import functools
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
DEFAULT_ROOTS = (
    REPO.parent / "shared" / "data" / "idc",
    REPO.parent / "shared" / "data" / "idc-partial",
)
METRICS = (
    "balanced_accuracy",
    "sensitivity",
    "specificity",
    "f1",
    "roc_auc",
    "pr_auc",
    "accuracy",
)
TTA_METRICS = ("balanced_accuracy", "roc_auc", "f1")
ADAPTED_METRICS = ("balanced_accuracy", "sensitivity", "specificity", "roc_auc", "f1")
#: Parameters of each --recipe, the augmentation and the batch normalization it trains with.
RECIPES = {
    "default": ({"class_weight": "balanced"}, "fused", "fused"),
    "tutorial": (
        {
            "optimizer": "adagrad",
            "learning_rate": 1e-2,
            "class_weight": "balanced",
            "recalibrate_batch_norm": False,
        },
        "layers",
        "keras",
    ),
}


def load_roots(
    roots,
    with_coords: bool = False,
    standardize: bool = False,
    means_only: bool = False,
    normalize_stains: bool = False,
    upsample: int = 1,
):
    """``(X, y, groups)`` of every patient under ``roots``, read by ``load_idc``.

    With ``with_coords``, the patches' slide coordinates follow as a fourth item. A
    patient id found under two roots is refused by ``load_idc`` (``ValueError``).
    With ``standardize``, each patient's colours are standardized
    (``standardize_patients``) over all of its patches, before any subsampling; with
    ``means_only`` too, only their means (``std=None``). With ``normalize_stains``,
    each patient's stains are normalized instead (``idcclf.normalize_stains``). With
    ``upsample`` above 1, every patch is then enlarged that many times
    (:func:`upsample_patches`).
    """
    import idcclf
    from idcclf.standardize import REFERENCE_STD

    if standardize and normalize_stains:
        raise ValueError("standardize and normalize_stains exclude each other")
    bunch = idcclf.load_idc(list(roots) if len(roots) > 1 else roots[0])
    groups = np.asarray(bunch.groups).astype(str)
    if standardize:
        std = None if means_only else REFERENCE_STD
        X = idcclf.standardize_patients(bunch.data, groups, std=std)
    elif normalize_stains:
        X = idcclf.normalize_stains(bunch.data, groups)
    else:
        X = bunch.data
    if upsample != 1:
        X = upsample_patches(X, upsample)
    data = X, bunch.target, groups
    return (*data, np.asarray(bunch.coords)) if with_coords else data


def upsample_patches(X: np.ndarray, factor: int, chunk: int = 4096) -> np.ndarray:
    """Every patch enlarged ``factor`` times by bilinear interpolation, as uint8.

    A 50x50 patch becomes 100x100 at ``factor=2``: the network then sees each tissue
    detail over more pixels (and costs about ``factor**2`` times as much per patch).
    Done in chunks so that only one chunk is held as floats.
    """
    import numbers

    import tensorflow as tf

    if not isinstance(factor, numbers.Integral) or factor < 1:
        raise ValueError(f"upsample must be a whole number >= 1, got {factor!r}")
    if X.ndim != 4:
        raise ValueError(f"upsample needs images (n, height, width, channels), got {X.shape}")
    size = (X.shape[1] * factor, X.shape[2] * factor)
    out = np.empty((len(X), *size, X.shape[3]), dtype=np.uint8)
    for start in range(0, len(X), chunk):
        part = tf.image.resize(X[start : start + chunk], size, method="bilinear")
        out[start : start + chunk] = np.clip(np.rint(part.numpy()), 0, 255)
    return out


def rows_by_patient_and_class(rows, y, groups):
    """``rows`` (indices) split by patient, then class 0 and 1: one array each, in order."""
    for patient in np.unique(groups[rows]):
        for label in (0, 1):
            yield rows[(groups[rows] == patient) & (y[rows] == label)]


def subsample(y, groups, fraction: float, seed: int = 0) -> np.ndarray:
    """Indices of a random ``fraction`` of each patient's patches of each class."""
    rng = np.random.default_rng(seed)
    keep = []
    for idx in rows_by_patient_and_class(np.arange(len(y)), y, groups):
        n = int(np.ceil(len(idx) * fraction))
        keep.extend(rng.choice(idx, size=n, replace=False))
    return np.sort(np.asarray(keep, dtype=int))


def parse_sets(items, error) -> dict:
    """``NAME=VALUE`` strings as parameters (VALUE a Python literal, else a string)."""
    params = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name:
            error(f"--set needs NAME=VALUE, got {item!r}")
        try:
            params[name] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            params[name] = value
    return params


def use_augmentation(kind: str) -> None:
    """Make every IDCClassifier built from now on train with that augmentation."""
    if kind == "layers":
        from idcclf import estimator

        estimator.build_augmentation = functools.partial(estimator.build_augmentation, fused=False)


def use_batch_norm(kind: str) -> None:
    """Make every IDCClassifier built from now on use that batch normalization."""
    if kind == "keras":
        from idcclf import estimator

        estimator.build_cancernet = functools.partial(
            estimator.build_cancernet, fused_batch_norm=False
        )


def model_probas(models, X):
    """Each model's IDC probability of every patch: one row per model."""
    return np.array([model.predict_proba(X)[:, 1] for model in models])


def tta_figures(models, X, y) -> dict:
    """The same fitted models' figures with test-time augmentation switched."""
    from idcclf.metrics import evaluation_report

    tta = not models[0].test_time_augmentation
    for model in models:
        model.set_params(test_time_augmentation=tta)
    other = evaluation_report(y, model_probas(models, X).mean(axis=0))
    for model in models:
        model.set_params(test_time_augmentation=not tta)
    suffix = "with_tta" if tta else "without_tta"
    return {f"{m}_{suffix}": other[m] for m in TTA_METRICS}


def patient_batch_norm_proba(model, X, groups) -> np.ndarray:
    """IDC probabilities with batch-norm statistics re-estimated on each patient alone.

    Every patient's patches set the statistics of every batch-norm layer of ``model``'s
    network, then are predicted; the fitted weights are restored after each patient,
    so ``model`` is left as it was.
    """
    from idcclf._ops import recalibrate_batch_norm

    network = model.model_
    fitted = network.get_weights()
    proba = np.empty(len(X))
    try:
        for patient in np.unique(groups):
            mine = groups == patient
            validated, _ = model._validate_data(X=X[mine], y=None)
            recalibrate_batch_norm(network, validated)
            proba[mine] = model.predict_proba(X[mine])[:, 1]
            network.set_weights(fitted)
    finally:
        network.set_weights(fitted)
    return proba


def patient_weights(y, groups, alpha: float) -> np.ndarray:
    """Each patch's weight: its patient's patch count to the power -alpha, mean 1 per class."""
    _, inverse, counts = np.unique(groups, return_inverse=True, return_counts=True)
    weights = counts[inverse].astype(np.float64) ** -alpha
    for label in np.unique(y):
        in_class = y == label
        weights[in_class] /= weights[in_class].mean()
    return weights


def training_subset(train, groups, n_patients, seed) -> np.ndarray:
    """``train`` restricted to a seeded random ``n_patients`` of its patients."""
    patients = np.unique(groups[train])
    if n_patients > len(patients):
        raise ValueError(
            f"--train-patients {n_patients} exceeds the {len(patients)} training patients"
        )
    # One permutation per fold, cut at n: the subsets of a fold are nested.
    chosen = np.random.default_rng(seed).permutation(patients)[:n_patients]
    return train[np.isin(groups[train], chosen)]


def training_share(train, y, groups, fraction, seed) -> np.ndarray:
    """``train`` thinned to a seeded random ``fraction`` of each patient's patches of each class.

    One permutation per patient and class, cut at the share: the rows kept at a smaller
    ``fraction`` are among those kept at a larger one (same seed).
    """
    rng = np.random.default_rng(seed)
    keep = []
    for rows in rows_by_patient_and_class(train, y, groups):
        order = rng.permutation(len(rows))
        keep.append(rows[order[: int(np.ceil(len(rows) * fraction))]])
    return np.sort(np.concatenate(keep))


def validation_threshold(clf, X, y, groups, train) -> float | None:
    """The threshold chosen on ``clf``'s own validation patients among ``train``.

    None where its fit held out none (``validation_fraction=0``).
    """
    from idcclf.metrics import choose_threshold

    if clf.validation_groups_ is None:
        return None
    val = train[np.isin(groups[train], clf.validation_groups_)]
    return float(choose_threshold(y[val], clf.predict_proba(X[val])[:, 1]))


def run_fold(k, train, test, X, y, groups, args, params) -> dict:
    from idcclf import IDCClassifier
    from idcclf.metrics import evaluation_report

    start = time.perf_counter()
    if args.train_patients:
        train = training_subset(train, groups, args.train_patients, seed=1000 + k)
    if args.train_fraction < 1:
        train = training_share(train, y, groups, args.train_fraction, seed=2000 + k)
    models = []
    weights = {}
    if args.patient_weight:
        weights["sample_weight"] = patient_weights(y[train], groups[train], args.patient_weight)
    for seed in range(args.seeds):
        random_state = k + 100 * (args.first_seed + seed)
        clf = IDCClassifier(**{"epochs": args.epochs, "random_state": random_state, **params})
        models.append(clf.fit(X[train], y[train], groups=groups[train], **weights))
    first = models[0]
    probas = model_probas(models, X[test])
    report = evaluation_report(y[test], probas.mean(axis=0))
    threshold = validation_threshold(first, X, y, groups, train) if args.seeds == 1 else None
    if threshold is not None:
        tuned = evaluation_report(y[test], probas[0], threshold=threshold)
        report["validation_threshold"] = threshold
        report["balanced_accuracy_at_validation_threshold"] = tuned["balanced_accuracy"]
    else:
        # Each model held out other validation patients (or none), so no shared threshold.
        for i, proba in enumerate(probas, start=1):
            single = evaluation_report(y[test], proba)
            suffix = "first_model" if i == 1 else f"model_{i}"
            for m in TTA_METRICS:
                report[f"{m}_{suffix}"] = single[m]
    if args.tta:
        report.update(tta_figures(models, X[test], y[test]))
    adapted = None
    if args.patient_batch_norm:
        adapted = np.mean([patient_batch_norm_proba(m, X[test], groups[test]) for m in models], 0)
        figures = evaluation_report(y[test], adapted)
        report.update({f"{m}_patient_batch_norm": figures[m] for m in ADAPTED_METRICS})
    report["fold"] = k
    report["n_train_patients"] = int(len(np.unique(groups[train])))
    report["n_train_patches"] = int(len(train))
    report["test_patients"] = sorted(map(str, np.unique(groups[test])))
    report["seconds"] = time.perf_counter() - start
    report.pop("classification_report")
    return report, probas, adapted


def save_predictions(path: Path, parts: list[dict]) -> None:
    """Every test patch scored so far, fold by fold, as one ``.npz`` (written atomically)."""
    from idcclf._io import atomic_path

    arrays = {key: np.concatenate([part[key] for part in parts]) for key in parts[0]}
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        np.savez_compressed(handle, **arrays)


def summarize(folds) -> dict:
    keys = list(METRICS) + [
        key
        for key in folds[0]
        if key.endswith(("_tta", "_first_model", "_at_validation_threshold", "_patient_batch_norm"))
        or "_model_" in key
    ]
    return {
        key: {
            "mean": float(np.mean([f[key] for f in folds])),
            "std": float(np.std([f[key] for f in folds])),
        }
        for key in keys
    }


def joined_record(records: list[tuple[Path, dict]]) -> dict:
    """The parts of one run, made in several goes, as one record of all their folds."""
    ignored = ("command", "folds", "summary")
    first_path, first = records[0]
    settings = {key: value for key, value in first.items() if key not in ignored}
    folds: dict[int, tuple[Path, dict]] = {}
    for path, record in records:
        for key in sorted(set(settings) | (set(record) - set(ignored))):
            if record.get(key) != settings.get(key):
                raise ValueError(
                    f"{path} and {first_path} differ in {key} ({record.get(key)!r} against "
                    f"{settings.get(key)!r}): not parts of one run"
                )
        for fold in record["folds"]:
            if fold["fold"] in folds:
                raise ValueError(
                    f"fold {fold['fold']} is in both {folds[fold['fold']][0]} and {path}"
                )
            if folds:
                other_path, other = next(iter(folds.values()))
                if set(fold) != set(other):
                    # Options that leave no setting behind (--no-tta) still change
                    # the figures each fold holds.
                    raise ValueError(
                        f"fold {fold['fold']} of {path} and fold {other['fold']} of "
                        f"{other_path} hold different figures: not parts of one run"
                    )
            folds[fold["fold"]] = (path, fold)
    joined = [folds[k][1] for k in sorted(folds)]
    return {**settings, "folds": joined, "summary": summarize(joined)}


def fold_table(record: dict) -> str:
    """A cv_accuracy.py result as a Markdown table: one row per fold, then mean +/- std.

    A run with ``--patient-batch-norm`` gets its balanced accuracy, sensitivity,
    specificity and ROC AUC with per-patient statistics as four more columns.
    """
    shown = ["balanced_accuracy", "sensitivity", "specificity", "f1", "roc_auc", "pr_auc"]
    names = ["BAC", "sensitivity", "specificity", "F1", "ROC AUC", "PR AUC"]
    if record.get("patient_batch_norm"):
        for metric, name in (
            ("balanced_accuracy", "BAC"),
            ("sensitivity", "sensitivity"),
            ("specificity", "specificity"),
            ("roc_auc", "ROC AUC"),
        ):
            shown.append(f"{metric}_patient_batch_norm")
            names.append(f"{name}, per-patient batch norm")
    lines = [
        f"| fold | test patients | test patches | {' | '.join(names)} | wall s |",
        "|" + "---|" * (len(names) + 4),
    ]
    for f in record["folds"]:
        cells = " | ".join(f"{f[m]:.3f}" for m in shown)
        lines.append(
            f"| {f['fold']} | {len(f['test_patients'])} | {f['n_samples']:,} | {cells} "
            f"| {f['seconds']:.0f} |"
        )
    summary = record["summary"]
    cells = " | ".join(f"{summary[m]['mean']:.3f} ± {summary[m]['std']:.3f}" for m in shown)
    lines.append(f"| mean ± std | | | {cells} | |")
    return "\n".join(lines)


def add_standardize_options(parser: argparse.ArgumentParser) -> None:
    """``--standardize-patients``, ``--means-only``, ``--normalize-stains`` and
    ``--upsample``, shared with select_recipe.py."""
    parser.add_argument(
        "--standardize-patients",
        action="store_true",
        help="standardize each patient's colours (standardize_patients) before training",
    )
    parser.add_argument(
        "--means-only",
        action="store_true",
        help="with --standardize-patients: match each patient's mean colour only (std=None)",
    )
    parser.add_argument(
        "--normalize-stains",
        action="store_true",
        help="redraw each patient's patches with reference H&E stains (normalize_stains, "
        "Macenko's method) before training",
    )
    parser.add_argument(
        "--upsample",
        type=int,
        default=1,
        metavar="FACTOR",
        help="enlarge every patch FACTOR times (bilinear) before training and scoring; "
        "input_shape follows unless set (default 1: as loaded)",
    )


def check_standardize_options(parser: argparse.ArgumentParser, args) -> None:
    if args.upsample < 1:
        parser.error(f"--upsample must be 1 or more, got {args.upsample}")
    if args.means_only and not args.standardize_patients:
        parser.error("--means-only qualifies --standardize-patients: give both")
    if args.normalize_stains and args.standardize_patients:
        parser.error("--normalize-stains and --standardize-patients exclude each other")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, action="append", default=None)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--max-folds", type=int, default=None)
    parser.add_argument("--fold", type=int, action="append", default=None, metavar="K")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("cv_accuracy.json"))
    parser.add_argument("--recipe", choices=sorted(RECIPES), default="default")
    parser.add_argument(
        "--set", action="append", default=[], metavar="NAME=VALUE", help="IDCClassifier parameter"
    )
    parser.add_argument("--fraction", type=float, default=1.0)
    parser.add_argument("--train-patients", type=int, default=None)
    parser.add_argument("--train-fraction", type=float, default=1.0)
    parser.add_argument("--augmentation", choices=("fused", "layers"), default=None)
    parser.add_argument("--batch-norm", choices=("fused", "keras"), default=None)
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--no-tta", dest="tta", action="store_false")
    parser.add_argument("--patient-batch-norm", action="store_true")
    parser.add_argument("--patient-weight", type=float, default=0.0, metavar="ALPHA")
    add_standardize_options(parser)
    parser.add_argument(
        "--predictions",
        type=Path,
        default=None,
        metavar="PATH.npz",
        help="also save every test patch's fold, patient, coordinates, label and probability",
    )
    parser.add_argument(
        "--table",
        type=Path,
        nargs="+",
        default=None,
        metavar="RESULT.json",
        help="print that result (or the joined parts of one run) as a table, run nothing",
    )
    args = parser.parse_args(argv)
    if args.table:
        for path in args.table:
            if not path.is_file():
                parser.error(f"--table {path}: no such file")
        return args
    if args.seeds < 1:
        parser.error(f"--seeds must be at least 1, got {args.seeds}")
    if not 0 <= args.patient_weight <= 1:
        parser.error(f"--patient-weight must be in [0, 1], got {args.patient_weight}")
    if args.first_seed < 0:
        parser.error(f"--first-seed must be at least 0, got {args.first_seed}")
    if args.train_patients is not None and args.train_patients < 2:
        parser.error(f"--train-patients must be at least 2, got {args.train_patients}")
    if not 0 < args.fraction <= 1:
        parser.error(f"--fraction must be in (0, 1], got {args.fraction}")
    if not 0 < args.train_fraction <= 1:
        parser.error(f"--train-fraction must be in (0, 1], got {args.train_fraction}")
    check_standardize_options(parser, args)
    if args.fold is not None:
        if args.max_folds is not None:
            parser.error("give --fold or --max-folds, not both")
        for k in args.fold:
            if not 1 <= k <= args.folds:
                parser.error(f"--fold must be between 1 and --folds ({args.folds}), got {k}")
    base, augmentation, batch_norm = RECIPES[args.recipe]
    args.params = {**base, **parse_sets(args.set, parser.error)}
    if "normalize_stains" in args.params:
        parser.error(
            "--set normalize_stains: use --normalize-stains, which normalizes every patient "
            "once before the folds (the same model, scored with predict_proba(X) alone)"
        )
    args.augmentation = args.augmentation or augmentation
    args.batch_norm = args.batch_norm or batch_norm
    if (args.seeds > 1 or args.first_seed) and "random_state" in args.params:
        parser.error(
            "--set random_state would give every seed of --seeds the same model, "
            "and override --first-seed"
        )
    args.data = args.data or list(DEFAULT_ROOTS)
    for root in args.data:
        if not root.is_dir():
            parser.exit(2, f"no data at {root}: pass --data\n")
    return args


def read_result(path: Path) -> dict:
    """A result file of this script; ValueError naming the file if it is not one."""
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: not a cv_accuracy.py result (not JSON: {exc})") from None
    except OSError as exc:  # no permission, an I/O error
        raise ValueError(f"{path}: cannot read it ({exc.strerror or exc})") from None
    if not isinstance(record, dict) or not isinstance(record.get("folds"), list):
        raise ValueError(f"{path}: not a cv_accuracy.py result (no list of folds)")
    return record


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.table:
        try:
            records = [(path, read_result(path)) for path in args.table]
            record = joined_record(records) if len(records) > 1 else records[0][1]
        except ValueError as exc:
            print(exc, file=sys.stderr)
            return 2
        print(fold_table(record))
        return 0
    from sklearn.model_selection import StratifiedGroupKFold

    from idcclf._io import atomic_write_text

    use_augmentation(args.augmentation)
    use_batch_norm(args.batch_norm)
    try:
        X, y, groups, coords = load_roots(
            args.data,
            with_coords=True,
            standardize=args.standardize_patients,
            means_only=args.means_only,
            normalize_stains=args.normalize_stains,
            upsample=args.upsample,
        )
    except ValueError as exc:
        print(f"cv_accuracy: {exc}", file=sys.stderr)
        return 2
    if args.upsample > 1:
        args.params.setdefault("input_shape", tuple(X.shape[1:]))
    if args.fraction < 1:
        keep = subsample(y, groups, args.fraction)
        X, y, groups, coords = X[keep], y[keep], groups[keep], coords[keep]
    print(
        f"{len(y)} patches, {len(np.unique(groups))} patients, {y.mean():.1%} IDC; "
        f"{args.folds} folds by patient, {args.epochs} epochs, {os.cpu_count()} CPUs; "
        f"recipe {args.recipe}, parameters {args.params}, {args.augmentation} augmentation, "
        f"{args.batch_norm} batch normalization"
        + (", colours standardized per patient" if args.standardize_patients else "")
        + (" (means only)" if args.means_only else "")
        + (", stains normalized per patient" if args.normalize_stains else "")
        + (f", patches upsampled {args.upsample}x" if args.upsample > 1 else "")
        + (f", weights by patient size^-{args.patient_weight}" if args.patient_weight else ""),
        flush=True,
    )
    record = {
        "command": " ".join(["python", "benchmarks/cv_accuracy.py", *sys.argv[1:]]),
        "data": [str(root) for root in args.data],
        "recipe": args.recipe,
        "epochs": args.epochs,
        "params": args.params,
        "n_patches": int(len(y)),
        "n_patients": int(len(np.unique(groups))),
        "fraction": args.fraction,
        "train_patients": args.train_patients,
        "augmentation": args.augmentation,
        "batch_norm": args.batch_norm,
        "standardize_patients": args.standardize_patients,
        "means_only": args.means_only,
        "normalize_stains": args.normalize_stains,
        "seeds": args.seeds,
        "first_seed": args.first_seed,
        # Only when set: results made before the option stay joinable with new parts.
        **({"patient_batch_norm": True} if args.patient_batch_norm else {}),
        **({"patient_weight": args.patient_weight} if args.patient_weight else {}),
        **({"upsample": args.upsample} if args.upsample > 1 else {}),
        **({"train_fraction": args.train_fraction} if args.train_fraction < 1 else {}),
        "folds": [],
    }
    splitter = StratifiedGroupKFold(n_splits=args.folds, shuffle=True, random_state=0)
    predictions = []
    for k, (train, test) in enumerate(splitter.split(X, y, groups), start=1):
        if args.max_folds is not None and k > args.max_folds:
            break
        if args.fold is not None and k not in args.fold:
            continue
        report, probas, adapted = run_fold(k, train, test, X, y, groups, args, args.params)
        record["folds"].append(report)
        record["summary"] = summarize(record["folds"])
        atomic_write_text(args.out, json.dumps(record, indent=2))
        if args.predictions:
            part = {
                "fold": np.full(len(test), k),
                "patient": groups[test],
                "coords": coords[test],
                "label": y[test],
                "proba": probas.mean(axis=0),
            }
            if args.seeds > 1:
                part["proba_per_model"] = probas.T
            if adapted is not None:
                part["proba_patient_batch_norm"] = adapted
            predictions.append(part)
            save_predictions(args.predictions, predictions)
        print(
            f"fold {k}: "
            + ", ".join(f"{m} {report[m]:.3f}" for m in METRICS)
            + (
                f"; balanced_accuracy_patient_batch_norm "
                f"{report['balanced_accuracy_patient_batch_norm']:.3f}"
                if args.patient_batch_norm
                else ""
            )
            + f"; {report['seconds']:.0f} s wall, {report['n_train_patients']} training "
            f"patients; test patients {' '.join(report['test_patients'])}",
            flush=True,
        )
    for m, stats in record["summary"].items():
        print(f"{m:<42} {stats['mean']:.3f} +/- {stats['std']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
