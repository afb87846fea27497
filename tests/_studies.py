"""Stand-ins for fitted study searches: tables and plots without training a network."""

from types import SimpleNamespace

import numpy as np

from idcclf.studies import METRICS


def fake_search(scores: dict[str, list[list[float]]], params: list[dict], **attrs):
    """A fitted-search stand-in: ``cv_results_`` of the given fold scores per setting."""
    n = len(params)
    results = {"params": params, "mean_fit_time": [1.0] * n, "std_fit_time": [0.1] * n}
    for metric in METRICS:
        folds = np.array(scores.get(metric, scores["balanced_accuracy"]), dtype=float)
        results[f"mean_test_{metric}"] = folds.mean(axis=1)
        results[f"std_test_{metric}"] = folds.std(axis=1)
        for k in range(folds.shape[1]):
            results[f"split{k}_test_{metric}"] = folds[:, k]
    order = np.argsort(-np.nan_to_num(results["mean_test_balanced_accuracy"], nan=-1))
    results["rank_test_balanced_accuracy"] = np.argsort(order) + 1
    return SimpleNamespace(cv_results_=results, n_splits_=folds.shape[1], cv=None, **attrs)
