"""``idcclf study``: a tiny real run writes its table and plot; bad input is one line."""

from __future__ import annotations

import pytest

from idcclf.cli import main
from idcclf.studies import STUDY_DEFAULTS


@pytest.fixture
def tiny_studies(monkeypatch):
    """Studies train a tiny network without augmentation, for speed."""
    monkeypatch.setitem(STUDY_DEFAULTS, "filters", (4, 8, 8))
    monkeypatch.setitem(STUDY_DEFAULTS, "dense_units", 8)
    monkeypatch.setitem(STUDY_DEFAULTS, "augment", False)


def test_study_command_writes_table_and_plot(tmp_path, tiny_studies, capsys):
    out = tmp_path / "study"
    argv = ["study", "optimizer", "--cv", "2", "--epochs", "1", "--max-per-class", "40"]
    status = main([*argv, "--no-refit", "--out", str(out)])
    captured = capsys.readouterr()
    assert status == 0, captured.err
    assert "2 settings x 2 folds by patient = 4 fits," in captured.out
    # Progress: one line per fit.
    assert "[CV 2/2] END optimizer=adam; balanced_accuracy: (test=" in captured.out
    assert "| optimizer=adagrad |" in captured.out and "roc_auc: best" in captured.out
    for suffix in ("csv", "md", "png"):
        assert (out / f"optimizer.{suffix}").stat().st_size > 0
    markdown = (out / "optimizer.md").read_text()
    assert "Command: `idcclf study optimizer --cv 2 --epochs 1 --n-jobs 1" in markdown
    assert "bundled sample, 80 patches" in markdown


def test_save_best_writes_a_model_evaluate_loads(tmp_path, tiny_studies, capsys):
    import joblib

    from idcclf import IDCClassifier
    from idcclf.datasets import load_sample

    out = tmp_path / "study"
    argv = ["study", "optimizer", "--cv", "2", "--epochs", "1", "--max-per-class", "30"]
    status = main([*argv, "--quiet", "--save-best", "--out", str(out)])
    captured = capsys.readouterr()
    assert status == 0, captured.err
    path = out / "optimizer_best.joblib"
    assert f"saved {out / 'optimizer.csv'}" in captured.out and str(path) in captured.out
    assert "--save-best" in (out / "optimizer.md").read_text()
    model = joblib.load(path)
    assert type(model) is IDCClassifier and hasattr(model, "model_")
    studied = load_sample(max_per_class=30, random_state=0)
    assert sorted(map(str, model.training_groups_)) == sorted(set(studied.groups))
    patient = str(studied.groups[0])
    with pytest.warns(UserWarning, match="1 of the 1 patients evaluated was used to train"):
        argv = ["evaluate", str(path), "--patients", patient, "--out", str(tmp_path / "eval")]
        assert main(argv) == 0


def test_save_best_needs_the_refit(tmp_path, capsys):
    argv = ["study", "optimizer", "--save-best", "--no-refit", "--out", str(tmp_path / "s")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert (
        err == "idcclf study: error: --save-best saves the refitted best setting: drop --no-refit\n"
    )
    assert not (tmp_path / "s").exists()


def test_study_command_rejects_an_unknown_study(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["study", "dropuot"])
    assert exc.value.code == 2
    assert "invalid choice: 'dropuot'" in capsys.readouterr().err


def test_study_command_rejects_more_folds_than_patients(tmp_path, capsys):
    argv = ["study", "optimizer", "--cv", "13", "--quiet", "--max-per-class", "5"]
    status = main([*argv, "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert status == 2
    assert err.count("\n") == 1 and "cannot make 13 folds by patient" in err
