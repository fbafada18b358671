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
# what else arrives with the survey: a transfer cut short (quarantined) and a copy under another name
# (a duplicate, reported and quarantined); ingestion registers the 25 exposures and refuses these two
mkdir -p "$WORK/arrivals"
if [ ! -f "$WORK/arrivals/700026p.fits" ]; then
  head -c 5000000 "$WORK/raw/700002p.fits" > "$WORK/arrivals/700026p.fits"
  cp "$WORK/raw/700005p.fits" "$WORK/arrivals/700005p_resent.fits"
fi
.venv/bin/terapix run instructions/demo.xml --workdir "$WORK" -p RAW="$WORK/raw" -p ARRIVALS="$WORK/arrivals" "$@"
.venv/bin/terapix web build --db "sqlite:///$WORK/rdbix.sqlite" --out "$WORK/web"
echo "[demo] products in $WORK/, history in $WORK/history/, report: $WORK/web/index.html"
