"""Queries of RDBix on SQLite and MariaDB: image selection by every criterion, grades with history (a human
grade overrides the suggestion), cone searches, provenance, the runner's select_paths, and the CLI."""
from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pytest

from terapix_fw.db.engine import connect
from terapix_fw.db.ops import Document, RecordError
from terapix_fw.db.query import (angular_distance, cone_search_sources, effective_grade, find_images,
                                 grade_history, provenance, select_paths, set_grade)
from terapix_fw.db.store import write_document
from terapix_testing.rdbix import _mariadb_session_database, db_url, mariadb_server  # noqa: F401

RNG = np.random.default_rng(20041)
N = 40
# a seeded random survey: positions scattered over ~4 degrees around (150, 2)
EXPOSURES = [dict(filename=f"{800000 + i}o.fits", filter="ugriz"[i % 5], qrunid=f"04A{'QR'[i % 2]}0{i % 3}",
                  ra=float(150 + RNG.uniform(-2, 2)), dec=float(2 + RNG.uniform(-2, 2)),
                  exptime=float([60, 300, 600][i % 3]), airmass=float(1 + RNG.uniform(0, 0.8)),
                  seeing=float(RNG.uniform(0.5, 1.4)), date_obs=dt.datetime(2004, 1, 1, tzinfo=dt.timezone.utc)
                  + dt.timedelta(days=3 * i, hours=i % 7), survey_component=["D", "W", "Pre-W", "VW", "PI"][i % 5],
                  object=f"F{i % 4}", suggested_grade="ABCD"[i % 4],
                  storage=[{"node": "node1", "path": f"/n1/{800000 + i}o.fits"},
                           {"node": "master", "path": f"/m/{800000 + i}o.fits"}]) for i in range(N)]


@pytest.fixture
def survey(db_url):
    engine = connect(db_url)
    doc = Document()
    for e in EXPOSURES:
        fields = {k: v for k, v in e.items() if k != "suggested_grade"}
        doc.add("exposure", **fields)
        doc.add("quality", exposure=e["filename"], suggested_grade=e["suggested_grade"])
    write_document(engine, doc)
    return db_url


def _names(rows):
    return sorted(r["filename"] for r in rows)


def _expected(pred):
    return sorted(e["filename"] for e in EXPOSURES if pred(e))


def test_each_criterion(survey):
    assert _names(find_images(survey)) == _expected(lambda e: True)
    assert _names(find_images(survey, filter="r")) == _expected(lambda e: e["filter"] == "r")
    assert _names(find_images(survey, filter="g,i")) == _expected(lambda e: e["filter"] in "gi")
    assert _names(find_images(survey, run_id="04AQ01")) == _expected(lambda e: e["qrunid"] == "04AQ01")
    lo, hi = dt.datetime(2004, 2, 1), "2004-03-15T00:00:00"
    assert _names(find_images(survey, date_from=lo, date_to=hi)) == _expected(
        lambda e: dt.datetime(2004, 2, 1, tzinfo=dt.timezone.utc) <= e["date_obs"]
        <= dt.datetime(2004, 3, 15, tzinfo=dt.timezone.utc))
    assert _names(find_images(survey, exptime_min=300)) == _expected(lambda e: e["exptime"] >= 300)
    assert _names(find_images(survey, seeing_max=0.8)) == _expected(lambda e: e["seeing"] <= 0.8)
    assert _names(find_images(survey, airmass_max=1.3, seeing_min=0.7)) == _expected(
        lambda e: e["airmass"] <= 1.3 and e["seeing"] >= 0.7)
    assert _names(find_images(survey, survey="Pre-W")) == _expected(lambda e: e["survey_component"] == "Pre-W")
    assert _names(find_images(survey, object="F2")) == _expected(lambda e: e["object"] == "F2")
    assert _names(find_images(survey, grade=["A", "B"])) == _expected(lambda e: e["suggested_grade"] in "AB")
    rows = find_images(survey, filter="r", limit=3)
    assert len(rows) == 3 and [r["date_obs"] for r in rows] == sorted(r["date_obs"] for r in rows)


def test_cone_search_matches_brute_force(survey):
    for ra, dec, radius in [(150.0, 2.0, 1.0), (149.0, 3.0, 0.5), (151.5, 0.5, 2.5), (150, 2, 0.0)]:
        got = find_images(survey, cone=(ra, dec, radius))
        dist = angular_distance(ra, dec, [e["ra"] for e in EXPOSURES], [e["dec"] for e in EXPOSURES])
        assert _names(got) == sorted(e["filename"] for e, d in zip(EXPOSURES, dist) if d <= radius)
        for row in got:
            assert row["distance"] <= radius
    assert len(find_images(survey, cone=(150, 2, 1.5))) > 0  # the test is not vacuous


def test_human_grade_overrides_and_history_kept(survey):
    name = EXPOSURES[1]["filename"]  # suggested B
    assert effective_grade(survey, name) == ("B", "suggested")
    set_grade(survey, name, "D", "alice", "satellite trail on CCD 12")
    set_grade(survey, name, "a", "bob", "trail masked; fine")
    assert effective_grade(survey, name) == ("A", "human")
    history = grade_history(survey, name)
    assert [(h["grade"], h["author"], h["comment"]) for h in history] == [
        ("D", "alice", "satellite trail on CCD 12"), ("A", "bob", "trail masked; fine")]
    assert history[0]["time"] <= history[1]["time"]
    assert name in _names(find_images(survey, grade="A"))
    assert name not in _names(find_images(survey, grade="B"))
    [row] = [r for r in find_images(survey) if r["filename"] == name]
    assert (row["grade"], row["grade_source"]) == ("A", "human")
    with pytest.raises(RecordError, match="grade.*'E' is not one of A, B, C, D"):
        set_grade(survey, name, "E", "bob")
    with pytest.raises(RecordError, match="unknown exposure 'nosuch.fits'"):
        set_grade(survey, "nosuch.fits", "A", "bob")


def test_sql_metacharacters_stored_verbatim(db_url):
    nasty = "x'); DROP TABLE exposures; -- \"\\ % _ ` ;\n\tünï"
    write_document(connect(db_url), Document().add(
        "exposure", filename="evil'.fits", object=nasty, keywords={"COMMENT": nasty, "K'EY": nasty}))
    set_grade(db_url, "evil'.fits", "C", nasty, nasty)
    [row] = find_images(db_url, object=nasty)
    assert row["object"] == nasty and row["filename"] == "evil'.fits"
    assert [(h["author"], h["comment"]) for h in grade_history(db_url, "evil'.fits")] == [(nasty, nasty)]
    assert find_images(db_url, object="%") == []  # a LIKE wildcard is not a pattern here


def test_sources_cone_search(db_url):
    ra = 36 + RNG.uniform(-0.2, 0.2, 300)
    dec = -4.5 + RNG.uniform(-0.2, 0.2, 300)
    write_document(connect(db_url), Document().add(
        "catalog", path="/w/cat.ldac", sources=[{"number": i + 1, "ra": float(a), "dec": float(d), "mag": 20.0}
                                                for i, (a, d) in enumerate(zip(ra, dec))]))
    got = cone_search_sources(db_url, 36.0, -4.5, 0.05)
    dist = angular_distance(36.0, -4.5, ra, dec)
    assert sorted(r["number"] for r in got) == sorted(int(i) + 1 for i in np.flatnonzero(dist <= 0.05))
    assert len(got) > 3 and [r["distance"] for r in got] == sorted(r["distance"] for r in got)


def test_provenance_chain(db_url):
    engine = connect(db_url)
    doc = Document()
    doc.add("run_start", run_id="r1", name="release")
    doc.add("step_start", run_id="r1", step="sex", tool="sextractor", tool_version="2.28.0",
            config={"DETECT_THRESH": "1.5"})
    doc.add("product", run_id="r1", step="sex", unit="1", path="/w/a.cat", kind="catalog", checksum="c1",
            inputs=["/raw/a.fits"])
    doc.add("step_start", run_id="r1", step="scamp", tool="scamp", tool_version="2.10.0", config={"MATCH": "Y"})
    doc.add("product", run_id="r1", step="scamp", unit="1", path="/w/a.head", kind="head", checksum="h1",
            inputs=["/w/a.cat", "/ref/gaia.cat"])
    write_document(engine, doc)
    tree = provenance(db_url, "/w/a.head")
    assert (tree.tool, tree.tool_version, tree.config) == ("scamp", "2.10.0", {"MATCH": "Y"})
    assert [p.path for p in tree.parents] == ["/ref/gaia.cat", "/w/a.cat"]
    cat = tree.parents[1]
    assert (cat.tool, cat.config["DETECT_THRESH"], [g.path for g in cat.parents]) == (
        "sextractor", "1.5", ["/raw/a.fits"])
    with pytest.raises(RecordError, match="no product '/w/none' in RDBix"):
        provenance(db_url, "/w/none")


def test_cli_provenance(db_url, capsys):
    from terapix_fw.cli import main
    doc = Document()
    doc.add("step_start", run_id="r9", step="swarp", tool="swarp", tool_version="2.41.5", config={"COMBINE": "Y"})
    doc.add("product", run_id="r9", step="swarp", unit="1", path="/s/coadd.fits", kind="image", checksum="x",
            inputs=["/r/b.fits", "/r/a.fits"])
    write_document(connect(db_url), doc)
    assert main(["db", "query", "provenance", "/s/coadd.fits", "--db", db_url]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "/s/coadd.fits [image] <- swarp 2.41.5 (run r9, step swarp, unit 1)",
        "  /r/a.fits [input] (external input)", "  /r/b.fits [input] (external input)"]
    assert main(["db", "query", "provenance", "/s/coadd.fits", "--db", db_url, "--json"]) == 0
    tree = json.loads(capsys.readouterr().out)
    assert tree["config"] == {"COMBINE": "Y"} and [p["path"] for p in tree["parents"]] == ["/r/a.fits", "/r/b.fits"]
    assert main(["db", "query", "provenance", "/s/none.fits", "--db", db_url]) == 2
    assert "no product '/s/none.fits' in RDBix" in capsys.readouterr().err


def test_select_paths_for_instruction_queries(survey):
    crit = {"filter": "r", "grades": "A,B,C,D"}
    assert select_paths(survey, crit, node="node1") == [
        r["storage"][0]["path"] for r in sorted(EXPOSURES, key=lambda e: e["date_obs"]) if r["filter"] == "r"]
    assert all(p.startswith("/m/") for p in select_paths(survey, crit, node="master"))
    assert select_paths(survey, {"ra": "150", "dec": "2", "radius": "0.5"}, node="node1") == [
        f"/n1/{r['filename']}" for r in find_images(survey, cone=(150, 2, 0.5))]
    with pytest.raises(ValueError, match="query attribute 'colour'"):
        select_paths(survey, {"colour": "red"})


def test_cli_query_and_grade(survey, capsys):
    from terapix_fw.cli import main
    assert main(["db", "query", "images", "--db", survey, "--filter", "r", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert sorted(r["filename"] for r in rows) == _expected(lambda e: e["filter"] == "r")
    name = EXPOSURES[0]["filename"]
    assert main(["grade", name, "C", "--comment", "bad focus", "--author", "carol", "--db", survey]) == 0
    assert main(["db", "query", "grades", name, "--db", survey]) == 0
    out = capsys.readouterr().out
    assert "C  carol  bad focus" in out and "effective grade: C (human)" in out
    assert main(["db", "query", "images", "--db", survey, "--cone", "150", "2", "1", "--grade", "C"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].split() == ["filename", "filter", "qrunid", "date_obs", "exptime", "airmass",
                                           "seeing", "survey_component", "grade", "grade_source", "distance"]


def test_stacks_releases_transfers_nodes(db_url):
    from sqlalchemy import select

    from terapix_fw.db import schema as S
    engine = connect(db_url)
    doc = Document()
    doc.add("stack", name="D1_i", version="T0003", ra=36.49, dec=-4.49, filter="i", survey_component="D",
            path="/rel/D1_i.fits", images=["/raw/a.fits", "b.fits", "b.fits"], astrometry=["a.fits", "c.fits"],
            release="T0003", release_version="1")
    doc.add("release", name="T0003", version="1", release_date="2006-07-01", survey_component="D",
            description="Deep fields", stacks=["D1_i", "D2_i"])
    doc.add("transfer", direction="out", node="ccc", path="/rel/D1_i.fits", bytes=123456789, status="done",
            start=1.1e9, end=1.1e9 + 60)
    doc.add("node", name="ccc", free_disk=10 ** 13)
    write_document(engine, doc)
    # a new stack list replaces the old one
    write_document(engine, Document().add("stack", name="D1_i", version="T0003", images=["b.fits", "d.fits"]))
    with engine.connect() as conn:
        stacks = {r.name: r for r in conn.execute(select(S.stacks))}
        assert set(stacks) == {"D1_i", "D2_i"}
        rel = conn.execute(select(S.releases)).one()
        assert (rel.name, rel.version, rel.release_date.year) == ("T0003", "1", 2006)
        assert stacks["D1_i"].release_id == rel.id and stacks["D2_i"].release_id == rel.id
        assert (stacks["D1_i"].ra, stacks["D1_i"].filter, stacks["D1_i"].path) == (36.49, "i", "/rel/D1_i.fits")
        lists = sorted(conn.execute(select(S.stack_images.c.list, S.stack_images.c.filename)
                                    .where(S.stack_images.c.stack_id == stacks["D1_i"].id)).all())
        assert lists == [("astrometry", "a.fits"), ("astrometry", "c.fits"), ("stack", "b.fits"), ("stack", "d.fits")]
        tr = conn.execute(select(S.transfers)).one()
        assert (tr.direction, tr.node, tr.bytes, (tr.end - tr.start).total_seconds()) == ("out", "ccc", 123456789, 60)
        node = conn.execute(select(S.nodes)).one()
        assert (node.name, node.free_disk) == ("ccc", 10 ** 13)
    with pytest.raises(RecordError, match="transfer.direction: 'sideways' is not one of in, out"):
        Document().add("transfer", direction="sideways", node="x")
    with pytest.raises(RecordError, match="stack: unknown field 'colour'"):
        Document().add("stack", name="x", colour="red")


def test_cli_lists_record_kinds(capsys):
    from terapix_fw.cli import main
    from terapix_fw.db.ops import RECORD_KINDS
    assert main(["db", "kinds"]) == 0
    out = capsys.readouterr().out
    assert [line.split(":")[0] for line in out.splitlines() if not line.startswith((" ", "("))] == list(RECORD_KINDS)
    assert "filename*" in out and "grade*(A|B|C|D)" in out and "keywords[extension, keyword*, value, comment]" in out
