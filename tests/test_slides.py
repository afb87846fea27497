"""Per-patient table, slide images rebuilt from patches, probability maps, heatmaps."""

import csv
import io

import numpy as np
import pytest
from PIL import Image

from idcclf.datasets import load_sample
from idcclf.metrics import evaluation_report
from idcclf.slides import (
    PATIENT_COLUMNS,
    patient_table,
    plot_heatmap,
    probability_map,
    slide_image,
    smooth_probabilities,
    to_csv,
    to_markdown,
)


@pytest.fixture(scope="module")
def patient():
    """One real patient of the bundled sample (both classes, some edge patches)."""
    return load_sample(patients=["8914"], cache=False)


def solid_patches(*values):
    return np.stack([np.full((50, 50, 3), v, dtype=np.uint8) for v in values])


# ------------------------------------------------------------------ slide_image


def test_patches_land_at_their_coordinates():
    # Coordinates as in the real file names: top-left corners on a 50 px grid from 1.
    data = solid_patches(10, 20, 30)
    coords = np.array([[1, 1], [51, 1], [101, 51]])
    canvas = slide_image(data, coords)
    assert canvas.shape == (100, 150, 3) and canvas.dtype == np.uint8
    assert (canvas[0:50, 0:50] == 10).all()
    assert (canvas[0:50, 50:100] == 20).all()
    assert (canvas[50:100, 100:150] == 30).all()
    assert (canvas[50:100, 0:100] == 255).all()  # no patch there: white background


def test_explicit_origin_shifts_the_canvas():
    data = solid_patches(10)
    canvas = slide_image(data, [[51, 101]], origin=(0, 0))
    assert canvas.shape == (151, 101, 3)
    assert (canvas[101:151, 51:101] == 10).all()
    assert (canvas[:101] == 255).all() and (canvas[:, :51] == 255).all()
    with pytest.raises(ValueError, match="origin"):
        slide_image(data, [[51, 101]], origin=(60, 0))


def test_asymmetric_patch_keeps_x_as_columns_and_y_as_rows():
    patch = np.full((1, 50, 50, 3), 255, dtype=np.uint8)
    patch[0, 5, 7] = (1, 2, 3)  # row 5, column 7 of the patch
    canvas = slide_image(patch, [[1000, 2000]], origin=(900, 1900))
    assert tuple(canvas[100 + 5, 100 + 7]) == (1, 2, 3)


def test_real_patient_slide_holds_every_patch(patient):
    canvas = slide_image(patient.data, patient.coords)
    x0, y0 = patient.coords.min(axis=0)
    x_max, y_max = patient.coords.max(axis=0)
    assert canvas.shape == (y_max - y0 + 50, x_max - x0 + 50, 3)
    for patch, (x, y) in zip(patient.data, patient.coords, strict=True):
        np.testing.assert_array_equal(canvas[y - y0 : y - y0 + 50, x - x0 : x - x0 + 50], patch)


@pytest.mark.parametrize(
    ("coords", "match"),
    [
        (np.zeros((2, 3), dtype=int), r"\(n, 2\)"),
        (np.zeros((1, 2), dtype=int), "rows"),
        (np.zeros((2, 2)), "integer"),
    ],
)
def test_bad_coords(coords, match):
    with pytest.raises(ValueError, match=match):
        slide_image(solid_patches(1, 2), coords)


# -------------------------------------------------------------- probability_map


def test_probability_map_cells_and_background():
    coords = np.array([[1, 1], [51, 1], [101, 51], [101, 51]])
    grid = probability_map(coords, [0.1, 0.2, 0.3, 0.5])
    assert grid.shape == (2, 3)
    assert grid[0, 0] == pytest.approx(0.1) and grid[0, 1] == pytest.approx(0.2)
    assert grid[1, 2] == pytest.approx(0.4)  # two patches in one cell: their mean
    assert np.isnan(grid[[0, 1, 1], [2, 0, 1]]).all()
    # predict_proba output: the last (IDC) column is used.
    np.testing.assert_allclose(
        probability_map(coords[:2], np.array([[0.9, 0.1], [0.8, 0.2]])), [[0.1, 0.2]]
    )


def test_probability_map_lines_up_with_the_slide(patient):
    grid = probability_map(patient.coords, patient.target)
    canvas = slide_image(patient.data, patient.coords)
    assert grid.shape == (canvas.shape[0] // 50, canvas.shape[1] // 50)
    x0, y0 = patient.coords.min(axis=0)
    cols, rows = ((patient.coords - (x0, y0)) // 50).T
    np.testing.assert_array_equal(grid[rows, cols], patient.target)
    assert np.isnan(grid).sum() == grid.size - len(patient.target)


# --------------------------------------------------------- smooth_probabilities


def test_smoothing_by_hand():
    # cells (0,0)=1.0 (1,0)=0.0 (2,0)=0.0 and (0,1)=0.5, as (column, row)
    coords = np.array([[1, 1], [51, 1], [101, 1], [1, 51]])
    proba = np.array([1.0, 0.0, 0.0, 0.5])
    # Each is the mean over the cells with a patch in its 3 x 3 block, itself included.
    np.testing.assert_allclose(
        smooth_probabilities(proba, coords), [1.5 / 3, 1.5 / 4, 0.0 / 2, 1.5 / 3]
    )
    # A radius that covers the whole grid gives every patch the overall mean.
    np.testing.assert_allclose(smooth_probabilities(proba, coords, radius=2), [0.375] * 4)
    np.testing.assert_array_equal(smooth_probabilities(proba, coords, radius=0), proba)
    # predict_proba output: the last (IDC) column is used.
    two_columns = np.column_stack([1 - proba, proba])
    np.testing.assert_allclose(
        smooth_probabilities(two_columns, coords), smooth_probabilities(proba, coords)
    )


def test_smoothing_never_mixes_patients():
    coords = np.array([[1, 1], [51, 1], [1, 1], [51, 1]])  # two patients, same cells
    proba = np.array([1.0, 1.0, 0.0, 0.0])
    groups = np.array(["a", "a", "b", "b"])
    np.testing.assert_allclose(smooth_probabilities(proba, coords, groups), proba)
    # Order does not matter: each patch keeps its place in the output.
    order = np.array([3, 0, 2, 1])
    np.testing.assert_allclose(
        smooth_probabilities(proba[order], coords[order], groups[order]), proba[order]
    )


def test_smoothing_an_isolated_patch_keeps_its_value(patient):
    # Far from every other patch, a patch has only itself in its neighbourhood.
    coords = np.vstack([patient.coords, patient.coords.max(axis=0) + 500])
    proba = np.linspace(0, 1, len(coords))
    assert smooth_probabilities(proba, coords)[-1] == pytest.approx(proba[-1], abs=1e-12)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"radius": -1}, "radius"),
        ({"radius": 1.5}, "radius"),
        ({"radius": True}, "radius"),
        ({"patch_size": 0}, "patch_size"),
        ({"groups": [1, 2, 3]}, "groups has shape"),
    ],
)
def test_smoothing_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        smooth_probabilities([0.1, 0.2], [[1, 1], [51, 1]], **kwargs)


def test_smoothing_shape_mismatch():
    with pytest.raises(ValueError, match="proba has shape"):
        smooth_probabilities([0.1, 0.2, 0.3], [[1, 1], [51, 1]])


# ---------------------------------------------------------------- patient_table


def test_patient_table_by_hand():
    groups = ["a", "b", "a", "b", "a"]
    y = [1, 1, 0, 1, 0]
    proba = [0.9, 0.4, 0.6, 0.8, 0.2]
    rows = patient_table(groups, y, proba, threshold=0.5)
    assert [list(r) for r in rows] == [list(PATIENT_COLUMNS)] * 2
    a, b = rows
    # a: y 1 0 0, predicted 1 1 0.
    assert a["patient"] == "a" and a["n_patches"] == 3
    assert a["n_idc_true"] == 1 and a["n_idc_pred"] == 2
    assert a["idc_share_true"] == pytest.approx(1 / 3)
    assert a["idc_share_pred"] == pytest.approx(2 / 3)
    assert a["mean_proba"] == pytest.approx((0.9 + 0.6 + 0.2) / 3)
    assert a["accuracy"] == pytest.approx(2 / 3)
    assert a["sensitivity"] == pytest.approx(1.0) and a["specificity"] == pytest.approx(0.5)
    # b: y 1 1, predicted 0 1; no negative patch, so no specificity.
    assert (b["n_patches"], b["n_idc_true"], b["n_idc_pred"]) == (2, 2, 1)
    assert b["idc_share_true"] == 1.0 and b["idc_share_pred"] == pytest.approx(0.5)
    assert b["mean_proba"] == pytest.approx(0.6) and b["accuracy"] == pytest.approx(0.5)
    assert b["sensitivity"] == pytest.approx(0.5) and b["specificity"] is None
    # A lower threshold calls more patches IDC.
    assert patient_table(groups, y, proba, threshold=0.3)[1]["n_idc_pred"] == 2


def test_patient_table_adds_up_to_the_report():
    rng = np.random.default_rng(1)
    groups = rng.choice(["p1", "p2", "p3"], size=200)
    y = rng.integers(0, 2, size=200)
    proba = rng.random(200)
    rows = patient_table(groups, y, np.c_[1 - proba, proba], threshold=0.3)
    (tn, fp), (fn, tp) = evaluation_report(y, proba, threshold=0.3)["confusion_matrix"]
    assert sum(r["n_patches"] for r in rows) == 200
    assert sum(r["n_idc_true"] for r in rows) == tp + fn
    assert sum(r["n_idc_pred"] for r in rows) == tp + fp


def test_patient_table_shape_mismatch():
    with pytest.raises(ValueError, match="one value per patch"):
        patient_table(["a", "b"], [0, 1], [0.5])


def test_csv_and_markdown(tmp_path):
    rows = patient_table(["a", "a", "b"], [1, 0, 1], [0.9, 0.7, 0.2])
    text = to_csv(rows, tmp_path / "patients.csv")
    assert (tmp_path / "patients.csv").read_text() == text
    parsed = list(csv.DictReader(io.StringIO(text)))
    assert [r["patient"] for r in parsed] == ["a", "b"]
    assert parsed[0]["specificity"] == "0.000000" and parsed[1]["specificity"] == ""
    assert float(parsed[0]["mean_proba"]) == pytest.approx(0.8)
    md = to_markdown(rows, tmp_path / "patients.md").splitlines()
    assert md[0].startswith("| patient | n_patches |") and md[1].startswith("| --- | ---: |")
    assert md[3] == "| b | 1 | 1 | 0 | 1.000 | 0.000 | 0.200 | 0.000 | 0.000 | n/a |"
    assert to_csv([]).strip() == ",".join(PATIENT_COLUMNS)
    # NaN (e.g. a metric of evaluation_report) reads as undefined too, like None.
    nan_row = [{"patient": "c", "roc_auc": float("nan"), "n": np.int64(3)}]
    assert to_markdown(nan_row).splitlines()[2] == "| c | n/a | 3 |"
    assert to_csv(nan_row).splitlines()[1] == "c,,3"


# ------------------------------------------------------------------ plot_heatmap


def test_heatmap_png(tmp_path, patient):
    proba = np.clip(
        0.7 * patient.target + 0.3 * np.random.default_rng(0).random(len(patient.target)), 0, 1
    )
    out = plot_heatmap(patient.data, patient.coords, proba, patient.target, tmp_path / "h.png")
    assert out == tmp_path / "h.png"
    with Image.open(out) as image:
        image.load()
        three_panels = image.size
    assert three_panels[0] > 2 * three_panels[1]  # side by side, wider than tall
    two = plot_heatmap(
        patient.data, patient.coords, proba, None, tmp_path / "two.png", threshold=None
    )
    with Image.open(two) as image:
        assert image.size[0] < three_panels[0]


def test_real_patient_from_the_full_data(real_idc_root, tmp_path):
    from idcclf.datasets import load_idc

    bunch = load_idc(real_idc_root, patients=["8916"], cache=False)
    canvas = slide_image(bunch.data, bunch.coords)
    x0, y0 = bunch.coords.min(axis=0)
    for patch, (x, y) in zip(bunch.data, bunch.coords, strict=True):
        np.testing.assert_array_equal(canvas[y - y0 : y - y0 + 50, x - x0 : x - x0 + 50], patch)
    grid = probability_map(bunch.coords, bunch.target)
    assert np.nansum(grid) == bunch.target.sum()
    out = plot_heatmap(bunch.data, bunch.coords, bunch.target, bunch.target, tmp_path / "h.png")
    with Image.open(out) as image:
        image.load()
