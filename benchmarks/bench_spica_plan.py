"""Spica planning of a release over 100,000 registered exposures: 4 Deep fields (10 % of the exposures),
4 Wide areas of 8 x 8 deg cut into 1 deg^2 quanta (30 %, ~120 exposures per deg^2 over 5 filters) and a
Very Wide survey over 60 x 50 deg (60 %, ~20 per deg^2) that is not stacked but fills the astrometric
lists.  Every Deep and Wide stack is planned with its astrometric list (2.5 deg) and stack list.

Planning asks RDBix's sky index (HEALPix pixels of the cone, then the exact distance) for each cone.
Reference measured in the same run: the same plan's cone searches as a scan of the whole exposure table
(the table read once, then every row's distance computed for each cone, vectorised numpy), the way one
would do it without the index; its time includes the table read.  Both must give the same lists; the printed ratio is index time / scan time.

    python benchmarks/bench_spica_plan.py [--exposures 100000] [--db sqlite:///...]
"""
from __future__ import annotations

import argparse
import datetime as dt
import math
import tempfile
import time
from pathlib import Path

DEEP = [("D1", 36.4958, -4.4942), ("D2", 150.1192, 2.2058), ("D3", 214.8625, 52.6783), ("D4", 333.8804, -17.7325)]
WIDE = [("W1", 30.0, 38.0, -11.0, -3.0), ("W2", 130.0, 138.0, -6.0, 2.0), ("W3", 208.0, 221.0, 50.5, 58.5),
        ("W4", 329.0, 337.0, -3.0, 5.0)]
FILTERS = ["u.MP9301", "g.MP9401", "r.MP9601", "i.MP9701", "z.MP9801"]


def populate(url: str, n: int, seed: int = 1) -> None:
    import numpy as np
    from sqlalchemy import insert

    from terapix_fw.db import schema as S
    from terapix_fw.db.engine import connect
    from terapix_fw.db.ops import _healpix
    rng = np.random.default_rng(seed)
    ndeep, nwide = n // 10, 3 * n // 10
    rows = []
    for i in range(n):
        if i < ndeep:
            _, ra0, dec0 = DEEP[i % 4]
            ra = ra0 + rng.normal(0, 0.05) / math.cos(math.radians(dec0))
            dec = dec0 + rng.normal(0, 0.05)
            comp, runid = "D", "04BL0%d" % (1 + i % 6)
        elif i < ndeep + nwide:
            _, r0, r1, d0, d1 = WIDE[i % 4]
            dec = rng.uniform(d0, d1)
            ra = rng.uniform(r0, r1)
            comp, runid = "W", "04BL1%d" % (1 + i % 6)
        else:  # Very Wide: 60 x 50 deg around RA 180 (not stacked; in the astrometric lists of nothing here)
            ra = rng.uniform(150.0, 210.0)
            dec = math.degrees(math.asin(rng.uniform(math.sin(math.radians(-10.0)), math.sin(math.radians(40.0)))))
            comp, runid = "VW", "04BL2%d" % (1 + i % 6)
        rows.append(dict(filename=f"{1000000 + i}p.fits", filter=FILTERS[i % 5], ra=float(ra % 360), dec=float(dec),
                         survey_component=comp, runid=runid, qrunid=runid.replace("L", "Q"), exptime=600.0,
                         seeing=0.8, airmass=1.2, suggested_grade="A",
                         release_date=dt.datetime(2005, 1, 1) + dt.timedelta(days=i % 400)))
    pix = _healpix([r["ra"] for r in rows], [r["dec"] for r in rows])
    for r, p in zip(rows, pix):
        r["healpix"] = int(p)
    engine = connect(url)
    with engine.begin() as conn:
        for i in range(0, n, 10000):
            conn.execute(insert(S.exposures), rows[i:i + 10000])


def release_file(path: Path) -> Path:
    (path / "criteria.xml").write_text('<criteria name="bench"><grades>A B</grades></criteria>')
    deep = "".join(f'<field name="{n}" ra="{r}" dec="{d}"/>' for n, r, d in DEEP)
    areas = "".join(f'<area name="{n}" ra_min="{a}" ra_max="{b}" dec_min="{c}" dec_max="{d}"/>' for n, a, b, c, d in WIDE)
    (path / "release.xml").write_text(f'<release name="T0002" criteria="criteria.xml"><deep>{deep}</deep>'
                                      f'<wide>{areas}</wide><image-mode components=""/></release>')
    return path / "release.xml"


class ScanConn:
    """The reference: every cone answered by a distance computed for every exposure of the table."""

    def __init__(self, url):
        import numpy as np
        from sqlalchemy import select

        from terapix_fw.db import schema as S
        from terapix_fw.db.engine import connect
        from terapix_fw.spica.planning import _COLUMNS
        e = S.exposures
        with connect(url).connect() as conn:
            self.rows = [dict(r._mapping) for r in conn.execute(select(*[getattr(e.c, c) for c in _COLUMNS]))]
        self.ra = np.array([r["ra"] for r in self.rows])
        self.dec = np.array([r["dec"] for r in self.rows])

    def cone(self, ra, dec, radius, columns=None):
        import numpy as np

        from terapix_fw.db.query import angular_distance
        d = angular_distance(ra, dec, self.ra, self.dec)
        return [dict(self.rows[i], distance=float(d[i])) for i in np.nonzero(d <= radius)[0]]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--exposures", type=int, default=100_000)
    ap.add_argument("--db", default=None)
    args = ap.parse_args(argv)
    from terapix_fw.spica import planning
    from terapix_fw.spica.release import load_release
    tmp = Path(tempfile.mkdtemp(prefix="bench_spica_"))
    url = args.db or f"sqlite:///{tmp / 'rdbix.sqlite'}"
    t0 = time.perf_counter()
    populate(url, args.exposures)
    print(f"registered {args.exposures} exposures in {time.perf_counter() - t0:.1f} s ({url})")
    spec = load_release(release_file(tmp))
    from terapix_fw.spica.selection import select_exposures
    from terapix_fw.spica.criteria import load_criteria
    t0 = time.perf_counter()
    selected = set(select_exposures(url, load_criteria(spec.criteria_path), record=False).filenames)
    t_select = time.perf_counter() - t0

    t0 = time.perf_counter()
    plan = planning.plan_release(url, spec, selected)
    t_index = time.perf_counter() - t0

    original = planning.cone_rows
    try:
        t0 = time.perf_counter()  # the reference reads the table once, then scans it for every cone
        scan = ScanConn(url)
        planning.cone_rows = lambda conn, ra, dec, radius, columns=None: scan.cone(ra, dec, radius)
        ref = planning.plan_release(url, spec, selected)
        t_scan = time.perf_counter() - t0
    finally:
        planning.cone_rows = original
    same = [(j.name, j.stack, j.astrometric) for j in plan.jobs] == [(j.name, j.stack, j.astrometric) for j in ref.jobs]
    t0 = time.perf_counter()
    planning.record_plan(url, plan)
    t_record = time.perf_counter() - t0
    nast = sum(len(j.astrometric) for j in plan.stacks())
    print(f"selection of {args.exposures} exposures: {t_select:.2f} s ({len(selected)} selected)")
    print(f"plan: {len(plan.stacks())} stacks in {len(plan.fields)} fields, {sum(len(j.stack) for j in plan.jobs)} "
          f"stack-list entries, {nast} astrometric-list entries")
    print(f"planning through the sky index: {t_index:.2f} s; reference (table scan per cone): {t_scan:.2f} s; "
          f"ratio index/scan {t_index / t_scan:.2f}; identical lists: {same}")
    print(f"recording the plan (releases, stacks, stack_images, spica_jobs): {t_record:.2f} s")
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
