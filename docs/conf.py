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


def setup(app):
    app.connect("autodoc-skip-member", _skip_member)
