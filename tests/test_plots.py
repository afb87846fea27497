"""Plots: valid PNG files, written atomically, with clear errors for bad input."""

import numpy as np
import pytest
from PIL import Image

from idcclf.metrics import evaluation_report
from idcclf.plots import (
    plot_confusion_matrix,
    plot_pr_curve,
    plot_roc_curve,
    plot_training_curves,
)

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
