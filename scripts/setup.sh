#!/usr/bin/env bash
# Install everything terapix-fw needs on a fresh Debian/Ubuntu machine with Python 3.11:
#   - system packages: the MariaDB client library and pkg-config (mysqlclient builds from source),
#     Debian's chromium and chromium-driver (browser tests of the web pages), and
#     the AstrOmatic programs used as references (source-extractor, scamp, swarp, psfex, weightwatcher, stiff);
#   - a virtual environment in .venv with the core and every built-in plugin installed (editable).
# Safe to run again: it skips what is already done.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null 2>&1 || PY=python3

APT_PACKAGES="libmariadb-dev pkg-config source-extractor scamp swarp psfex weightwatcher stiff chromium chromium-driver"
missing=""
for pkg in $APT_PACKAGES; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing="$missing $pkg"
done
if [ -n "$missing" ]; then
  if command -v apt-get >/dev/null 2>&1; then
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    echo "[setup] installing system packages:$missing"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $missing >/dev/null
  else
    echo "[setup] warning: no apt-get; install$missing yourself (mysqlclient needs the MariaDB client library)" >&2
  fi
fi

if [ ! -x .venv/bin/python ]; then
  echo "[setup] creating .venv with $($PY --version)"
  "$PY" -m venv .venv
fi
PLUGINS=$(ls -d plugins/*/ | sed 's#/$##')
STAMP=.venv/.terapix-install-stamp
WANT=$(cat pyproject.toml setup.py plugins/*/pyproject.toml testkit/pyproject.toml | sha256sum | cut -d' ' -f1)
if [ ! -f "$STAMP" ] || [ "$(cat "$STAMP")" != "$WANT" ]; then
  echo "[setup] installing terapix-fw and plugins: $(echo $PLUGINS | tr '\n' ' ')"
  LOG=.venv/pip-install.log
  args=(-e "$ROOT[test]")
  for p in $PLUGINS; do args+=(-e "$ROOT/$p"); done
  args+=(-e "$ROOT/testkit[galsim]")   # test data made independently of the framework (tests, benchmarks)
  if ! { .venv/bin/python -m pip install --upgrade pip "setuptools>=77" wheel &&
         .venv/bin/python -m pip install "${args[@]}"; } > "$LOG" 2>&1; then
    grep -v "^WARNING: Location" "$LOG" | tail -40 >&2
    echo "[setup] pip install failed; full log in $LOG" >&2
    exit 1
  fi
  .venv/bin/python -c "import terapix_fw, MySQLdb, sep, numba, distributed"
  echo "$WANT" > "$STAMP"
fi
echo "[setup] ready: $ROOT/.venv ($(.venv/bin/terapix plugins 2>/dev/null | wc -l) tools)"
