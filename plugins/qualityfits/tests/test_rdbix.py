"""The quality record reaches RDBix; the human grade (terapix grade) overrides the suggested one."""


def test_quality_record_stored_and_human_grade_wins(tmp_path, exposure, assessed):
    from terapix_fw.db import migrate
    from terapix_fw.db.engine import connect
    from terapix_fw.db.query import effective_grade, grade_history, set_grade
    from terapix_fw.db.recorder import document_for_record
    from terapix_fw.db.store import write_document

    url = f"sqlite:///{tmp_path / 'rdbix.db'}"
    migrate.init(url)
    _, result = assessed
    for kind, data in result.records:
        write_document(connect(url), document_for_record("run1", "qualityfits", kind, data))
    (_, q), = [r for r in result.records if r[0] == "quality"]
    name = exposure.path.name
    assert effective_grade(url, name) == (q["suggested_grade"], "suggested")
    from sqlalchemy import text

    with connect(url).connect() as conn:
        n = conn.execute(text("SELECT COUNT(*) FROM quality_metrics")).scalar()
    assert n == len(q["metrics"])
    set_grade(url, name, "C", author="astronomer", comment="halo in ccd02")
    assert effective_grade(url, name) == ("C", "human")
    assert grade_history(url, name)[-1]["comment"] == "halo in ccd02"
