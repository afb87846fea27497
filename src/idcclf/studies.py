"""Named model-selection studies: one question about CancerNet, one grid search each.

Each study is a parameter grid on :class:`idcclf.IDCClassifier` (or, for ``imbalance``,
on a pipeline that can undersample), searched by :func:`run_study` with
``GridSearchCV`` over folds by patient and five metrics: balanced accuracy (which
picks the best setting), sensitivity, specificity, F1 and ROC AUC. The result holds
a table of mean and standard deviation over folds per setting, with fit times, and
writes it as CSV and Markdown with a plot (PNG).

==================  =================================================================
study               settings compared
==================  =================================================================
``dropout``         block dropout after vs before pooling x rate 0.1, 0.25, 0.5
``batch_norm``      batch normalization on vs off
``learning_rate``   1e-1, 1e-2, 1e-3, 1e-4
``optimizer``       Adagrad vs Adam
``imbalance``       nothing vs class weights vs undersampling the majority
==================  =================================================================

Only the studied knobs change; every other parameter is the same for all settings
(``IDCClassifier`` defaults, :data:`STUDY_DEFAULTS`, then ``base_params``).

This module imports scikit-learn, TensorFlow and matplotlib only when a study runs, so
that listing the studies (``idcclf study --help``) stays instant.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "METRICS",
    "STUDIES",
    "STUDY_DEFAULTS",
    "Study",
    "StudyResult",
    "get_study",
    "make_search",
    "run_study",
    "stratified_subset",
]

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
        return ", ".join(f"{_short(key)}={_format_value(value)}" for key, value in params.items())


def _short(key: str) -> str:
    key = key.removeprefix("classifier__")
    return {"dropout_placement": "placement"}.get(key, key)


def _format_value(value) -> str:
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


#: The studies :func:`run_study` knows, by name.
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


def _classifier_knobs() -> list[str]:
    from .estimator import IDCClassifier

    return sorted(IDCClassifier().get_params(deep=False))


def _check_knobs(keys, valid: Sequence[str], what: str) -> None:
    unknown = [key for key in keys if key not in valid]
    if unknown:
        raise ValueError(
            f"{what} {', '.join(map(repr, unknown))} {'is' if len(unknown) == 1 else 'are'} "
            f"not a knob of the estimator; valid ones: {', '.join(valid)}"
        )


def _make_estimator(study: Study, base_params: Mapping[str, Any]):
    from .estimator import IDCClassifier

    _check_knobs(base_params, _classifier_knobs(), "base_params key")
    classifier = IDCClassifier(**base_params)
    if not study.pipeline:
        return classifier
    from .pipelines import make_undersampling_pipeline

    pipe = make_undersampling_pipeline(classifier)
    return pipe.set_params(sampler="passthrough")


def _with_grid(study: Study, grid) -> Study:
    return study if grid is None else dataclasses.replace(study, grid=grid)


def make_search(
    name: str | Study,
    *,
    y=None,
    cv=3,
    epochs: int = 5,
    n_jobs: int | None = 1,
    base_params: Mapping[str, Any] | None = None,
    grid=None,
    random_state: int | None = 0,
    refit: bool = True,
    verbose: int = 0,
):
    """Build the ``GridSearchCV`` of a study without fitting it.

    Parameters are those of :func:`run_study`, except ``verbose``, which is passed to
    ``GridSearchCV`` as it is; ``y`` (optional) chooses between stratified and plain
    folds by patient when ``cv`` is an int.

    Returns
    -------
    sklearn.model_selection.GridSearchCV
    """
    from sklearn.model_selection import GridSearchCV

    from .model_selection import _resolve_cv, study_scoring

    study = _with_grid(get_study(name), grid)
    params = {**STUDY_DEFAULTS, "epochs": epochs, "random_state": random_state}
    params.update(base_params or {})
    estimator = _make_estimator(study, params)
    param_grid = study.param_grid(random_state)
    valid = sorted(estimator.get_params(deep=True))
    for g in param_grid:
        _check_knobs(g, valid, "grid parameter")
    return GridSearchCV(
        estimator,
        param_grid,
        scoring=study_scoring(),
        refit=METRICS[0] if refit else False,
        cv=_resolve_cv(cv, y, random_state),
        n_jobs=n_jobs,
        verbose=verbose,
        error_score=np.nan,
    )


def run_study(
    name: str | Study,
    X,
    y,
    groups,
    *,
    cv=3,
    epochs: int = 5,
    n_jobs: int | None = 1,
    base_params: Mapping[str, Any] | None = None,
    grid=None,
    random_state: int | None = 0,
    refit: bool = True,
    verbose: int = 1,
) -> StudyResult:
    """Run a study: a grid search with folds by patient and the five study metrics.

    Parameters
    ----------
    name : str or Study
        One of :data:`STUDIES` (``'dropout'``, ``'batch_norm'``, ``'learning_rate'``,
        ``'optimizer'``, ``'imbalance'``) or a :class:`Study`.
    X : array-like of shape (n_samples, 50, 50, 3) or (n_samples, 7500)
        Patches, uint8.
    y : array-like of shape (n_samples,)
        Labels, 1 = IDC.
    groups : array-like of shape (n_samples,)
        Patient id of every patch; required.
    cv : int or splitter, default=3
        An int makes :func:`idcclf.model_selection.patient_cv` folds (stratified when
        the classes are imbalanced).
    epochs : int, default=5
        Training epochs of every fit.
    n_jobs : int or None, default=1
        Fits run in parallel. With more than one, each worker process gets
        ``cores // n_jobs`` TensorFlow threads (or ``IDCCLF_TF_THREADS``), see
        :mod:`idcclf._threads`. Inside ``joblib.parallel_backend('dask')`` the fits run
        on the Dask workers; register :class:`idcclf._threads.TFThreadsPlugin` to
        limit their threads.
    base_params : dict or None, default=None
        ``IDCClassifier`` parameters shared by all settings (e.g. a smaller network).
        A key that is not a parameter raises ``ValueError`` naming the valid ones.
    grid : dict or list of dict, default=None
        Replaces the study's grid (same keys as the study's estimator takes).
    random_state : int or None, default=0
        Seed of the classifiers, of the samplers and of the fold assignment.
    refit : bool, default=True
        Refit the best setting (by balanced accuracy) on all the data, as
        ``result.search.best_estimator_``.
    verbose : int, default=1
        0 silent; otherwise a header, then one line per fit with its fold scores and
        time (from ``GridSearchCV``).

    Returns
    -------
    StudyResult
        ``table`` (one row per setting), ``search`` (the fitted ``GridSearchCV``),
        ``save(out_dir)`` for CSV, Markdown and PNG.

    Raises
    ------
    ValueError
        For an unknown study (listing the known ones), an unknown knob, missing
        ``groups`` or fewer patients than folds.

    Examples
    --------
    >>> from idcclf import load_sample
    >>> from idcclf.studies import run_study
    >>> data = load_sample()
    >>> result = run_study("optimizer", data.data, data.target, data.groups,
    ...                    epochs=2)  # doctest: +SKIP
    >>> print(result.to_markdown())  # doctest: +SKIP
    """
    import joblib

    from ._threads import threads_per_worker, worker_tf_threads
    from .model_selection import check_groups, fold_patients

    study = _with_grid(get_study(name), grid)
    y = np.asarray(y)
    groups = check_groups(groups, len(y), where="run_study")
    search = make_search(
        study,
        y=y,
        cv=cv,
        epochs=epochs,
        n_jobs=n_jobs,
        base_params=base_params,
        random_state=random_state,
        refit=refit,
        verbose=3 if verbose else 0,
    )
    folds = fold_patients(search.cv, X, y, groups)
    n_settings = study.n_settings(random_state)
    n_workers = joblib.effective_n_jobs(n_jobs)
    if verbose:
        print(
            f"study {study.name!r}: {study.question}\n"
            f"  {n_settings} settings x {len(folds)} folds by patient = "
            f"{n_settings * len(folds)} fits{' + 1 refit' if refit else ''}, "
            f"{len(y)} patches of {np.unique(groups).size} patients, {_plural(epochs, 'epoch')}, "
            f"{n_workers} in parallel",
            flush=True,
        )
    threads = None
    if n_workers > 1:
        threads = threads_per_worker(n_workers)
        # Start TensorFlow here first, so that this process (which refits the best
        # setting) keeps all its cores: the limit below is for the workers.
        _start_tensorflow()
    started = time.perf_counter()
    with worker_tf_threads(threads):
        search.fit(X, y, groups=groups)
    elapsed = time.perf_counter() - started
    result = StudyResult.from_search(study, search, elapsed=elapsed, epochs=epochs)
    if verbose:
        print(f"done in {elapsed:.0f} s\n", flush=True)
    return result


def stratified_subset(y, n: int, *, random_state: int | None = 0) -> np.ndarray:
    """Indices of ``n`` samples drawn at random with the class ratio of ``y`` kept.

    Unlike ``load_idc(max_per_class=...)``, which balances the classes, this keeps the
    data as imbalanced as it is, which the ``imbalance`` study needs.

    Parameters
    ----------
    y : array-like of shape (n_samples,)
    n : int
        Samples to keep (all of them when ``n >= len(y)``).
    random_state : int or None, default=0

    Returns
    -------
    ndarray of int
        Sorted indices.
    """
    y = np.asarray(y)
    if n >= len(y):
        return np.arange(len(y))
    rng = np.random.default_rng(random_state)
    classes, counts = np.unique(y, return_counts=True)
    # Largest-remainder rounding, so the shares add up to exactly n.
    exact = counts * n / len(y)
    quota = np.floor(exact).astype(int)
    quota[np.argsort(quota - exact)[: n - quota.sum()]] += 1
    keep = [
        rng.choice(np.flatnonzero(y == label), size=k, replace=False)
        for label, k in zip(classes, quota, strict=True)
    ]
    return np.sort(np.concatenate(keep))


def _start_tensorflow() -> None:
    import tensorflow as tf

    tf.constant(0.0) + 1.0  # the first op starts the runtime and sizes its thread pools


@dataclass
class StudyResult:
    """Outcome of :func:`run_study`.

    Attributes
    ----------
    study : Study
    search : GridSearchCV
        The fitted search (``cv_results_``, ``best_params_``, ``best_estimator_``).
    table : list of dict
        One row per setting, in grid order: ``setting`` (label), ``params`` (dict),
        ``<metric>_mean`` / ``<metric>_std`` over folds, ``<metric>_folds`` (list),
        ``fit_time_mean`` / ``fit_time_std`` (s), ``n_failed`` (folds whose fit
        failed, e.g. diverged) and ``rank`` (by balanced accuracy, 1 = best).
    elapsed : float
        Wall time of the search, in seconds.
    epochs : int
    """

    study: Study
    search: Any
    table: list[dict]
    elapsed: float
    epochs: int

    @classmethod
    def from_search(cls, study: Study, search, *, elapsed: float, epochs: int) -> StudyResult:
        """Tabulate a fitted search."""
        results = search.cv_results_
        n_splits = search.n_splits_
        table = []
        for i, params in enumerate(results["params"]):
            row: dict[str, Any] = {"setting": study.setting_label(params), "params": params}
            failed = np.zeros(n_splits, dtype=bool)
            for metric in METRICS:
                folds = np.array(
                    [results[f"split{k}_test_{metric}"][i] for k in range(n_splits)], dtype=float
                )
                failed |= np.isnan(folds)
                row[f"{metric}_mean"] = float(results[f"mean_test_{metric}"][i])
                row[f"{metric}_std"] = float(results[f"std_test_{metric}"][i])
                row[f"{metric}_folds"] = folds.tolist()
            row["fit_time_mean"] = float(results["mean_fit_time"][i])
            row["fit_time_std"] = float(results["std_fit_time"][i])
            row["n_failed"] = int(failed.sum())
            row["rank"] = int(results[f"rank_test_{METRICS[0]}"][i])
            table.append(row)
        return cls(study=study, search=search, table=table, elapsed=elapsed, epochs=epochs)

    @property
    def best(self) -> dict:
        """The row ranked first by balanced accuracy."""
        return min(self.table, key=lambda row: row["rank"])

    def summary(self, metrics: Sequence[str] = ("balanced_accuracy", "roc_auc")) -> str:
        """Which setting wins, and whether its lead exceeds the fold-to-fold spread.

        For each of ``metrics`` the best setting is compared with the runner-up: the
        lead in mean score against the larger of their standard deviations over folds
        and, since every setting is scored on the same folds, fold by fold. Fits that
        predicted one class for every test patch are counted, because threshold
        metrics (balanced accuracy, sensitivity, specificity, F1) say little about them
        while ROC AUC still ranks.

        Parameters
        ----------
        metrics : sequence of str, default=('balanced_accuracy', 'roc_auc')

        Returns
        -------
        str
            One line per metric, plus one about one-class fits if there were any.
        """
        if len(self.table) < 2:
            return f"only one setting: {self.table[0]['setting']}"
        lines = []
        for metric in metrics:
            if metric == METRICS[0]:
                ranked = sorted(self.table, key=lambda row: row["rank"])
            else:
                ranked = sorted(
                    self.table, key=lambda row: -np.nan_to_num(row[f"{metric}_mean"], nan=-np.inf)
                )
            best, second = ranked[0], ranked[1]
            lead = best[f"{metric}_mean"] - second[f"{metric}_mean"]
            spread = max(best[f"{metric}_std"], second[f"{metric}_std"])
            diffs = np.subtract(best[f"{metric}_folds"], second[f"{metric}_folds"])
            wins = int(np.sum(diffs > 0))
            verdict = (
                "larger than the fold-to-fold spread"
                if lead > spread
                else "within the fold-to-fold spread: not a clear difference"
            )
            lines.append(
                f"{metric}: best {best['setting']} ({best[f'{metric}_mean']:.3f} ± "
                f"{best[f'{metric}_std']:.3f}), runner-up {second['setting']} "
                f"({second[f'{metric}_mean']:.3f} ± {second[f'{metric}_std']:.3f}); lead "
                f"{lead:.3f}, {verdict} (largest std {spread:.3f}); better in {wins} of "
                f"{len(diffs)} folds."
            )
        one_class = sum(
            int(sens == 0 or spec == 0)
            for row in self.table
            for sens, spec in zip(row["sensitivity_folds"], row["specificity_folds"], strict=True)
        )
        if one_class:
            n_fits = sum(len(row["sensitivity_folds"]) for row in self.table)
            lines.append(
                f"{one_class} of {n_fits} fits predicted a single class for every test patch "
                "(sensitivity or specificity 0); threshold metrics cannot rank those fits, "
                "ROC AUC still can."
            )
        return "\n".join(lines)

    # -- output ---------------------------------------------------------------------

    def to_csv(self) -> str:
        """The table as CSV text: one row per setting, means and stds in columns."""
        columns = ["setting", "rank"]
        for metric in (*METRICS, "fit_time"):
            columns += [f"{metric}_mean", f"{metric}_std"]
        columns += ["n_failed", "params"]
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(columns)
        for row in self.table:
            values = []
            for column in columns:
                value = row[column]
                if column == "params":
                    value = json.dumps({k: _format_value(v) for k, v in value.items()})
                elif isinstance(value, float):
                    value = f"{value:.6g}"
                values.append(value)
            writer.writerow(values)
        return buffer.getvalue()

    def to_markdown(self) -> str:
        """The table as Markdown: ``mean ± std`` over folds per metric and fit time."""
        header = ["rank", "setting", *METRICS, "fit time (s)"]
        lines = [
            "| " + " | ".join(header) + " |",
            "|" + "|".join(["---:", ":---", *["---:"] * (len(METRICS) + 1)]) + "|",
        ]
        for row in self.table:
            cells = [str(row["rank"]), row["setting"]]
            cells += [_mean_std(row, metric, 3) for metric in METRICS]
            cells.append(_mean_std(row, "fit_time", 1))
            if row["n_failed"]:
                cells[1] += f" ({row['n_failed']} fold(s) failed)"
            lines.append("| " + " | ".join(cells) + " |")
        return "\n".join(lines) + "\n"

    def plot(self, path: str | Path) -> Path:
        """Plot every metric per setting (mean, error bar = std over folds) and fit time.

        Parameters
        ----------
        path : str or Path
            PNG file to write (atomically).

        Returns
        -------
        Path
        """
        return _plot(self, Path(path))

    def save(self, out_dir: str | Path, *, notes: str = "") -> dict[str, Path]:
        """Write ``<study>.csv``, ``<study>.md`` and ``<study>.png`` into ``out_dir``.

        The Markdown file holds the table, the summary, how the study was run and
        ``notes`` (e.g. the data and the command).

        Returns
        -------
        dict of str to Path
            ``csv``, ``markdown`` and ``plot`` paths.
        """
        from ._io import atomic_write_text

        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        name = self.study.name
        search = self.search
        markdown = (
            f"# Study `{name}`\n\n{self.study.question}\n\n{self.to_markdown()}\n"
            f"{self.summary()}\n\n"
            f"{search.n_splits_} folds by patient ({type(search.cv).__name__}), "
            f"{_plural(self.epochs, 'epoch')} per fit, search time {self.elapsed:.0f} s.\n"
        )
        if notes:
            markdown += f"\n{notes.rstrip()}\n"
        return {
            "csv": atomic_write_text(out_dir / f"{name}.csv", self.to_csv()),
            "markdown": atomic_write_text(out_dir / f"{name}.md", markdown),
            "plot": self.plot(out_dir / f"{name}.png"),
        }


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _mean_std(row: dict, metric: str, digits: int) -> str:
    mean, std = row[f"{metric}_mean"], row[f"{metric}_std"]
    if not np.isfinite(mean):
        return "n/a"
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def _plot(result: StudyResult, path: Path) -> Path:
    import matplotlib

    if "matplotlib.pyplot" not in sys.modules:
        matplotlib.use("Agg")  # write files on headless machines; never open a window
    import matplotlib.pyplot as plt

    from ._io import atomic_path

    table = result.table
    labels = [row["setting"] for row in table]
    fig, (ax, ax_time) = plt.subplots(
        1,
        2,
        figsize=(11, 4.5),
        gridspec_kw={"width_ratios": [3, 1]},
    )
    width = 0.8 / len(table)
    x = np.arange(len(METRICS))
    for j, row in enumerate(table):
        means = [row[f"{m}_mean"] for m in METRICS]
        stds = [row[f"{m}_std"] for m in METRICS]
        ax.bar(
            x + (j - (len(table) - 1) / 2) * width,
            means,
            width,
            yerr=stds,
            capsize=2,
            label=labels[j],
        )
    ax.set_xticks(x, [m.replace("_", " ") for m in METRICS])
    ax.set_ylim(0, 1.05)
    ax.set_ylabel(f"mean over {result.search.n_splits_} folds (bar: ± std)")
    ax.set_title(f"study {result.study.name!r}: {_plural(result.epochs, 'epoch')} per fit")
    ax.legend(
        fontsize="small",
        loc="upper center",
        bbox_to_anchor=(0.5, -0.1),
        ncol=min(3, len(table)),
        frameon=False,
    )
    ax.grid(axis="y", alpha=0.3)

    y_pos = np.arange(len(table))
    ax_time.barh(
        y_pos,
        [row["fit_time_mean"] for row in table],
        xerr=[row["fit_time_std"] for row in table],
        capsize=2,
        color="gray",
    )
    ax_time.set_yticks(y_pos, labels, fontsize="small")
    ax_time.invert_yaxis()
    ax_time.set_xlabel("fit time (s)")
    ax_time.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    return path
