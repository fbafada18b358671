#!/usr/bin/env bash
# Install everything (scripts/setup.sh) and run the demo survey end to end in demo_work/ (SQLite RDBix).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export MPLBACKEND=Agg
WORK=${TERAPIX_DEMO_WORK:-demo_work}
mkdir -p "$WORK"
WORK=$(cd "$WORK" && pwd)
if [ ! -f "$WORK/raw/refcat.fits" ]; then
  .venv/bin/terapix simulate instructions/survey_demo.xml --outdir "$WORK/raw"
fi
.venv/bin/terapix run instructions/demo.xml --workdir "$WORK" -p RAW="$WORK/raw" "$@"
.venv/bin/terapix web build --db "sqlite:///$WORK/rdbix.sqlite" --out "$WORK/web"
echo "[demo] products in $WORK/, history in $WORK/history/, report: $WORK/web/index.html"
