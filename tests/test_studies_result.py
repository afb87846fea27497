"""idcclf.studies.result: the table of a search, the verdict on the winner, the files."""

from __future__ import annotations

import csv
import io
from types import SimpleNamespace

import numpy as np
from _studies import fake_search

from idcclf.studies import Study, StudyResult, get_study

TOY = Study("toy", "?", {"optimizer": ["adam", "sgd"]})
TOY_PARAMS = [{"optimizer": "adam"}, {"optimizer": "sgd"}]


def test_summary_compares_the_lead_with_the_fold_spread():
    clear = fake_search({"balanced_accuracy": [[0.9, 0.91, 0.89], [0.7, 0.72, 0.68]]}, TOY_PARAMS)
    result = StudyResult.from_search(TOY, clear, elapsed=1.0, epochs=1)
    assert result.best["setting"] == "optimizer=adam"
    assert "larger than the fold-to-fold spread" in result.summary()
    assert "better in 3 of 3 folds" in result.summary()
    close = fake_search({"balanced_accuracy": [[0.8, 0.7, 0.9], [0.78, 0.72, 0.85]]}, TOY_PARAMS)
    result = StudyResult.from_search(TOY, close, elapsed=1.0, epochs=1)
    assert "within the fold-to-fold spread" in result.summary()
    assert "predicted a single class" not in result.summary()


def test_summary_flags_fits_that_predict_one_class():
    scores = {
        "balanced_accuracy": [[0.5, 0.5], [0.5, 0.6]],
        "sensitivity": [[1.0, 0.0], [1.0, 0.5]],
        "specificity": [[0.0, 1.0], [0.0, 0.7]],
        "roc_auc": [[0.8, 0.85], [0.7, 0.72]],
    }
    result = StudyResult.from_search(TOY, fake_search(scores, TOY_PARAMS), elapsed=1, epochs=1)
    summary = result.summary()
    assert "roc_auc: best optimizer=adam (0.825" in summary
    assert "3 of 4 fits predicted a single class" in summary


def test_a_single_setting_has_nothing_to_compare():
    search = fake_search({"balanced_accuracy": [[0.7, 0.8]]}, TOY_PARAMS[:1])
    result = StudyResult.from_search(TOY, search, elapsed=1, epochs=1)
    assert result.summary() == "only one setting: optimizer=adam"


def test_failed_folds_are_counted_and_shown():
    study = get_study("learning_rate")
    params = [{"learning_rate": 0.1}, {"learning_rate": 0.01}]
    search = fake_search({"balanced_accuracy": [[np.nan, 0.6], [0.8, 0.7]]}, params)
    result = StudyResult.from_search(study, search, elapsed=1.0, epochs=1)
    assert [row["n_failed"] for row in result.table] == [1, 0]
    markdown = result.to_markdown()
    assert "learning_rate=0.1 (1 fold(s) failed)" in markdown and "n/a" in markdown
    assert "0.750 ± 0.050" in markdown
    rows = list(csv.DictReader(io.StringIO(result.to_csv())))
    assert rows[1]["balanced_accuracy_mean"] == "0.75" and rows[1]["rank"] == "1"
    assert rows[0]["params"] == '{"learning_rate": "0.1"}'


def test_the_refitted_estimator_is_kept_in_memory_only(tmp_path):
    model, pipeline = object(), SimpleNamespace(named_steps={"classifier": "the classifier"})
    scores = {"balanced_accuracy": [[0.9, 0.8], [0.7, 0.6]]}
    result = StudyResult.from_search(
        TOY, fake_search(scores, TOY_PARAMS, best_estimator_=model), elapsed=1, epochs=1
    )
    assert result.best_estimator_ is model and result.best_classifier_ is model
    paths = result.save(tmp_path)
    for key in ("csv", "markdown"):
        assert "object at 0x" not in paths[key].read_text()
    result.best_estimator_ = pipeline
    assert result.best_classifier_ == "the classifier"
