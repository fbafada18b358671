#!/usr/bin/env bash
# Build the documentation (Sphinx, warnings are errors) into docs/_build/html and run its doctests.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export MPLBACKEND=Agg
.venv/bin/python -m sphinx -W --keep-going -q -b html docs docs/_build/html
.venv/bin/python -m sphinx -W --keep-going -q -b doctest docs docs/_build/doctest
echo "[docs] HTML in $(pwd)/docs/_build/html/index.html"
