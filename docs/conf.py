"""Sphinx configuration of the terapix-fw documentation.

Build: ``bash scripts/docs.sh`` (warnings are errors; HTML in ``docs/_build/html``).  The reference pages
are generated from the code by ``_ext/terapix_reference.py`` (tools' parameter declarations, hook
specifications, XML schemas); the API pages by autodoc from the numpydoc docstrings.
"""
import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "_ext"))
os.environ.setdefault("MPLBACKEND", "Agg")

project = "terapix-fw"
author = "the terapix-fw developers"
copyright = "2026, the terapix-fw developers"
release = "0.1.0"

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",  # numpydoc-style docstrings
    "sphinx.ext.doctest",   # the examples in the guide and the API docstrings run as doctests
    "terapix_reference",
]
napoleon_google_docstring = False
napoleon_numpy_docstring = True
napoleon_use_ivar = True  # Attributes sections as field lists: no second description of a #:-documented field
autodoc_member_order = "bysource"
autodoc_typehints = "description"
nitpicky = False
exclude_patterns = ["_build", "examples/**/build", "examples/**/*.egg-info"]
html_theme = "alabaster"
html_static_path: list[str] = []
html_theme_options = {"description": "TERAPIX-style survey processing in Python", "page_width": "1100px"}
