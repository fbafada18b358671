"""``terapix web build`` publishes only files under a real work directory or an asset root (issue 16,
finding 9: a run recorded with ``workdir=/etc`` and a unit log ``/etc/passwd`` got /etc/passwd copied
into the site)."""
from __future__ import annotations

import logging
from pathlib import Path

import pytest


def _record(url, workdir, log_path, run_id="forged"):
    from terapix_fw.db import Document, connect, write_document

    engine = connect(url)
    write_document(engine, Document()
                   .add("run_start", run_id=run_id, name="forged", workdir=str(workdir), start=1_700_000_000.0)
                   .add("step_start", run_id=run_id, step="s", tool="sextractor", start=1_700_000_000.0)
                   .add("unit", run_id=run_id, step="s", unit="1", status="failed", error="x",
                        log_path=str(log_path)))


def _published(out: Path) -> list[str]:
    return [p.read_bytes().decode("latin-1") for p in (out / "assets").rglob("*") if p.is_file()] \
        if (out / "assets").is_dir() else []


@pytest.mark.skipif(not Path("/etc/passwd").is_file(), reason="needs /etc/passwd, the finding's file")
def test_forged_workdir_etc_does_not_publish_etc_passwd(tmp_path, caplog):
    from terapix_fw.db.engine import dispose_all
    from terapix_fw.web import build_site

    url = f"sqlite:///{tmp_path / 'rdbix.sqlite'}"
    _record(url, "/etc", "/etc/passwd")
    try:
        with caplog.at_level(logging.INFO, logger="terapix.web"):
            build_site(url, tmp_path / "site")
    finally:
        dispose_all()
    passwd = Path("/etc/passwd").read_text(errors="replace")
    assert not any(passwd[:40] in text for text in _published(tmp_path / "site"))
    run = next((tmp_path / "site" / "run").glob("*.html")).read_text()
    assert "assets/" not in run and "/etc/passwd" in run  # named as text, not linked
    assert any("/etc/passwd" in r.getMessage() and "not publishing" in r.getMessage() for r in caplog.records)
    assert any("/etc" in r.getMessage() and ".terapix" in r.getMessage() for r in caplog.records)


def test_only_real_work_directories_and_asset_roots_publish(tmp_path, caplog):
    from terapix_fw.db.engine import dispose_all
    from terapix_fw.web import build_site

    real = tmp_path / "work"
    (real / ".terapix" / "state").mkdir(parents=True)  # what the runner makes
    (real / "logs").mkdir()
    (real / "logs" / "1.log").write_text("real unit log\n")
    (real / ".terapix" / "secret.log").write_text("hidden state\n")
    (real / "id_rsa").write_text("PRIVATE KEY\n")
    fake = tmp_path / "fake"  # declared as a workdir, but no run ever made it one
    fake.mkdir()
    (fake / "x.log").write_text("not from a run\n")
    extra = tmp_path / "plots"
    extra.mkdir()
    (extra / "p.log").write_text("from an asset root\n")

    url = f"sqlite:///{tmp_path / 'rdbix.sqlite'}"
    _record(url, real, real / "logs" / "1.log", "r1")
    _record(url, real, real / ".terapix" / "secret.log", "r2")
    _record(url, real, real / "id_rsa", "r3")
    _record(url, fake, fake / "x.log", "r4")
    _record(url, real, extra / "p.log", "r5")
    _record(url, real, real / "logs" / ".." / ".." / "fake" / "x.log", "r6")  # escapes through ..
    try:
        with caplog.at_level(logging.INFO, logger="terapix.web"):
            build_site(url, tmp_path / "site")
            published = _published(tmp_path / "site")
            assert published == ["real unit log\n"]
            build_site(url, tmp_path / "site2", extra_asset_roots=[extra])
            assert sorted(_published(tmp_path / "site2")) == ["from an asset root\n", "real unit log\n"]
    finally:
        dispose_all()
    messages = " | ".join(r.getMessage() for r in caplog.records)
    assert "secret.log: in a hidden folder" in messages
    assert "id_rsa: suffix '(none)'" in messages
    assert f"{fake / 'x.log'}: outside" in messages
