"""Spica's operator side without running tools: the stack_finished hook and its smtplib mail notifier (a
real SMTP server on loopback), the status data (pending, in progress with the current step, remaining by
component/node/filter, longest remaining) and the terapix spica CLI."""
from __future__ import annotations

import datetime as dt
import json
import threading

import pytest
from sqlalchemy import insert, update

from terapix_fw.db import schema as S
from terapix_fw.db.engine import connect
from terapix_fw.spica.notify import send_notification
from terapix_fw.spica.status import format_status, status_summary


@pytest.fixture
def smtp_server():
    """aiosmtpd on 127.0.0.1 (a free port); yields (port, messages, event set on each message)."""
    aiosmtpd = pytest.importorskip("aiosmtpd.controller")
    received, arrived = [], threading.Event()

    class Handler:
        async def handle_DATA(self, server, session, envelope):
            received.append(envelope)
            arrived.set()
            return "250 OK"

    import socket
    with socket.socket() as probe:  # a free port (the controller checks readiness by connecting to it)
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = aiosmtpd.Controller(Handler(), hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield port, received, arrived
    finally:
        controller.stop()


JOB = dict(id=1, name="CFHTLS_D_r_022559-042939_T0001", version="T0001", kind="stack", mode="release", status="done",
           node="node1", start=dt.datetime(2026, 1, 1, 1, tzinfo=dt.timezone.utc), end=None, n_stack=12,
           n_astrometric=140, instruction_file="/w/x_spica.xml", command_file="/w/x_cmd.txt", error=None)


def test_mail_notifier_through_a_local_smtp_server(smtp_server, monkeypatch):
    port, received, arrived = smtp_server
    monkeypatch.setenv("TERAPIX_NOTIFY_SMTP", f"127.0.0.1:{port}")
    monkeypatch.setenv("TERAPIX_NOTIFY_TO", "control@terapix.example, qa@terapix.example")
    from terapix_fw.plugins import get_plugin_manager
    get_plugin_manager().hook.stack_finished(job=JOB)   # the built-in plugin's hook implementation
    assert arrived.wait(10)
    env = received[0]
    assert env.rcpt_tos == ["control@terapix.example", "qa@terapix.example"]
    text = env.content.decode()
    assert "Subject: [Spica T0001] CFHTLS_D_r_022559-042939_T0001 done" in text
    assert "terapix spica grade CFHTLS_D_r_022559-042939_T0001" in text and "12 stacked, 140" in text


def test_notifier_is_silent_without_configuration_and_survives_a_dead_server(monkeypatch):
    assert send_notification(JOB, env={}) is False
    env = {"TERAPIX_NOTIFY_SMTP": "127.0.0.1:9", "TERAPIX_NOTIFY_TO": "a@b.example"}  # discard port: refused
    assert send_notification(JOB, env=env) is False


@pytest.fixture
def jobs_db(tmp_path):
    url = f"sqlite:///{tmp_path / 'rdbix.sqlite'}"
    rows = [("CFHTLS_D_i_221531-174356_T0002", "D", "i.MP9701", "mix3", "pending", 246, None),
            ("CFHTLS_D_r_221531-174356_T0002", "D", "r.MP9601", "mix3", "pending", 188, None),
            ("CFHTLS_W_i_141754+543030_T0002", "W", "i.MP9701", "mix2", "running", 30, "swarp_x (swarp)"),
            ("CFHTLS_W_r_141754+543030_T0002", "W", "r.MP9601", "pix9", "done", 10, None),
            ("CFHTLS_W_g_141754+543030_T0002", "W", "g.MP9401", "pix9", "failed", 12, None)]
    with connect(url).begin() as conn:
        for i, (name, comp, flt, node, status, nstack, step) in enumerate(rows):
            sid = conn.execute(insert(S.stacks).values(name=name, version="T0002", filter=flt, survey_component=comp,
                                                       ra=10.0 + i, dec=0.0)).inserted_primary_key[0]
            conn.execute(insert(S.spica_jobs).values(
                name=name, version="T0002", mode="release", kind="stack", stack_id=sid, survey_component=comp,
                filter=flt, node=node, priority=10 if comp == "D" else 5, status=status, current_step=step,
                n_stack=nstack, n_astrometric=10 * nstack, error="1 unit(s) failed" if status == "failed" else None))
        conn.execute(insert(S.stack_grades).values(stack_id=4, grade="B", author="qa",
                                                   time=dt.datetime.now(dt.timezone.utc)))
    return url


def test_status_tables(jobs_db):
    s = status_summary(jobs_db, "T0002")
    assert s["by_status"] == {"pending": 2, "running": 1, "done": 1, "failed": 1}
    assert [r["name"] for r in s["in_progress"]] == ["CFHTLS_W_i_141754+543030_T0002"]
    assert s["in_progress"][0]["current_step"] == "swarp_x (swarp)"
    assert s["remaining_by_component"] == {"D": 2, "W": 1}
    assert s["remaining_by_node"] == {"mix3": 2, "mix2": 1}
    assert s["remaining_by_filter"] == {"i.MP9701": 2, "r.MP9601": 1}
    assert [r["n_stack"] for r in s["longest_remaining"]] == [246, 188, 30]
    assert s["by_grade"] == {"B": 1} and s["failed"][0]["error"] == "1 unit(s) failed"
    text = format_status(s)
    assert "CFHTLS_D_i_221531-174356_T0002" in text and "swarp_x (swarp)" in text


def test_status_cli_json(jobs_db, capsys):
    from terapix_fw.cli import main
    assert main(["spica", "status", "--release", "T0002", "--json", "--db", jobs_db]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["remaining_by_node"]["mix3"] == 2
    assert main(["spica", "grade", "CFHTLS_D_i_221531-174356_T0002", "C", "--db", jobs_db]) == 2  # no report
    assert "problem report" in capsys.readouterr().err
    assert main(["grade", "CFHTLS_D_i_221531-174356_T0002", "C", "--comment", "ghost", "--db", jobs_db]) == 0
    assert "grade C" in capsys.readouterr().out


def test_run_hooks_keep_the_current_step(jobs_db):
    from terapix_fw.model import RunInfo, StepInfo
    from terapix_fw.spica import plugin
    with connect(jobs_db).begin() as conn:
        conn.execute(update(S.spica_jobs).where(S.spica_jobs.c.id == 1).values(instruction_file="/w/a_spica.xml"))
    run = RunInfo(name="a", instruction_file="/w/a_spica.xml", db_url=jobs_db)
    plugin.run_started(run)
    plugin.step_started(run, StepInfo(id="scamp_g", tool="scamp", tool_version="1"))
    s = status_summary(jobs_db, "T0002")
    job = next(r for r in s["in_progress"] if r["name"] == "CFHTLS_D_i_221531-174356_T0002")
    assert job["current_step"] == "scamp_g (scamp)"
