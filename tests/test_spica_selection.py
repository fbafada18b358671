"""Spica selection: criteria files (schema, order, strict bounds, per-component/per-filter seeing) applied
to a synthetic RDBix, against sets computed by hand, with the first failing criterion of every rejected
exposure recorded."""
from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select

from terapix_fw.db import schema as S
from terapix_fw.db.engine import connect
from terapix_fw.db.ops import Document
from terapix_fw.db.query import set_grade
from terapix_fw.db.store import write_document
from terapix_fw.errors import InstructionError
from terapix_fw.spica.criteria import load_criteria
from terapix_fw.spica.selection import select_exposures

CRITERIA = """<?xml version="1.0"?>
<criteria name="T0001">
  <period from="2003-06-01" to="2004-07-22"/>
  <exptime above="60"/>
  <seeing below="1.0">
    <limit filter="u" below="1.3"/>
    <limit component="W" filter="u" below="1.4"/>
  </seeing>
  <airmass below="1.4"/>
  <skyprobe below="2.0"/>
  <grades>A B</grades>
  <runids>0[34][AB]L0[1-6]</runids>
</criteria>
"""

UTC = dt.timezone.utc
BASE = dict(filter="r.MP9601", survey_component="D", date_obs=dt.datetime(2003, 7, 1, 5, tzinfo=UTC),
            exptime=600.0, seeing=0.8, airmass=1.2, runid="03BL01", ra=36.5, dec=-4.5, skyprobe=0.1)
# name -> (changes, grade, expected first failure or None)
CASES = {
    "700001p": ({}, "A", None),
    "700002p": ({"filter": "u.MP9301", "seeing": 1.2}, "B", None),             # u* limit 1.3
    "700003p": ({"seeing": 1.2}, "A", "seeing"),
    "700004p": ({"date_obs": dt.datetime(2004, 8, 1, tzinfo=UTC), "seeing": 1.5}, "A", "period"),  # first wins
    "700005p": ({"exptime": 60.0}, "A", "exptime"),                            # strict: > 60 s
    "700006p": ({"airmass": 1.5}, "A", "airmass"),
    "700007p": ({}, "C", "grades"),
    "700008p": ({"seeing": None}, "A", "seeing"),
    "700009p": ({"filter": "u.MP9301", "seeing": 1.35, "survey_component": "W"}, "A", None),  # W u* 1.4
    "700010p": ({"filter": "u.MP9301", "seeing": 1.35}, "A", "seeing"),        # D u* 1.3
    "700011p": ({"date_obs": dt.datetime(2004, 7, 22, 23, 59, tzinfo=UTC)}, "A", None),  # last day included
    "700012p": ({"runid": "05AL01"}, "A", "runids"),
    "700013p": ({"seeing": 1.0}, "A", "seeing"),                               # strict: < 1.0"
    "700014p": ({}, "C", None),                                                # human grade B below
    "700015p": ({"skyprobe": 2.3}, "A", "skyprobe"),                           # sky-probe extinction
}


@pytest.fixture
def survey(tmp_path):
    url = f"sqlite:///{tmp_path / 'rdbix.sqlite'}"
    doc = Document()
    for name, (changes, grade, _) in CASES.items():
        doc.add("exposure", filename=f"{name}.fits", **{**BASE, **changes})
        doc.add("quality", exposure=f"{name}.fits", suggested_grade=grade)
    write_document(connect(url), doc)
    set_grade(url, "700014p.fits", "B", "control team", comment="halo acceptable")
    crit = tmp_path / "t0001.xml"
    crit.write_text(CRITERIA)
    return url, crit


def test_selection_matches_hand_computed_sets(survey):
    url, crit_path = survey
    result = select_exposures(url, load_criteria(crit_path))
    expected_selected = sorted(f"{n}.fits" for n, (_, _, f) in CASES.items() if f is None)
    assert sorted(result.filenames) == expected_selected
    assert {n: c for n, (c, _) in result.rejected.items()} == {
        f"{n}.fits": f for n, (_, _, f) in CASES.items() if f is not None}
    assert "not > 60 s" in result.rejected["700005p.fits"][1]
    assert "limit for filter u" in result.rejected["700010p.fits"][1]
    # recorded: one row per exposure, the criterion of each rejected one
    engine = connect(url)
    with engine.connect() as conn:
        sel = conn.execute(select(S.selections)).one()
        rows = conn.execute(select(S.exposures.c.filename, S.selection_results.c.selected,
                                   S.selection_results.c.criterion)
                            .join(S.exposures, S.exposures.c.id == S.selection_results.c.exposure_id)).all()
    assert (sel.name, sel.nselected, sel.nrejected) == ("T0001", len(expected_selected),
                                                        len(CASES) - len(expected_selected))
    assert {r.filename: r.criterion for r in rows if not r.selected} == {
        n: c for n, (c, _) in result.rejected.items()}
    report = result.report()
    assert "rejected 700012p.fits: runids: run id 05AL01 not in 0[34][AB]L0[1-6]" in report


def test_order_of_the_file_decides_the_first_failure(survey, tmp_path):
    url, _ = survey
    reordered = tmp_path / "seeing_first.xml"
    reordered.write_text('<criteria name="x"><seeing below="1.0"/><period from="2003-06-01" to="2004-07-22"/>'
                         '</criteria>')
    result = select_exposures(url, load_criteria(reordered), record=False)
    assert result.rejected["700004p.fits"][0] == "seeing"


@pytest.mark.parametrize("text, message", [
    ('<criteria name="x"><seeing/></criteria>', "give below="),
    ('<criteria name="x"><grades>A E</grades></criteria>', "grade 'E'"),
    ('<criteria name="x"><exptime abov="60"/></criteria>', "attribute 'abov'"),
    ('<criteria name="x"><period from="2004-01-01" to="2003-01-01"/></criteria>', "before from="),
])
def test_bad_criteria_name_file_line_and_what_was_expected(tmp_path, text, message):
    path = tmp_path / "bad.xml"
    path.write_text(text)
    with pytest.raises(InstructionError) as err:
        load_criteria(path)
    assert message in str(err.value) and str(path) in str(err.value)
