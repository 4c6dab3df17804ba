#!/usr/bin/env bash
# Build the HTML documentation (API reference from the docstrings, a page per family with the
# committed benchmark figures) into docs/_build/html, offline, failing on any warning.
#
#   bash tools/docs.sh            # tools: pip install ".[docs]" (sphinx, pinned)
#
# From a checkout the in-tree package is used (PYTHONPATH=python): autodoc needs only the
# Python files, so the compiled modules need not be built.
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="python${PYTHONPATH:+:$PYTHONPATH}"
# -E: read every page again (the local extensions in docs/_ext are no tracked dependency, and
# a full build takes seconds).
python3 -m sphinx -W --keep-going -E -b html docs docs/_build/html "$@"
echo "docs: open docs/_build/html/index.html"
