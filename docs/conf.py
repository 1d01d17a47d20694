"""Sphinx configuration of the airflow-provider-wamm documentation (Markdown pages via MyST).

Build: ``sphinx-build -W --keep-going -q -b html docs docs/_build/html`` (``make docs``).
The API reference is generated from the package's docstrings with autodoc and napoleon.
"""

from __future__ import annotations

import importlib.util
import os
import pathlib
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
# autodoc imports Airflow, which writes a default config into AIRFLOW_HOME: keep that out of ~/airflow.
os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="wamm-docs-airflow-home-"))
os.environ.setdefault("AIRFLOW__LOGGING__LOGGING_LEVEL", "WARNING")

from airflow_provider_wamm import __version__  # noqa: E402

project = "airflow-provider-wamm"
author = "airflow-provider-wamm contributors"
copyright = "airflow-provider-wamm contributors"
version = __version__
release = __version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.viewcode",
    "myst_parser",
]

source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
root_doc = "index"
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store"]

# MyST: ``:::`` fences for directives, definition lists, and anchors for headings (links like page.md#id).
myst_enable_extensions = ["colon_fence", "deflist"]
myst_heading_anchors = 3

# autodoc + napoleon: one section per package in api.md; members in source order.
autodoc_default_options = {
    "members": True,
    "show-inheritance": True,
    "member-order": "bysource",
}
autodoc_typehints = "signature"
autodoc_preserve_defaults = True
autoclass_content = "class"
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_rtype = False

html_title = f"airflow-provider-wamm {release}"
html_theme = "furo" if importlib.util.find_spec("furo") else "alabaster"
