#!/usr/bin/env bash
# Install everything (scripts/setup.sh) and run the whole test suite.  .ci/run calls this.
# MariaDB tests start the server themselves when it is not running; everything else uses SQLite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export MPLBACKEND=Agg
export TERAPIX_TOOL_SERVER=off  # `terapix tool` runs itself: no tool server started, none left behind
.venv/bin/ruff check .   # lint first: pyflakes faults fail the run (configuration in pyproject.toml)
set +e
.venv/bin/python -m pytest "$@"
status=$?
set -e
if [ "$status" -eq 5 ]; then
  echo "[test] pytest collected no tests: that is a failure" >&2
  exit 1
fi
exit "$status"
