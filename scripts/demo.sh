#!/usr/bin/env bash
# Install everything (scripts/setup.sh), simulate the demo survey and make its release T0001 in demo_work/
# (SQLite RDBix): ingestion with QualityFITS-in (step one), then Spica: selection, planning, generation of
# one instruction file and one command file per job, the image-by-image and release modes, grades, the
# release manifest, and the web pages.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export MPLBACKEND=Agg
export TERAPIX_TOOL_SERVER=off  # `terapix tool` runs itself: no tool server started, none left behind
WORK=${TERAPIX_DEMO_WORK:-demo_work}
mkdir -p "$WORK"
WORK=$(cd "$WORK" && pwd)
DB="sqlite:///$WORK/rdbix.sqlite"
T=.venv/bin/terapix
START=$(date +%s)
if [ ! -f "$WORK/raw/refcat.fits" ]; then
  $T simulate instructions/survey_demo.xml --outdir "$WORK/raw"
fi
# what else arrives with the survey: a transfer cut short (quarantined) and a copy under another name
# (a duplicate, reported and quarantined); ingestion registers the 27 exposures and refuses these two
mkdir -p "$WORK/arrivals"
if [ ! -f "$WORK/arrivals/700099p.fits" ]; then
  head -c 5000000 "$WORK/raw/700002p.fits" > "$WORK/arrivals/700099p.fits"
  cp "$WORK/raw/700005p.fits" "$WORK/arrivals/700005p_resent.fits"
fi
echo "[demo] step one: ingestion and QualityFITS-in"
$T run instructions/demo_ingest.xml --workdir "$WORK" --db "$DB" -p RAW="$WORK/raw" -p ARRIVALS="$WORK/arrivals" "$@"
echo "[demo] Spica: selection and planning of release T0001"
$T spica plan instructions/demo_release.xml --db "$DB"
$T spica generate instructions/demo_release.xml --workdir "$WORK" --db "$DB" --refcat "$WORK/raw/refcat.fits"
echo "[demo] Spica: image-by-image and release modes at the same time on 2 worker slots, by priority"
# the release file's priorities are Deep 10, Wide 5, image-by-image 1; the operator moves the PI exposure
# up to 8, so that it runs beside the Deep stacks instead of after the Wide ones
$T spica run instructions/demo_release.xml --workdir "$WORK" --db "$DB" --parallel 2 --priority image=8 --quiet || true
$T spica status --release T0001 --db "$DB"
.venv/bin/python -c "
import sys
from terapix_fw.spica.status import job_table
jobs = [j for j in job_table(sys.argv[1], 'T0001') if j['start'] and j['end']]
t0 = min(j['start'] for j in jobs)
print('[demo] when each job ran (s after the first start):')
for j in sorted(jobs, key=lambda j: j['start']):
    print(f\"  {j['name']:<40} {j['mode']:<8} {(j['start'] - t0).total_seconds():6.0f} - {(j['end'] - t0).total_seconds():6.0f}\")
" "$DB"
echo "[demo] the control team grades the stacks (the demo accepts every finished one)"
for stack in $(.venv/bin/python -c "
import sys
from terapix_fw.spica.status import job_table
print(' '.join(j['name'] for j in job_table(sys.argv[1], 'T0001') if j['kind'] in ('stack', 'image') and j['status'] == 'done'))
" "$DB"); do
  $T spica grade "$stack" A --author demo --db "$DB"
done
$T spica release instructions/demo_release.xml --workdir "$WORK" --db "$DB"
$T web build --db "$DB" --out "$WORK/web"
echo "[demo] done in $(( $(date +%s) - START )) s"
echo "[demo] release T0001: $WORK/release/T0001/ (manifest $WORK/release/T0001/T0001_manifest.xml)"
echo "[demo] instruction and command files: $WORK/spica/T0001/; history: $WORK/history/"
echo "[demo] web pages: $WORK/web/index.html"
