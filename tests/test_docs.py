"""The Sphinx documentation builds with warnings as errors and lists the whole public API."""

import html
import importlib
import inspect
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("sphinx", reason="sphinx is not installed (pip install -e '.[test]')")
pytest.importorskip("numpydoc", reason="numpydoc is not installed (pip install -e '.[test]')")
pytest.importorskip("myst_parser", reason="myst-parser is not installed (pip install -e '.[test]')")

import idcclf  # noqa: E402

DOCS = Path(__file__).resolve().parents[1] / "docs"
PUBLIC_MODULES = [
    "augment",
    "datasets",
    "distributed",
    "estimator",
    "metrics",
    "model",
    "model_selection",
    "pipelines",
    "plots",
    "pretrained",
    "slides",
    "splits",
    "stain",
    "studies",
]
GUIDES = [
    "estimator",
    "loaders",
    "studies",
    "evaluation",
    "benchmarks",
    "benchmarks_training",
    "architecture",
]


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    out = tmp_path_factory.mktemp("docs")
    done = subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html"]
        + ["-d", str(out / "doctrees"), str(DOCS), str(out / "html")],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    return out / "html"


def public_functions_and_classes(module):
    """Its ``__all__`` (else its own non-underscore names), functions and classes only."""
    names = getattr(module, "__all__", None)
    if names is None:
        names = [
            n
            for n, obj in vars(module).items()
            if not n.startswith("_") and getattr(obj, "__module__", "").startswith(module.__name__)
        ]
    return [
        n
        for n in names
        if inspect.isfunction(getattr(module, n)) or inspect.isclass(getattr(module, n))
    ]


def test_api_page_lists_every_public_name(built):
    page = (built / "api.html").read_text(encoding="utf-8")
    text = html.unescape(re.sub(r"<[^>]+>", "", page))
    missing = []
    for name in idcclf.__all__:
        target = f"generated/idcclf.{name}.html"
        if f'href="{target}' not in page or not (built / target).is_file() or name not in text:
            missing.append(f"idcclf.{name}")
    for mod in PUBLIC_MODULES:
        module = importlib.import_module(f"idcclf.{mod}")
        for name in public_functions_and_classes(module):
            target = f"generated/idcclf.{mod}.{name}.html"
            if f'href="{target}' not in page or not (built / target).is_file():
                missing.append(f"idcclf.{mod}.{name}")
    assert not missing, f"not in docs/api.rst: {missing}"


def test_object_pages_carry_the_numpydoc_sections(built):
    page = (built / "generated" / "idcclf.load_idc.html").read_text(encoding="utf-8")
    assert "Parameters" in page and "Returns" in page and "size_policy" in page
    page = (built / "generated" / "idcclf.estimator.IDCClassifier.html").read_text("utf-8")
    assert "Attributes" in page and "n_features_in_" in page and "predict_proba" in page


def test_guides_are_pages(built):
    index = (built / "index.html").read_text(encoding="utf-8")
    for guide in GUIDES + ["api"]:
        assert (built / f"{guide}.html").is_file()
        assert f'href="{guide}.html"' in index
    for guide in GUIDES:  # each Markdown guide rendered, not included as raw text
        title = (DOCS / f"{guide}.md").read_text(encoding="utf-8").splitlines()[0].lstrip("# ")
        page = html.unescape((built / f"{guide}.html").read_text(encoding="utf-8"))
        assert f"<h1>{title}" in page, guide
