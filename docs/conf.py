"""Sphinx configuration of the airflow-provider-wamm documentation (Markdown pages via MyST).

Build: ``sphinx-build -W --keep-going -q -b html docs docs/_build/html`` (``make docs``).
The API reference is generated from the package's docstrings (reST field lists) with autodoc; the Graph
error tables are rendered from the provider's error classifier by the local ``wamm_errors`` extension
(``docs/_ext``), so they always match the code.
"""

from __future__ import annotations

import importlib.util
import os
import pathlib
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "docs" / "_ext"))
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
    "sphinx.ext.viewcode",
    "myst_parser",
    "wamm_errors",
]

source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
root_doc = "index"
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store"]

# MyST: ``:::`` fences for directives, definition lists, and anchors for headings (links like page.md#id).
myst_enable_extensions = ["colon_fence", "deflist"]
myst_heading_anchors = 3

# autodoc, one section per module in api.md, members in source order. No napoleon: the docstrings use
# reST field lists, and napoleon would read an attribute docstring such as "Permanent for this
# recipient: record it" as "type: description". ``ignore-module-all``: every public, documented name
# *defined* in a module is listed, whether or not ``__all__`` names it, and names a package merely
# re-exports are not documented twice.
autodoc_default_options = {
    "members": True,
    "show-inheritance": True,
    "member-order": "bysource",
    "ignore-module-all": True,
}
autodoc_typehints = "signature"
autodoc_preserve_defaults = True
autoclass_content = "class"

html_title = f"airflow-provider-wamm {release}"
html_theme = "furo" if importlib.util.find_spec("furo") else "alabaster"
