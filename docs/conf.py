"""Sphinx configuration of the idcclf documentation (``make -C docs html``)."""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

# autodoc imports TensorFlow; its C++ start-up notices would bury Sphinx's warnings.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# Document the sources next to this folder, not whichever idcclf happens to be installed.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import idcclf  # noqa: E402 (after the path insertion above)

project = "idcclf"
author = "idcclf contributors"
copyright = "idcclf contributors"
version = release = idcclf.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "numpydoc",
    "myst_parser",
]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
templates_path = ["_templates"]
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store"]

# One page per public function and class, written into generated/ at build time.
autosummary_generate = True
autodoc_typehints = "none"  # the numpydoc "Parameters" sections already state the types
autodoc_member_order = "bysource"

# The docstrings follow numpydoc; members are listed by the class template instead of
# numpydoc's tables, which would link to undocumented inherited Keras/scikeras methods.
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False
nitpicky = False

# The guides are Markdown (docs/*.md); headings get anchors for in-page links.
myst_heading_anchors = 3
myst_enable_extensions = ["colon_fence"]

html_theme = "alabaster"
html_title = f"idcclf {release}"
html_static_path: list[str] = []


# scikit-learn generates set_fit_request & co. on every estimator for metadata routing;
# they are documented by scikit-learn and their docstrings point into its glossary.
_METADATA_REQUEST = re.compile(r"set_\w+_request")


def _skip_member(app, what, name, obj, skip, options):
    return True if _METADATA_REQUEST.fullmatch(name) else skip


# Known defects of docstrings in src/, each reported for fixing there. The build shows
# these docstrings as their authors meant them; an entry does nothing once its docstring
# is fixed, and can then be deleted.
#   src/idcclf/estimator.py: IDCClassifier's "n_features_in_ : int" attribute sits under
#   "Notes" instead of "Attributes" (docutils: Unknown target name "n_features_in").
_MISPLACED_ATTRIBUTES = {"idcclf.estimator.IDCClassifier": "n_features_in_ : int"}


def _fix_known_docstrings(app, what, name, obj, options, lines):
    entry = _MISPLACED_ATTRIBUTES.get(f"{getattr(obj, '__module__', '')}.{name.split('.')[-1]}")
    if entry is None or entry not in lines or "Attributes" not in lines:
        return
    start = lines.index(entry)
    end = start + 1
    while end < len(lines) and lines[end].startswith(" "):
        end += 1
    if start < lines.index("Attributes"):
        return  # already under Attributes
    moved = lines[start:end]
    del lines[start:end]
    at = lines.index("Attributes") + 2
    while at < len(lines) and lines[at].strip():
        at += 1
    lines[at:at] = moved


def setup(app):
    app.connect("autodoc-skip-member", _skip_member)
    # Before numpydoc (priority 500) turns the sections into reST.
    app.connect("autodoc-process-docstring", _fix_known_docstrings, priority=100)
