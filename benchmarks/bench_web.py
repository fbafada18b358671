"""Benchmark: the public report of a survey of N exposures (default 10,000), built and opened in a browser.

An SQLite RDBix is filled through RDBix documents with N exposures (filters, run ids, dates, positions,
grades, quality metrics, stored copies on 4 nodes), then ``terapix web build`` renders the whole site
(one page per exposure included).  Printed:

* build time of the whole site and of the exposures page alone, pages written;
* page weight of the exposures page: HTML + its data script (the rows as JSON), raw and gzip-compressed;
* the reference, measured in the same run: the same rows rendered server-side as one HTML table (what
  the exposures page was before the table moved to the browser), its render time and weight, and the
  ratios;
* with Chromium installed: time for the browser to load the exposures page and show the first page of
  rows, to apply a filter and a cone search to the N rows, and to make the CSV of the whole result.

    python benchmarks/bench_web.py               # 10,000 exposures
    python benchmarks/bench_web.py --n 2000 --no-browser
"""
from __future__ import annotations

import argparse
import datetime as dt
import gzip
import math
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

FILTERS = ("u.MP9301", "g.MP9401", "r.MP9601", "i.MP9701", "z.MP9801")


def fill(url: str, n: int, seed: int = 1) -> None:
    from terapix_fw.db import Document, connect, write_document

    rng = random.Random(seed)
    start_date = dt.datetime(2003, 6, 1, 8, 0, 0)
    engine = connect(url)
    for start in range(0, n, 1000):
        doc = Document()
        for i in range(start, min(n, start + 1000)):
            name = f"{700000 + i}p.fits"
            date = (start_date + dt.timedelta(hours=3 * i)).isoformat()
            doc.add("exposure", filename=name, object=f"W{i % 4 + 1}", filter=FILTERS[i % 5], qrunid=f"0{3 + i // 4000}AQ{i % 12:02d}",
                    exptime=float(rng.choice((60, 180, 300, 600))), date_obs=date, ra=rng.uniform(0, 360),
                    dec=math.degrees(math.asin(rng.uniform(-0.5, 0.9))), seeing=rng.uniform(0.5, 1.3),
                    airmass=rng.uniform(1.0, 1.8), survey_component=("D", "W", "VW", "PI")[i % 4],
                    storage=[{"node": f"pix{i % 4}", "path": f"/data/pix{i % 4}/{name}", "size": 700_000_000}])
            doc.add("quality", exposure=name, suggested_grade=rng.choice("AABBC"),
                    metrics=[{"ccd": 0, "name": "fwhm_arcsec", "value": rng.uniform(0.5, 1.3)},
                             {"ccd": 0, "name": "nstars", "value": float(rng.randint(100, 2000))}])
            if i % 7 == 0:
                doc.add("grade", exposure=name, grade=rng.choice("ABCD"), author="ctl")
        write_document(engine, doc)


REFERENCE = """<table class="data"><thead><tr><th>Image</th><th>Object</th><th>Run id</th><th>Filter</th>
<th>Exp. time (s)</th><th>Seeing (arcsec)</th><th>Airmass</th><th>Observed (UTC)</th><th>RA (deg)</th><th>Dec (deg)</th>
<th>Input QA</th><th>Processed</th><th>Output QA</th><th>Delivered</th><th>Node</th><th>Grade</th><th>Survey</th></tr></thead><tbody>
{% for e in rows %}<tr><td><a href="{{ e.href }}">{{ e.filename }}</a></td><td>{{ e.object or "-" }}</td><td>{{ e.runid or "-" }}</td>
<td>{{ e.filter or "-" }}</td><td class="num">{{ e.exptime | num(4) }}</td><td class="num">{{ e.seeing | num(3) }}</td>
<td class="num">{{ e.airmass | num(3) }}</td><td>{{ e.date_obs or "-" }}</td><td class="num">{{ e.ra | num(7) }}</td>
<td class="num">{{ e.dec | num(7) }}</td><td>{{ e.qa_in }}</td><td>{{ e.processed }}</td><td>{{ e.qa_out }}</td>
<td>{{ e.delivered }}</td><td>{{ e.node }}</td><td>{{ e.grade or "-" }}</td><td>{{ e.component or "-" }}</td></tr>
{% endfor %}</tbody></table>"""


def browser_timings(site: Path, n: int) -> dict[str, float] | None:
    chromium, driver_path = "/usr/bin/chromium", "/usr/bin/chromedriver"
    if not (Path(chromium).exists() and Path(driver_path).exists()):
        return None
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="bench-web-profile-")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--window-size=1400,900", f"--user-data-dir={profile}"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    try:
        t0 = time.perf_counter()
        driver.get((site / "exposures.html").as_uri())
        deadline = time.monotonic() + 120
        while not driver.execute_script("return !!document.querySelector('p.table-info')"):
            if time.monotonic() > deadline:
                raise RuntimeError("the exposures table did not appear in 120 s")
            time.sleep(0.01)
        load = time.perf_counter() - t0
        filt = driver.execute_script("""
            const t = document.querySelector('#exposures-table').datatable, f = document.getElementById('exposure-filters');
            const a = performance.now(); f.elements['filter'].value = 'r.MP9601'; t.apply(); const b = performance.now();
            f.elements['ra'].value = '150'; f.elements['dec'].value = '2'; f.elements['radius'].value = '10'; t.apply();
            const c = performance.now(); f.elements['filter'].value = ''; f.elements['ra'].value = ''; t.apply();
            const d0 = performance.now(); const csv = t.csv(); const d1 = performance.now();
            return [b - a, c - b, d1 - d0, csv.split('\\n').length - 2];""")
        return {"load": load, "filter_ms": filt[0], "cone_ms": filt[1], "csv_ms": filt[2], "csv_rows": filt[3]}
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=10_000, help="exposures (default 10000)")
    ap.add_argument("--no-browser", action="store_true", help="skip the Chromium timings")
    ap.add_argument("--keep", default=None, help="build the site in this folder and keep it")
    args = ap.parse_args(argv)

    from terapix_fw.db.engine import dispose_all
    from terapix_fw.web import build_site, collect_pages
    from terapix_fw.web.site import default_web_dir, make_environment

    work = Path(args.keep or tempfile.mkdtemp(prefix="bench-web-"))
    work.mkdir(parents=True, exist_ok=True)
    url = f"sqlite:///{work / 'rdbix.sqlite'}"
    if not (work / "rdbix.sqlite").exists():
        t = time.perf_counter()
        fill(url, args.n)
        print(f"RDBix filled with {args.n} exposures in {time.perf_counter() - t:.1f} s")
    site = work / "site"
    shutil.rmtree(site, ignore_errors=True)
    t = time.perf_counter()
    written = build_site(url, site)
    full = time.perf_counter() - t
    pages = [p for p in collect_pages() if p.name == "exposures"]
    t = time.perf_counter()
    build_site(url, work / "site-exposures", pages=pages)
    page_only = time.perf_counter() - t

    html = (site / "exposures.html").read_bytes()
    data = (site / "data" / "exposures.js").read_bytes()
    new_raw, new_gz = len(html) + len(data), len(gzip.compress(html)) + len(gzip.compress(data))

    # reference: the same rows as one server-side HTML table
    from terapix_fw.web.site import slug
    from terapix_fw.web.survey import exposure_table

    t = time.perf_counter()
    rows = exposure_table(url)["rows"]
    for r in rows:
        r["href"] = f"exposure/{slug(r['id'], r['filename'])}.html"
    env = make_environment([default_web_dir() / "templates"])
    ref_html = env.from_string(REFERENCE).render(rows=rows).encode()
    ref_time = time.perf_counter() - t
    ref_raw, ref_gz = len(ref_html), len(gzip.compress(ref_html))

    print(f"site: {len(written)} pages in {full:.1f} s ({1000 * full / max(len(written), 1):.2f} ms a page); "
          f"exposures page alone {page_only:.2f} s")
    print(f"exposures page weight: {new_raw / 1e6:.2f} MB ({new_gz / 1e6:.2f} MB gzip) for {len(rows)} rows; "
          f"reference server-side table {ref_raw / 1e6:.2f} MB ({ref_gz / 1e6:.2f} MB gzip) rendered in {ref_time:.2f} s")
    print(f"ratios (this / reference): weight {new_raw / ref_raw:.2f}, gzip weight {new_gz / ref_gz:.2f}, "
          f"exposures page time {page_only / ref_time:.2f}")
    if not args.no_browser:
        timing = browser_timings(site, len(rows))
        if timing is None:
            print("browser: chromium not installed, skipped")
        else:
            print(f"browser: exposures page usable in {timing['load']:.2f} s; filter on {len(rows)} rows "
                  f"{timing['filter_ms']:.1f} ms, cone search {timing['cone_ms']:.1f} ms, CSV of "
                  f"{timing['csv_rows']} rows {timing['csv_ms']:.1f} ms")
    dispose_all()
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
