"""tools/make_sample.py: the sample is built aside and replaces the previous one whole."""

import importlib.util
from pathlib import Path

import pytest
from _trees import make_sample_tree

TOOL = Path(__file__).resolve().parents[1] / "tools" / "make_sample.py"


@pytest.fixture(scope="module")
def make_sample():
    spec = importlib.util.spec_from_file_location("make_sample", TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def roots(tmp_path):
    """Two roots of real patches: three patients each, none in both."""
    complete = make_sample_tree(tmp_path / "complete", n_patients=6, per_class=4)
    partial = tmp_path / "partial"
    partial.mkdir()
    for patient in sorted(p.name for p in complete.iterdir())[3:]:
        (complete / patient).rename(partial / patient)
    return {"complete": complete, "partial": partial}


def run(make_sample, roots, dest, *extra):
    argv = ["--complete", str(roots["complete"]), "--partial", str(roots["partial"])]
    argv += ["--dest", str(dest), "--n-complete", "2", "--n-partial", "2"]
    argv += ["--per-patient", "5", "--min-per-class", "1", "--max-odd", "1", *extra]
    return make_sample.main(argv)


def tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_builds_byte_identical_sample(make_sample, roots, tmp_path):
    dest = tmp_path / "sample"
    assert run(make_sample, roots, dest) == 0
    patients = sorted(p.name for p in dest.iterdir() if p.is_dir())
    assert len(patients) == 4
    for patient in patients:
        pngs = sorted(dest.glob(f"{patient}/*/*.png"))
        assert len(pngs) == 5
        root = roots["complete"] if (roots["complete"] / patient).is_dir() else roots["partial"]
        for png in pngs:
            assert png.read_bytes() == (root / png.relative_to(dest)).read_bytes()
    assert "# Embedded IDC sample" in (dest / "README.md").read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["complete", "partial", "sample"]


def test_rebuild_replaces_previous_sample(make_sample, roots, tmp_path):
    dest = tmp_path / "sample"
    (dest / "99999" / "0").mkdir(parents=True)
    (dest / "99999" / "0" / "old.png").write_bytes(b"old")
    assert run(make_sample, roots, dest) == 0
    assert not (dest / "99999").exists()
    assert len(list(dest.glob("*/*/*.png"))) == 20


def test_failure_leaves_previous_sample(make_sample, roots, tmp_path, monkeypatch, capsys):
    dest = tmp_path / "sample"
    assert run(make_sample, roots, dest) == 0
    before = tree(dest)
    monkeypatch.setattr(make_sample, "HARD_LIMIT_BYTES", 1)
    assert run(make_sample, roots, dest, "--seed", "1") == 1
    assert "sample too big" in capsys.readouterr().err
    assert tree(dest) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["complete", "partial", "sample"]


def test_refuses_a_folder_that_is_not_a_sample(make_sample, roots, tmp_path, capsys):
    dest = tmp_path / "data"
    (dest / "pretrained").mkdir(parents=True)
    (dest / "pretrained" / "model.keras").write_bytes(b"weights")
    assert run(make_sample, roots, dest) == 1
    assert "pretrained" in capsys.readouterr().err
    assert tree(dest) == {"pretrained/model.keras": b"weights"}
