"""``terapix web build``: static pages rendered from a small RDBix database.

The database is filled through RDBix's own documents (what the recorder writes during a run): one run
with a successful and a failed step, exposures with grades and quality metrics (one with a hostile
name), products with provenance, transfers and a plugin record.
"""
from __future__ import annotations

import re
import types
from pathlib import Path

import pytest

from terapix_testing.rdbix import _mariadb_session_database, db_url, mariadb_server  # noqa: F401  (fixtures)
from terapix_fw.hookspecs import hookimpl

# RDBix keeps the last path component of a file name, so the hostile name has no "/"
EVIL = '<svg onload=alert("x")>e9.fits'
EVIL_OBJECT = '"><img src=x onerror=alert(1)>'


@pytest.fixture
def db(tmp_path, db_url):  # noqa: F811 - the fixture imported above
    """The test database, on each back end (the pages must not depend on SQLite's leniency)."""
    from terapix_fw.db import Document, connect, write_document

    url = db_url
    engine = connect(url)
    log = tmp_path / "work" / "logs" / "detect" / "2.log"
    log.parent.mkdir(parents=True)
    (tmp_path / "work" / ".terapix" / "state").mkdir(parents=True)  # a work directory the runner made
    secret = tmp_path / "secret.key"  # outside every work directory: never published
    secret.write_text("PRIVATE KEY")
    log.write_text("ERROR failed: ToolError: image <b>corrupt</b>\n")
    raw = [str(tmp_path / "raw" / n) for n in ("e1.fits", "e2.fits")]
    cat = str(tmp_path / "work" / "e1.cat")
    docs = [
        Document().add("run_start", run_id="r1", name="T0007 release", mode="pipeline", host="node1",
                       user="ops", start=1_700_000_000.0, workdir=str(tmp_path / "work"),
                       parameters={"FIELD": "D1"}),
        Document().add("step_start", run_id="r1", step="detect", tool="sextractor", tool_version="2.28",
                       fanout="file", config={"DETECT_THRESH": "3.0"}, non_defaults={"DETECT_THRESH": "3.0"},
                       start=1_700_000_001.0),
        Document().add("unit", run_id="r1", step="detect", unit="1", inputs=raw[:1], status="done",
                       host="node1", start=1_700_000_001.0, end=1_700_000_011.0),
        Document().add("unit", run_id="r1", step="detect", unit="2", inputs=raw[1:], status="failed",
                       host="node2", start=1_700_000_001.0, end=1_700_000_002.0,
                       error="ToolError: e2.fits[3]: <NAXIS> missing", log_path=str(log)),
        Document().add("unit", run_id="r1", step="detect", unit="3", status="failed", error="forged",
                       log_path=str(secret)),
        Document().add("product", run_id="r1", step="detect", unit="1", path=cat, kind="catalog",
                       checksum="ab" * 32, size=123456, inputs=raw[:1]),
        Document().add("step_end", run_id="r1", step="detect", status="failed", end=1_700_000_012.0,
                       summary={"done": 1, "failed": 1}),
        Document().add("run_end", run_id="r1", status="failed", end=1_700_000_020.0,
                       summary={"done": 1, "failed": 1}),
        Document().add("exposure", filename="e1.fits", object="D1", filter="r.MP9601", qrunid="05AQ01",
                       exptime=600.0, airmass=1.21, seeing=0.71, date_obs="2005-03-01T10:00:00",
                       storage=[{"node": "node1", "path": raw[0]}]),
        Document().add("quality", exposure="e1.fits", suggested_grade="B",
                       metrics=[{"ccd": 0, "name": "FWHM_MEDIAN", "value": 0.712},
                                {"ccd": 0, "name": "ELONGATION", "value": 1.04},
                                {"ccd": 3, "name": "FWHM_MEDIAN", "value": 9.99}]),
        Document().add("exposure", filename=EVIL, object=EVIL_OBJECT, filter="g.MP9401", exptime=300.0,
                       keywords=[{"extension": 0, "keyword": "OBJECT", "value": EVIL_OBJECT,
                                  "comment": "</pre><script>x()</script>"},
                                 {"extension": 1, "keyword": "GAIN", "value": "1.62"}],
                       extensions=[{"ccd": 1, "extname": "ccd00", "naxis1": 2112, "naxis2": 4644}]),
        Document().add("grade", exposure=EVIL, grade="D", author="<i>ops</i>", comment="satellite"),
        Document().add("stack", name="D1-r", version="T0007", filter="r.MP9601", survey_component="D", ra=36.5,
                       dec=-4.5, path=str(tmp_path / "work" / "D1-r.fits"), images=["e1.fits", EVIL],
                       astrometry=["e1.fits"]),
        Document().add("stack", name="D1-g", filter="g.MP9401", images=[EVIL]),
        Document().add("release", name="T0007", version="1", release_date="2012-11-01", survey_component="D",
                       description="<b>final</b> release", stacks=["D1-r"]),
        Document().add("transfer", direction="in", node="node1", path="/data/in/e1.fits", bytes=2_000_000,
                       status="done", start=1_700_000_000.0, end=1_700_000_004.0),
        Document().add("transfer", direction="in", node="node1", path="/data/in/e3.fits", bytes=0,
                       status="failed", start=1_700_000_000.0, end=1_700_000_001.0),
    ]
    for doc in docs:
        write_document(engine, doc)
    return url


def _page(out: Path, name: str) -> str:
    return (out / name).read_text(encoding="utf-8")


def test_build_renders_core_pages(tmp_path, db):
    from terapix_fw.cli import main

    out = tmp_path / "site"
    assert main(["web", "build", "--db", db, "--out", str(out), "--title", "CFHTLS <T0007>",
                 "--refresh", "300"]) == 0
    index = _page(out, "index.html")
    assert '<meta http-equiv="refresh" content="300">' in index
    assert "CFHTLS &lt;T0007&gt;" in index and "<T0007>" not in index
    assert 'href="run/r1.html"' in index and "T0007 release" in index
    assert re.search(r"<b>2</b> exposures", index) and re.search(r"<b>2</b> failed units", index)
    assert (out / "static" / "style.css").is_file() and (out / "static" / "tables.js").is_file()
    failures = index.split("<h2>Latest failures</h2>")[1]
    assert 'href="run/r1.html">T0007 release</a>' in failures and "&lt;NAXIS&gt; missing" in failures

    run = _page(out, "run/r1.html")
    assert 'href="../static/style.css"' in run and 'href="../runs.html"' in run
    assert "sextractor 2.28" in run and "DETECT_THRESH" in run
    # the failure, its error escaped, its log copied into the site (as text) and linked
    assert "ToolError: e2.fits[3]: &lt;NAXIS&gt; missing" in run
    link = re.search(r'<a class="log" href="([^"]+)">log</a>', run)
    assert link and link.group(1).startswith("../assets/") and link.group(1).endswith(".log.txt")
    assert "<b>corrupt</b>" in (out / "run" / link.group(1)).resolve().read_text()
    # a log path outside the work directories is shown, not copied
    assert len(list((out / "assets").iterdir())) == 1
    assert not any("PRIVATE KEY" in p.read_text() for p in out.rglob("*") if p.is_file() and p.suffix != ".png")
    assert f'<span class="path">{tmp_path}/secret.key</span>' in run and "file://" not in run
    assert "node2" in run
    units = re.search(r"<summary>All units \((\d+)\)</summary>(.*?)</table>", run, re.S)
    assert units and units.group(1) == "3" and units.group(2).count("<tr class=\"row-") == 3
    assert "10.0 s" in units.group(2)  # unit 1 ran from 1_700_000_001 to 1_700_000_011

    runs = _page(out, "runs.html")
    assert "status-failed" in runs and "20.0 s" in runs  # run from 1_700_000_000 to 1_700_000_020


def test_exposures_page_escapes_hostile_names(tmp_path, db):
    import json

    from terapix_fw.web import build_site

    out = tmp_path / "site"
    build_site(db, out)
    page = _page(out, "exposures.html")
    assert "http-equiv" not in page  # no refresh unless asked
    assert "<svg" not in page and "<img" not in page and "<i>" not in page
    assert 'src="data/exposures.js"' in page and 'src="static/datatable.js"' in page
    # the rows are data, rendered by datatable.js with textContent: the hostile names stay text
    table = json.loads((out / "data" / "exposures.json").read_text())
    rows = [dict(zip(table["keys"], r)) for r in table["rows"]]
    assert {r["filename"] for r in rows} == {"e1.fits", EVIL}
    evil = next(r for r in rows if r["filename"] == EVIL)
    assert evil["object"] == EVIL_OBJECT and evil["grade"] == "D" and evil["grade_source"] == "human"
    e1 = next(r for r in rows if r["filename"] == "e1.fits")
    assert e1["grade"] == "B" and e1["grade_source"] == "suggested" and e1["qa_in"] == "Y"
    assert e1["date_obs"] == "2005-03-01T10:00:00Z" and e1["node"] == "node1" and e1["exptime"] == 600.0
    script = (out / "data" / "exposures.js").read_text()
    assert "</" not in script and json.loads(script.split("=", 2)[2].rstrip(";\n")) == table
    # per-filter summary: one r exposure graded B (suggested) for 600 s, one g graded D for 300 s
    summary = re.search(r'<table class="data summary">.*?</table>', page, re.S).group(0)
    assert re.search(r"<td>g\.MP9401</td><td class=\"num\">1</td><td class=\"num\">0.08333</td>"
                     r"\s*(<td class=\"num\">0</td>){3}<td class=\"num\">1</td>", summary)
    assert re.search(r"<td>r\.MP9601</td><td class=\"num\">1</td><td class=\"num\">0.1667</td>"
                     r"\s*<td class=\"num\">0</td><td class=\"num\">1</td>", summary)

    links = [r["href"] for r in rows]
    # every exposure links to its own page: header, CCDs, per-CCD metrics, grade history
    assert len(links) == 2 and all((out / link).is_file() for link in links)
    evil_page = next(_page(out, link) for link in links if "e9.fits" in link)
    assert "<svg" not in evil_page and "<script>" not in evil_page and "<img" not in evil_page
    assert "&lt;/pre&gt;&lt;script&gt;x()&lt;/script&gt;" in evil_page
    assert "GAIN    = 1.62" in evil_page and "2112 × 4644" in evil_page
    assert "satellite" in evil_page and "&lt;i&gt;ops&lt;/i&gt;" in evil_page
    e1 = next(_page(out, link) for link in links if "e1.fits" in link)
    assert "<th>median FWHM (arcsec)</th>" in e1 and "9.99" in e1 and "node1" in e1


def test_products_page_shows_provenance(tmp_path, db):
    from terapix_fw.web import build_site

    out = tmp_path / "site"
    build_site(db, out)
    page = _page(out, "products.html")
    # files not in the site are named as text: the site has relative links only, never file://
    assert "file://" not in page
    cat = re.search(r'<tr id="p(\d+)">\s*<td><span class="path">[^<]*e1\.cat</span>', page)
    assert cat, page
    raw = re.search(r'<tr id="p(\d+)">\s*<td><span class="path">[^<]*raw/e1\.fits</span>', page)
    assert raw and f'<a href="#p{raw.group(1)}">e1.fits</a>' in page
    assert "123.5 kB" in page and "sextractor 2.28" in page and "external input" in page


def test_data_limits_and_node_distribution(db):
    from terapix_fw.web import data

    table = data.exposures(db, limit=1)
    assert table["total"] == 2 and [r["filename"] for r in table["rows"]] == ["e1.fits"]  # newest DATE-OBS
    assert [f["filter"] for f in table["summary"]] == ["g.MP9401", "r.MP9601"]  # summary over all exposures
    nodes = {n["name"]: n for n in data.transfers(db)["nodes"]}
    assert nodes["node1"]["files"] == 1


def test_statistics_page(tmp_path, db):
    import base64

    from terapix_fw.web import build_site

    out = tmp_path / "site"
    build_site(db, out)
    page = _page(out, "statistics.html")
    # hours per programme and filter: e1 (r, no survey component) 600 s; the hostile g exposure 300 s
    table = re.search(r'<table class="data programmes">.*?</table>', page, re.S).group(0)
    assert re.search(r"<th>g\.MP9401</th><th>r\.MP9601</th>", table)
    assert re.search(r"<td>-</td><td class=\"num\">0.08333</td><td class=\"num\">0.1667</td>"
                     r"<td class=\"num\">0.25</td>", table)
    charts = re.findall(r'<img src="data:image/png;base64,([A-Za-z0-9+/=]+)" alt="([^"]+)">', page)
    # seeing history and time per month need DATE-OBS (only e1 has one), grades need none
    assert [alt for _, alt in charts] == ["Image quality history", "Observing time per month and filter",
                                           "Grades per filter"]
    assert all(base64.b64decode(data)[:8] == b"\x89PNG\r\n\x1a\n" for data, _ in charts)


def test_releases_page(tmp_path, db):
    from terapix_fw.web import build_site

    out = tmp_path / "site"
    build_site(db, out)
    page = _page(out, "releases.html")
    release, unreleased = page.split("Stacks in no release")
    assert "<h2 id=\"release-T0007-1\">T0007 (1)</h2>" in release and "&lt;b&gt;final&lt;/b&gt; release" in release
    assert re.search(r"<td><a href=\"stack/\d+-D1-r.html\">D1-r</a></td><td>T0007</td><td>r\.MP9601</td><td>D</td>\s*<td>36.5, -4.5</td>"
                     r"<td class=\"num\">2</td><td class=\"num\">1</td>", release)
    assert "D1-g" in unreleased and "D1-g" not in release


def test_plugin_pages_through_web_pages_hook(tmp_path, db):
    """A third-party page (registered for this test only) is rendered, listed in the navigation, and may
    ship its own template; a site template folder overrides the default templates."""
    from terapix_fw.plugins import get_plugin_manager
    from terapix_fw.web import build_site, data

    tpl_dir = tmp_path / "plugin_templates"
    tpl_dir.mkdir()
    (tpl_dir / "thirdparty_nodes.html").write_text(
        '{% extends "base.html" %}{% block title %}Nodes{% endblock %}{% block content %}'
        "{% for t in totals %}<p class=node>{{ t.node }} {{ t.n }} {{ t.bytes | filesize }} {{ t.failed }}</p>"
        "{% endfor %}{% endblock %}")

    plugin = types.SimpleNamespace()
    plugin.web_pages = hookimpl(lambda register: register(
        "nodes", tpl_dir / "thirdparty_nodes.html", lambda db: data.transfers(db), title="Nodes", order=50))
    pm = get_plugin_manager()
    pm.register(plugin, name="test-web-plugin")
    try:
        site_templates = tmp_path / "site_templates"
        site_templates.mkdir()
        (site_templates / "_nav.html").write_text(
            "<nav id=custom>{% for e in site.nav %}<a href='{{ site.root }}{{ e.href }}'>{{ e.title }}</a>"
            "{% endfor %}</nav>")
        out = tmp_path / "site"
        build_site(db, out, templates=site_templates)
    finally:
        pm.unregister(plugin)
    page = _page(out, "nodes.html")
    assert "<p class=node>node1 2 2.0 MB 1</p>" in page
    index = _page(out, "index.html")
    assert "<nav id=custom>" in index and "href='nodes.html'>Nodes</a>" in index


def test_bad_registrations_and_missing_database(tmp_path, db):
    from terapix_fw.web import WebError, build_site
    from terapix_fw.web.site import Page

    with pytest.raises(WebError, match="no RDBix database at .*missing.sqlite"):  # SQLite: a missing file
        build_site(f"sqlite:///{tmp_path / 'missing.sqlite'}", tmp_path / "out")
    with pytest.raises(WebError, match="web page broken: template 'nope.html' not found"):
        build_site(db, tmp_path / "out", pages=[Page("broken", "nope.html", lambda db: {}, "Broken")])
    with pytest.raises(WebError, match="web page bad: cannot read its data: KeyError"):
        build_site(db, tmp_path / "out", pages=[Page("bad", "runs.html", lambda db: {}["x"], "Bad")])
    # a broken page does not keep the good ones from being written
    from terapix_fw.web.plugin import _runs
    with pytest.raises(WebError, match=r"1 page\(s\) not built \(1 written"):
        build_site(db, tmp_path / "out2", pages=[Page("bad", "runs.html", lambda db: 1 / 0, "Bad"),
                                                 Page("runs", "runs.html", _runs, "Runs")])
    assert "T0007 release" in (tmp_path / "out2" / "runs.html").read_text()


def test_empty_database_renders_every_page(tmp_path):
    from terapix_fw.db import connect
    from terapix_fw.db.engine import dispose_all
    from terapix_fw.web import build_site

    url = f"sqlite:///{tmp_path / 'empty.sqlite'}"
    connect(url)  # a new database: the schema, no rows
    try:
        written = build_site(url, tmp_path / "site")
    finally:
        dispose_all()
    names = sorted(str(p.relative_to(tmp_path / "site")) for p in written)
    assert {"index.html", "runs.html", "exposures.html", "statistics.html", "products.html", "releases.html"} <= set(names)
    assert not any("/" in n for n in names)  # no run, no exposure: no per-item page
    assert "No run recorded yet." in (tmp_path / "site" / "runs.html").read_text()


def test_templates_folder_must_exist_and_item_errors_are_named(tmp_path, db):
    from terapix_fw.web import WebError, build_site
    from terapix_fw.web.site import Page

    with pytest.raises(WebError, match="--templates .*nowhere: not a folder"):
        build_site(db, tmp_path / "out", templates=tmp_path / "nowhere")

    def items(db):
        yield "a", {"runs": []}
        raise RuntimeError("lost connection")
    with pytest.raises(WebError, match="web page item: cannot read its data: RuntimeError: lost connection"):
        build_site(db, tmp_path / "out", pages=[Page("item", "runs.html", items, "Items", each=True)])
    assert (tmp_path / "out" / "item" / "a.html").is_file()  # the pages before the error are written
