"""Operators' status from SPICA's job list (``spica_jobs``), as the SPICA operation pages showed it:
pending stacks, stacks in progress with their current step, remaining by component, node and filter,
the longest remaining."""
from __future__ import annotations


def test_status_from_spica_jobs(tmp_path):
    from sqlalchemy import insert

    from terapix_fw.db import connect, schema as S
    from terapix_fw.db.engine import dispose_all
    from terapix_fw.web import survey
    from terapix_fw.web.testing import make_known_survey

    info = make_known_survey(tmp_path)
    engine = connect(info["url"])
    jobs = [dict(name="CFHTLS_D_i_221531-174356", mode="release", survey_component="D", filter="i.MP9701",
                 node="mix3", n_astrometric=458, n_stack=246, status="pending", version="0002"),
            dict(name="CFHTLS_D_g_022559-042939", mode="release", survey_component="D", filter="g.MP9401",
                 node="mix3", n_astrometric=475, n_stack=100, status="running", current_step="swarp", version="0002"),
            dict(name="CFHTLS_W_i_141754+543030", mode="release", survey_component="W", filter="i.MP9701",
                 node="mix2", n_astrometric=120, n_stack=12, status="pending", version="0002"),
            dict(name="CFHTLS_W_r_141754+543030", mode="release", survey_component="W", filter="r.MP9601",
                 node="mix2", n_astrometric=120, n_stack=300, status="done", version="0002")]
    with engine.begin() as conn:
        for job in jobs:  # one by one: an executemany takes its columns from the first row
            conn.execute(insert(S.spica_jobs).values(**job))
    try:
        st = survey.status(info["url"])
    finally:
        dispose_all()
    assert [j["name"] for j in st["pending"]] == ["CFHTLS_D_i_221531-174356", "CFHTLS_W_i_141754+543030"]
    assert [(j["name"], j["step"], j["node"]) for j in st["in_progress"]] == [
        ("CFHTLS_D_g_022559-042939", "swarp", "mix3")]
    assert dict(st["remaining"]) == {"Survey component": [("D", 2), ("W", 1)],
                                     "Node": [("mix2", 1), ("mix3", 2)],
                                     "Filter": [("g.MP9401", 1), ("i.MP9701", 2)]}
    assert [(j["name"], j["nimages"]) for j in st["longest"]] == [
        ("CFHTLS_D_i_221531-174356", 246), ("CFHTLS_D_g_022559-042939", 100), ("CFHTLS_W_i_141754+543030", 12)]
    assert st["pending"][0]["nastrometry"] == 458
    # the image counts do not depend on the jobs
    assert st["total"] == 9 and {r["name"]: r["n"] for r in st["summary"]}["Processed"] == 2
