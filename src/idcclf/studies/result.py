"""The outcome of a study: its table, a verdict on the winner, and the files it writes."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .._format import format_mean_std, plural
from .registry import METRICS, Study, format_param

__all__ = ["StudyResult"]


@dataclass
class StudyResult:
    """Outcome of :func:`idcclf.studies.run_study`.

    Attributes
    ----------
    study : Study
    search : GridSearchCV
        The fitted search (``cv_results_``, ``best_params_``).
    table : list of dict
        One row per setting, in grid order: ``setting`` (label), ``params`` (dict),
        ``<metric>_mean`` / ``<metric>_std`` over folds, ``<metric>_folds`` (list),
        ``fit_time_mean`` / ``fit_time_std`` (s), ``n_failed`` (folds whose fit
        failed, e.g. diverged) and ``rank`` (by balanced accuracy, 1 = best).
    elapsed : float
        Wall time of the search, in seconds.
    epochs : int
    best_estimator_ : estimator or None
        The best setting refitted on all the data (``refit=True``), ready to save with
        ``joblib.dump``; None without refit. An ``IDCClassifier``, or for the
        ``imbalance`` study the resampling pipeline (see :attr:`best_classifier_`).
        It is kept in memory only: the CSV, Markdown and PNG files never hold it.
    """

    study: Study
    search: Any
    table: list[dict]
    elapsed: float
    epochs: int
    best_estimator_: Any = field(default=None, repr=False, compare=False)

    @property
    def metrics(self) -> tuple[str, ...]:
        """The metrics of ``table``, in report order (balanced accuracy first)."""
        return METRICS

    @classmethod
    def from_search(cls, study: Study, search, *, elapsed: float, epochs: int) -> StudyResult:
        """Tabulate a fitted search."""
        results = search.cv_results_
        table = [_row(study, results, i, search.n_splits_) for i in range(len(results["params"]))]
        return cls(
            study=study,
            search=search,
            table=table,
            elapsed=elapsed,
            epochs=epochs,
            best_estimator_=getattr(search, "best_estimator_", None),
        )

    @property
    def best(self) -> dict:
        """The row ranked first by balanced accuracy."""
        return min(self.table, key=lambda row: row["rank"])

    @property
    def best_classifier_(self):
        """The ``IDCClassifier`` of :attr:`best_estimator_` (None without refit).

        The resampling pipeline of the ``imbalance`` study samples in ``fit`` only and
        only flattens the patches in ``predict``, so its fitted classifier predicts the
        same on its own; it is the model to save for ``idcclf evaluate``.
        """
        estimator = self.best_estimator_
        if estimator is not None and hasattr(estimator, "named_steps"):
            return estimator.named_steps["classifier"]
        return estimator

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
        lines = [self._comparison(metric) for metric in metrics]
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

    def _comparison(self, metric: str) -> str:
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
        verdict = (
            "larger than the fold-to-fold spread"
            if lead > spread
            else "within the fold-to-fold spread: not a clear difference"
        )
        return (
            f"{metric}: best {best['setting']} ({_mean_std(best, metric)}), runner-up "
            f"{second['setting']} ({_mean_std(second, metric)}); lead {lead:.3f}, {verdict} "
            f"(largest std {spread:.3f}); better in {int(np.sum(diffs > 0))} of "
            f"{len(diffs)} folds."
        )

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
                    value = json.dumps({k: format_param(v) for k, v in value.items()})
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
            cells += [_mean_std(row, metric) for metric in METRICS]
            cells.append(_mean_std(row, "fit_time", 1))
            if row["n_failed"]:
                cells[1] += f" ({row['n_failed']} fold(s) failed)"
            lines.append("| " + " | ".join(cells) + " |")
        return "\n".join(lines) + "\n"

    def plot(self, path: str | Path) -> Path:
        """Plot every metric per setting (mean ± std over folds) and fit time, as PNG.

        See :func:`idcclf.plots.plot_study`.
        """
        from ..plots import plot_study

        return plot_study(self, path)

    def save(self, out_dir: str | Path, *, notes: str = "") -> dict[str, Path]:
        """Write ``<study>.csv``, ``<study>.md`` and ``<study>.png`` into ``out_dir``.

        The Markdown file holds the table, the summary, how the study was run and
        ``notes`` (e.g. the data and the command). The refitted model is not written;
        save :attr:`best_estimator_` with joblib for that.

        Returns
        -------
        dict of str to Path
            ``csv``, ``markdown`` and ``plot`` paths.
        """
        from .._io import atomic_write_text

        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        name = self.study.name
        search = self.search
        markdown = (
            f"# Study `{name}`\n\n{self.study.question}\n\n{self.to_markdown()}\n"
            f"{self.summary()}\n\n"
            f"{search.n_splits_} folds by patient ({type(search.cv).__name__}), "
            f"{plural(self.epochs, 'epoch')} per fit, search time {self.elapsed:.0f} s.\n"
        )
        if notes:
            markdown += f"\n{notes.rstrip()}\n"
        return {
            "csv": atomic_write_text(out_dir / f"{name}.csv", self.to_csv()),
            "markdown": atomic_write_text(out_dir / f"{name}.md", markdown),
            "plot": self.plot(out_dir / f"{name}.png"),
        }


def _row(study: Study, results: dict, i: int, n_splits: int) -> dict[str, Any]:
    """One table row: setting ``i`` of ``cv_results_``."""
    params = results["params"][i]
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
    return row


def _mean_std(row: dict, metric: str, digits: int = 3) -> str:
    return format_mean_std(row[f"{metric}_mean"], row[f"{metric}_std"], digits)
