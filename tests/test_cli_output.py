"""Run folders: an earlier run is kept unless --overwrite; an error leaves nothing behind."""

import json

import pytest
from _cli import one_line_error, save_tiny_model

from idcclf.cli import main


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    return save_tiny_model(tmp_path_factory.mktemp("model"))


def evaluate(model_file, out, *options):
    return ["evaluate", str(model_file), "--patients", "8863", "--out", str(out), *options]


def test_evaluate_keeps_an_earlier_run_unless_overwrite(model_file, tmp_path, capsys):
    out = tmp_path / "eval"
    assert main(evaluate(model_file, out, "--heatmaps")) == 0
    first = (out / "metrics.json").read_text()
    (out / "notes.txt").write_text("mine")

    one_line_error(capsys, evaluate(model_file, out, "--threshold", "0.3"), "--overwrite")
    assert (out / "metrics.json").read_text() == first

    assert main(evaluate(model_file, out, "--threshold", "0.3", "--overwrite")) == 0
    assert json.loads((out / "metrics.json").read_text())["threshold"] == 0.3
    # The earlier run's heatmaps are not left beside the new run's files.
    assert not (out / "heatmaps").exists()
    assert (out / "notes.txt").read_text() == "mine"
    assert not [p for p in out.iterdir() if p.name.startswith(".")]


def test_an_error_while_writing_leaves_out_as_it_was(model_file, tmp_path, capsys, monkeypatch):
    from idcclf import plots

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(plots, "plot_roc_curve", disk_full)
    fresh = tmp_path / "fresh"
    one_line_error(capsys, evaluate(model_file, fresh), "No space left on device")
    assert not fresh.exists()

    earlier = tmp_path / "earlier"
    earlier.mkdir()
    (earlier / "metrics.json").write_text("{}")
    one_line_error(capsys, evaluate(model_file, earlier, "--overwrite"), "No space left")
    assert [p.name for p in earlier.iterdir()] == ["metrics.json"]
    assert (earlier / "metrics.json").read_text() == "{}"


def test_study_keeps_an_earlier_run_unless_overwrite(tmp_path, capsys):
    (tmp_path / "optimizer.md").write_text("earlier")
    argv = ["study", "optimizer", "--out", tmp_path, "--quiet"]
    one_line_error(capsys, argv, "earlier run's optimizer.md", "--overwrite")
    assert (tmp_path / "optimizer.md").read_text() == "earlier"


def test_heatmap_keeps_an_earlier_file_unless_overwrite(model_file, tmp_path, capsys):
    from idcclf.datasets import sample_path

    image = tmp_path / "h.png"
    image.write_bytes(b"earlier")
    argv = ["heatmap", model_file, sample_path() / "8863", "--out", image]
    one_line_error(capsys, argv, "--overwrite")
    assert image.read_bytes() == b"earlier"
    assert main([*map(str, argv), "--overwrite"]) == 0
    assert image.read_bytes()[:4] == b"\x89PNG"


def test_study_says_done_once(tmp_path, capsys, monkeypatch):
    from idcclf import studies

    monkeypatch.setitem(studies.STUDY_DEFAULTS, "filters", (4, 8, 8))
    monkeypatch.setitem(studies.STUDY_DEFAULTS, "dense_units", 8)
    monkeypatch.setitem(studies.STUDY_DEFAULTS, "augment", False)
    argv = ["study", "optimizer", "--cv", "2", "--epochs", "1", "--max-per-class", "10"]
    assert main([*argv, "--no-refit", "--out", str(tmp_path)]) == 0
    stdout = capsys.readouterr().out
    assert stdout.count("done in") == 1
