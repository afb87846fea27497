"""Plots: valid PNG files, written atomically, with clear errors for bad input."""

import itertools

import numpy as np
import pytest
from _studies import fake_search
from PIL import Image

from idcclf import plots
from idcclf.metrics import evaluation_report
from idcclf.plots import (
    plot_confusion_matrix,
    plot_pr_curve,
    plot_roc_curve,
    plot_study,
    plot_training_curves,
)
from idcclf.studies import StudyResult, get_study

RNG = np.random.default_rng(0)
Y = np.r_[np.zeros(60, dtype=int), np.ones(40, dtype=int)]
P = np.clip(0.35 * Y + RNG.random(100) * 0.65, 0, 1)


def assert_png(path, min_side=200):
    assert path.is_file()
    with Image.open(path) as image:
        assert image.format == "PNG"
        image.load()  # decodes every byte: a truncated file fails here
        assert min(image.size) >= min_side
        # A figure with content, not one flat colour.
        assert len(image.convert("L").getcolors(maxcolors=1 << 16) or range(2)) > 10
    assert not list(path.parent.glob(f".{path.name}.*.tmp")), "temporary file left behind"


def test_confusion_matrix_from_labels_and_from_a_report(tmp_path):
    out = plot_confusion_matrix(Y, (P >= 0.5).astype(int), tmp_path / "labels.png")
    assert out == tmp_path / "labels.png"
    assert_png(out)
    report = evaluation_report(Y, P, threshold=0.5)
    assert_png(plot_confusion_matrix(report, tmp_path / "report.png"))
    # Same matrix either way, hence the same picture but for the title.
    with Image.open(tmp_path / "labels.png") as a, Image.open(tmp_path / "report.png") as b:
        assert a.size == b.size


def test_confusion_matrix_string_labels(tmp_path):
    y = np.where(Y == 1, "IDC", "no IDC")
    pred = np.where(P >= 0.5, "IDC", "no IDC")
    assert_png(plot_confusion_matrix(y, pred, tmp_path / "cm.png", pos_label="IDC"))


def test_roc_and_pr_curves(tmp_path):
    assert_png(plot_roc_curve(Y, P, tmp_path / "roc.png"))
    assert_png(plot_pr_curve(Y, np.c_[1 - P, P], tmp_path / "pr.png", threshold=None))
    assert_png(
        plot_training_curves({"loss": [0.7, 0.5], "accuracy": [0.5, 0.7]}, tmp_path / "t.png")
    )


@pytest.mark.parametrize("plot", [plot_roc_curve, plot_pr_curve])
def test_curves_need_both_classes(tmp_path, plot):
    with pytest.raises(ValueError, match="both classes"):
        plot(np.ones(5), np.linspace(0, 1, 5), tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()


def test_confusion_matrix_bad_calls(tmp_path):
    with pytest.raises(TypeError, match="y_pred"):
        plot_confusion_matrix(Y, path=tmp_path / "x.png")
    with pytest.raises(TypeError, match="path"):
        plot_confusion_matrix(Y, Y)
    with pytest.raises(ValueError, match="shape"):
        plot_confusion_matrix(Y, Y[:3], tmp_path / "x.png")


def test_failed_write_keeps_the_old_file(tmp_path):
    target = tmp_path / "roc.png"
    target.write_bytes(b"old")
    with pytest.raises(ValueError):
        plot_roc_curve(Y, P[:10], target)
    assert target.read_bytes() == b"old"
    with pytest.raises(IsADirectoryError):
        plot_roc_curve(Y, P, tmp_path)


# ------------------------------------------------------------- layout, as written


@pytest.fixture
def figures(monkeypatch):
    """(figure, renderer) of every figure a plot function saves, drawn at its size."""
    saved = []
    save = plots._save

    def keep(fig, path):
        fig.canvas.draw()  # lays the figure out as saving will (same size and dpi)
        saved.append((fig, fig.canvas.get_renderer()))
        return save(fig, path)

    monkeypatch.setattr(plots, "_save", keep)
    return saved


def _boxes(artists, renderer):
    return [a.get_window_extent(renderer) for a in artists if a.get_text()]


def assert_apart(boxes):
    for a, b in itertools.combinations(boxes, 2):
        assert not a.overlaps(b), f"{a} overlaps {b}"


def assert_legend_outside(ax, renderer):
    legend = ax.get_legend().get_window_extent(renderer)
    assert not legend.overlaps(ax.get_window_extent(renderer)), "the legend covers the data"


def test_a_one_epoch_history_shows_its_points(tmp_path, figures):
    history = {"loss": [0.6], "accuracy": [0.7], "val_loss": [0.5], "val_accuracy": [0.75]}
    assert_png(plot_training_curves(history, tmp_path / "t.png"))
    ((fig, _),) = figures
    (ax,) = fig.axes
    assert len(ax.lines) == 4
    for line in ax.lines:
        assert line.get_marker() not in (None, "None", "", " ") and line.get_markersize() >= 3
        assert list(line.get_xdata()) == [1]
    low, high = ax.get_xlim()
    assert low < 1 < high and list(ax.get_xticks()) == [1]


def test_training_curves_legend_beside_the_curves(tmp_path, figures):
    epochs = np.arange(30)
    history = {"loss": list(1 - epochs / 40), "accuracy": list(epochs / 40)}
    plot_training_curves(history, tmp_path / "t.png")
    ((fig, renderer),) = figures
    (ax,) = fig.axes
    assert_legend_outside(ax, renderer)
    assert np.all(np.mod(ax.get_xticks(), 1) == 0)  # whole epochs only


@pytest.mark.parametrize("plot", [plot_roc_curve, plot_pr_curve])
def test_curve_legends_cover_no_data(tmp_path, figures, plot):
    # A poor model with few IDC patches: its curve and the chance line run low.
    y = np.r_[np.zeros(90, dtype=int), np.ones(10, dtype=int)]
    p = np.random.default_rng(1).random(100)
    assert_png(plot(y, p, tmp_path / "c.png"))
    ((fig, renderer),) = figures
    (ax,) = fig.axes
    assert_legend_outside(ax, renderer)


def _dropout_result():
    study = get_study("dropout")
    params = [
        {"dropout_placement": placement, "block_dropout": rate}
        for placement in ("after_pool", "before_pool")
        for rate in (0.1, 0.25, 0.5)
    ]
    folds = np.random.default_rng(0).uniform(0.6, 0.9, (6, 3)).tolist()
    search = fake_search({"balanced_accuracy": folds}, params)
    search.cv_results_["mean_fit_time"] = np.linspace(40, 90, 6)
    return StudyResult.from_search(study, search, elapsed=10, epochs=3)


def test_study_plot_labels_apart_and_fit_times_readable(tmp_path, figures):
    result = _dropout_result()
    assert_png(plot_study(result, tmp_path / "dropout.png"))
    ((fig, renderer),) = figures
    axes = {ax.get_label(): ax for ax in fig.axes}
    metrics, times = axes["metrics"], axes["fit time"]
    assert_apart(_boxes(metrics.get_xticklabels(), renderer))
    assert_apart(_boxes(times.get_yticklabels(), renderer))
    # The setting names label the fit times, each bar in its setting's colour.
    assert [t.get_text() for t in times.get_yticklabels()] == [r["setting"] for r in result.table]
    colours = [bar.get_facecolor() for bar in times.patches]
    assert len(set(colours)) == 6
    bars = [c for c in metrics.containers if hasattr(c, "patches")]
    assert [c.patches[0].get_facecolor() for c in bars] == colours
    # Both panels use most of the width: none is squeezed beside the other.
    width = fig.bbox.width
    assert metrics.get_window_extent(renderer).width > 0.75 * width
    assert times.get_window_extent(renderer).width > 0.45 * width
