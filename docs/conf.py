"""Sphinx configuration for matkern's documentation (built by ``bash tools/docs.sh``).

Offline by design: no intersphinx, no MathJax (the pages use no math markup, so no page
loads it), the bundled alabaster theme with no external fonts or buttons.
"""

import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(_HERE, "_ext"))
# A checkout without an installed matkern: the in-tree package (tools/docs.sh also sets
# PYTHONPATH=python). autodoc needs only the Python files; the compiled modules are optional.
sys.path.insert(1, os.path.join(os.path.dirname(_HERE), "python"))

import matkern  # noqa: E402

project = "matkern"
author = "the matkern authors"
copyright = "the matkern authors, BSD-3-Clause"
version = release = matkern.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "benchtables",  # docs/_ext: tables from bench/results/*.json, API coverage check
    "plaintext_docstrings",  # docs/_ext: plain-text docstring conventions read as reST
    "sphinx.ext.doctest",  # the pages' examples: python -m sphinx -b doctest (needs the CPU module)
]

exclude_patterns = ["_build", "notes"]
root_doc = "index"
nitpicky = False

# NumPy-style docstrings (Parameters, Returns, Example sections).
napoleon_google_docstring = False
napoleon_numpy_docstring = True
napoleon_use_rtype = False
napoleon_use_param = False  # types as plain text: "shape (n, k)" is not a cross-reference
napoleon_use_keyword = False
napoleon_use_ivar = True  # Attributes as fields: autodoc documents the properties themselves
# `python -m sphinx -b doctest docs DIR` runs the pages' `.. doctest::` examples only (the
# docstrings' examples are for help() and pytest --doctest-modules style reading).
doctest_test_doctest_blocks = ""
autodoc_member_order = "bysource"
autodoc_typehints = "none"  # the docstrings say shapes and dtypes
autodoc_default_options = {"members": True, "undoc-members": False}

html_theme = "alabaster"
html_theme_options = {
    "description": "Fast C++/CUDA kernels for sparse, quantized and randomized linear algebra",
    "show_powered_by": False,
    "fixed_sidebar": False,
}
html_static_path = []
html_show_sourcelink = False
html_copy_source = False
html_last_updated_fmt = None

# Public modules and names whose API pages are not written yet (the build warns about any
# other public name without an autofunction/autoclass/autodata entry: see DEVELOPING.md).
matkern_api_skip = ["matkern.reference"]
