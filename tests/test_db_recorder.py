"""The RDBix recorder: a pipeline run and drop-in tool runs recorded through the lifecycle hooks, written
directly (embedded default) or through a dbClient server, on SQLite and MariaDB."""
from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
from sqlalchemy import select

from terapix_fw.db import schema as S
from terapix_fw.db.engine import connect
from terapix_fw.db.query import find_images, provenance
from terapix_fw.db.recorder import reset_recorders
from terapix_testing.rdbix import (ServerProcess, _mariadb_session_database, db_url,  # noqa: F401
                                   mariadb_server, snapshot)
from terapix_fw.hookspecs import hookimpl
from terapix_fw.params import Parameter
from terapix_fw.tool import Tool
from terapix_testing.services import process_alive


class RecordingTool(Tool):
    """Copies its input and reports every record kind RDBix knows, plus one it does not."""

    name = "rdbix_probe"
    version = "3.1"
    dropin_overlap = True
    parameters = [Parameter("SUFFIX", "str", ".cat", "suffix of the output"),
                  Parameter("SEEING", "float", 0.7, "seeing to report"),
                  Parameter("FAIL", "bool", False, "fail with a ToolError")]

    def run(self, ctx):
        if ctx.config["FAIL"]:
            from terapix_fw.errors import ToolError
            raise ToolError(f"{ctx.inputs[0].name}: keyword GAIN missing, expected a number")
        for path in ctx.inputs:
            with ctx.product(path.name + ctx.config["SUFFIX"], kind="catalog") as tmp:
                tmp.write_bytes(path.read_bytes()[::-1])
            ctx.record("exposure", filename=path.name, object="D1", filter="i", qrunid="04AQ01", ra=36.5, dec=-4.5,
                       exptime=600.0, airmass=1.2, seeing=ctx.config["SEEING"], date_obs="2004-09-12T10:11:12.5",
                       mjd_obs=53260.4244, photometric=True, survey_component="D",
                       keywords={"GAIN": 1.6, "OBJECT": "D1 ' -- ;"},
                       extensions=[{"ccd": 1, "naxis1": 2048, "naxis2": 4612, "ra": 36.3, "dec": -4.3}],
                       storage=[{"node": "master", "path": str(path), "size": path.stat().st_size}])
            ctx.record("quality", exposure=path.name, suggested_grade="B",
                       metrics=[{"ccd": 0, "name": "SEEING", "value": ctx.config["SEEING"]},
                                {"ccd": 1, "name": "SKY", "value": 1234.5}])
            ctx.record("catalog", path=str(ctx.output_path(path.name + ctx.config["SUFFIX"])), exposure=path.name,
                       sources=[{"number": 1, "ra": 36.5, "dec": -4.5, "mag": 20.1},
                                {"number": 2, "ra": 36.6, "dec": -4.5, "mag": 21.3}])
            ctx.record("coverage", filter="i", area_deg2=1.02)           # unknown kind: kept verbatim
            ctx.record("transfer", direction="in", node="cfht", path=str(path), bytes=6, url="http://x/y")


class _Plugin:
    @hookimpl
    def register_tools(self, register):
        register(RecordingTool)


@pytest.fixture
def probe_tool():
    from terapix_fw import plugins
    pm = plugins.get_plugin_manager()
    plugin = _Plugin()
    pm.register(plugin, name="rdbix_probe")
    plugins._tools.cache_clear()
    reset_recorders()
    yield RecordingTool
    pm.unregister(plugin)
    plugins._tools.cache_clear()
    reset_recorders()


def _dropin(tmp_path, monkeypatch, name="raw001.fits", overlap=False):
    from terapix_fw.dropin import run_tool_command
    work = tmp_path / "work"
    work.mkdir(exist_ok=True)
    monkeypatch.chdir(work)
    monkeypatch.setenv("TERAPIX_HOME", str(tmp_path / "home"))
    raw = work / name
    raw.write_bytes(b"SIMPLE  = T fake exposure")
    assert run_tool_command("rdbix_probe", [str(raw), "-SEEING", "0.85"], overlap=overlap) == 0
    return raw


def _check_probe_rows(url, raw: Path):
    engine = connect(url)
    with engine.connect() as conn:
        run = conn.execute(select(S.runs)).one()
        assert (run.name, run.mode, run.status) == ("tool rdbix_probe", "tool", "done")
        assert run.end >= run.start
        step = conn.execute(select(S.steps)).one()
        assert (step.tool, step.tool_version, step.status) == ("rdbix_probe", "3.1", "done")
        assert json.loads(step.config) == {"SUFFIX": ".cat", "SEEING": "0.85", "FAIL": "N"}
        assert json.loads(step.non_defaults) == {"SEEING": "0.85"}
        unit = conn.execute(select(S.units)).one()
        assert unit.status == "done" and json.loads(unit.inputs) == [str(raw)]
        header = dict(conn.execute(select(S.header_keywords.c.keyword, S.header_keywords.c.value)).all())
        assert header == {"GAIN": "1.6", "OBJECT": "D1 ' -- ;"}
        metrics = {(r.ccd, r.name): r.value for r in conn.execute(select(S.quality_metrics))}
        assert metrics == {(0, "SEEING"): 0.85, (1, "SKY"): 1234.5}
        cat = conn.execute(select(S.catalogs)).one()
        assert cat.nsources == 2 and cat.path.endswith("raw001.fits.cat")
        assert conn.execute(select(S.sources.c.number).order_by(S.sources.c.number)).scalars().all() == [1, 2]
        storage = conn.execute(select(S.storage)).one()
        assert (storage.node, storage.path) == ("master", str(raw))
        transfer = conn.execute(select(S.transfers)).one()
        assert (transfer.direction, transfer.node, transfer.bytes) == ("in", "cfht", 6)
        kinds = sorted(conn.execute(select(S.records.c.kind)).scalars())
        # 'coverage' has no table; the transfer's extra field 'url' is kept with the whole record
        assert kinds == ["coverage", "transfer"]
        data = json.loads(conn.execute(select(S.records.c.data).where(S.records.c.kind == "transfer")).scalar())
        assert data["url"] == "http://x/y"
    [exp] = find_images(url)
    assert (exp["filename"], exp["filter"], exp["grade"], exp["grade_source"]) == ("raw001.fits", "i", "B", "suggested")
    assert exp["date_obs"].isoformat() == "2004-09-12T10:11:12.500000+00:00"
    assert exp["photometric"] is True or exp["photometric"] == 1
    tree = provenance(url, str(raw.parent / "raw001.fits.cat"))
    assert (tree.tool, tree.tool_version, tree.step, tree.kind) == ("rdbix_probe", "3.1", "rdbix_probe", "catalog")
    assert tree.config["SEEING"] == "0.85"
    assert [(p.path, p.kind, p.tool) for p in tree.parents] == [(str(raw), "input", None)]


@pytest.mark.parametrize("overlap", [False, True], ids=["in-process", "forked-tool"])
def test_dropin_run_recorded_directly(db_url, probe_tool, tmp_path, monkeypatch, overlap):
    """The ``terapix tool`` command (overlap) runs the tool in a forked process while this one opens
    RDBix: the same rows either way."""
    monkeypatch.setenv("TERAPIX_DB_URL", db_url)
    monkeypatch.delenv("TERAPIX_DBCLIENT_URL", raising=False)
    raw = _dropin(tmp_path, monkeypatch, overlap=overlap)
    _check_probe_rows(db_url, raw)


def test_dropin_run_recorded_through_dbclient(db_url, probe_tool, tmp_path, monkeypatch):
    """Same run, documents sent to a dbClient server: the same rows, the spool empty afterwards."""
    server = ServerProcess(db_url, "recorder-secret", tmp_path / "server")
    try:
        monkeypatch.setenv("TERAPIX_DBCLIENT_URL", server.url)
        monkeypatch.setenv("TERAPIX_DBCLIENT_SECRET", "recorder-secret")
        monkeypatch.setenv("TERAPIX_DBCLIENT_SPOOL", str(tmp_path / "spool"))
        monkeypatch.delenv("TERAPIX_DB_URL", raising=False)
        raw = _dropin(tmp_path, monkeypatch)
    finally:
        server.stop()
    assert not list((tmp_path / "spool").glob("*.xml"))
    _check_probe_rows(db_url, raw)
    assert not (tmp_path / "home" / "rdbix.sqlite").exists()  # nothing written locally


def test_recorder_failure_does_not_break_the_run(probe_tool, tmp_path, monkeypatch, caplog):
    """A database that cannot be opened stops the run at its start with a message naming the URL."""
    from terapix_fw.db.errors import DatabaseError
    bad = f"sqlite:///{tmp_path / 'missing-dir' / 'x' / 'db.sqlite'}"
    (tmp_path / "missing-dir").write_text("a file where a directory should be")
    monkeypatch.setenv("TERAPIX_DB_URL", bad)
    with pytest.raises(DatabaseError, match="cannot open the database.*missing-dir"):
        _dropin(tmp_path, monkeypatch)


def test_forked_tool_is_stopped_when_rdbix_cannot_be_opened(probe_tool, tmp_path, monkeypatch):
    """With the tool already started in its own process, a database that cannot be opened still stops
    the run: the tool's process is killed before it writes its product."""
    import os
    import time

    from terapix_fw.db.errors import DatabaseError
    slow_run = RecordingTool.run
    pid_file = tmp_path / "tool.pid"

    def run_late(self, ctx):
        # renamed into place: killed between creating and writing the file, the tool would leave it empty
        pid_file.with_suffix(".tmp").write_text(str(os.getpid()))
        pid_file.with_suffix(".tmp").replace(pid_file)
        time.sleep(120)  # only a kill ends this early; the test waits on that kill, not on this sleep
        slow_run(self, ctx)

    monkeypatch.setattr(RecordingTool, "run", run_late)
    (tmp_path / "missing-dir").write_text("a file where a directory should be")
    monkeypatch.setenv("TERAPIX_DB_URL", f"sqlite:///{tmp_path / 'missing-dir' / 'x' / 'db.sqlite'}")
    with pytest.raises(DatabaseError, match="cannot open the database.*missing-dir"):
        _dropin(tmp_path, monkeypatch, overlap=True)
    if pid_file.exists():  # the tool had started: its process must be gone, not merely waited for
        pid = int(pid_file.read_text())
        deadline = time.monotonic() + 60
        while process_alive(pid):
            assert time.monotonic() < deadline, f"tool process {pid} still alive 60 s after the error"
            time.sleep(0.05)
    assert not (tmp_path / "work" / "raw001.fits.cat").exists()


PIPELINE = """\
<?xml version="1.0"?>
<instructions name="recorded" version="7">
  <inputs><inputset id="raw"><files pattern="raw/*.fits"/></inputset></inputs>
  <steps>
    <step id="scale" tool="scale" fanout="file">
      <config><param name="FACTOR">3</param><param name="OUTPUT_NAME">{stem}_x3.fits</param></config>
      <input set="raw"/>
    </step>
    <step id="sum" tool="stack" fanout="group" group-by="FILTER">
      <config><param name="OUTPUT_NAME">sum_{group}.fits</param></config>
      <input step="scale" kind="image"/>
    </step>
  </steps>
</instructions>
"""


def test_pipeline_run_recorded(db_url, tmp_path, fits_files, demo_tools, monkeypatch):
    """Every run, step, unit, product and provenance edge of a two-step pipeline is in RDBix."""
    from terapix_fw.runner import run_instructions
    reset_recorders()
    monkeypatch.delenv("TERAPIX_DBCLIENT_URL", raising=False)
    instr = tmp_path / "run.xml"
    instr.write_text(textwrap.dedent(PIPELINE))
    summary = run_instructions(str(instr), workdir=str(tmp_path / "work"), jobs=2, db_url=db_url)
    assert summary.get("failed", 0) == 0
    engine = connect(db_url)
    with engine.connect() as conn:
        run = conn.execute(select(S.runs)).one()
        assert (run.name, run.version, run.status, run.mode) == ("recorded", "7", "done", "pipeline")
        steps = {r.step: r for r in conn.execute(select(S.steps))}
        assert set(steps) == {"scale", "sum"} and {s.status for s in steps.values()} == {"done"}
        assert json.loads(steps["scale"].config)["FACTOR"] in ("3", "3.0")
        units = conn.execute(select(S.steps.c.step, S.units.c.status).join(S.steps)).all()
        assert sorted(units) == [("scale", "done")] * 3 + [("sum", "done")] * 2  # 3 files, filters g and r
        made = conn.execute(select(S.products.c.path).where(S.products.c.unit_pk.is_not(None))).scalars().all()
        assert sorted(Path(p).name for p in made) == ["exp0_x3.fits", "exp1_x3.fits", "exp2_x3.fits",
                                                      "sum_g.fits", "sum_r.fits"]
    sum_r = next(p for p in made if p.endswith("sum_r.fits"))
    tree = provenance(db_url, sum_r)
    assert tree.tool == "stack" and tree.step == "sum"
    assert sorted(Path(p.path).name for p in tree.parents) == ["exp1_x3.fits", "exp2_x3.fits"]
    for parent in tree.parents:  # ... each made by scale from its raw exposure
        assert parent.tool == "scale" and parent.config["FACTOR"] in ("3", "3.0")
        assert [Path(g.path).name for g in parent.parents] == [Path(parent.path).name.replace("_x3", "")]
        assert parent.parents[0].tool is None  # raw input, not produced by the pipeline


def test_dbclient_server_down_run_goes_on_and_spool_replays(db_url, probe_tool, tmp_path, monkeypatch):
    """With the server unreachable the run finishes without waiting, every document is in the spool,
    and `terapix dbclient flush` later records exactly what a direct run records."""
    from terapix_fw.cli import main
    spool = tmp_path / "spool"
    monkeypatch.setenv("TERAPIX_DBCLIENT_URL", "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.setenv("TERAPIX_DBCLIENT_SECRET", "recorder-secret")
    monkeypatch.setenv("TERAPIX_DBCLIENT_SPOOL", str(spool))
    monkeypatch.delenv("TERAPIX_DB_URL", raising=False)
    raw = _dropin(tmp_path, monkeypatch)
    waiting = sorted(spool.glob("*.xml"))
    assert len(waiting) >= 8  # run, step, unit, product, 5 records, step end, run end
    server = ServerProcess(db_url, "recorder-secret", tmp_path / "server")
    try:
        assert main(["dbclient", "flush", "--url", server.url, "--spool", str(spool)]) == 0
    finally:
        server.stop()
    assert not list(spool.glob("*.xml"))
    _check_probe_rows(db_url, raw)


QUERY_PIPELINE = """\
<?xml version="1.0"?>
<instructions name="selected" version="1">
  <inputs><inputset id="good_r"><query filter="r" grades="A,B" seeing_max="1.0"/></inputset></inputs>
  <steps>
    <step id="scale" tool="scale" fanout="file">
      <config><param name="OUTPUT_NAME">{stem}_sel.fits</param></config>
      <input set="good_r"/>
    </step>
  </steps>
</instructions>
"""


def test_instruction_query_selects_inputs_from_rdbix(db_url, tmp_path, fits_files, demo_tools, monkeypatch):
    """An input set holding an RDBix <query> runs on exactly the exposures the database selects."""
    import socket

    from terapix_fw.db.ops import Document
    from terapix_fw.db.query import set_grade
    from terapix_fw.db.store import write_document
    from terapix_fw.runner import run_instructions
    reset_recorders()
    monkeypatch.delenv("TERAPIX_DBCLIENT_URL", raising=False)
    doc = Document()
    for path, filt, seeing in zip(fits_files, ["g", "r", "r"], [0.7, 0.8, 0.9]):
        doc.add("exposure", filename=path.name, filter=filt, seeing=seeing,
                storage=[{"node": "elsewhere", "path": f"/nowhere/{path.name}"},
                         {"node": socket.gethostname(), "path": str(path)}])
        doc.add("quality", exposure=path.name, suggested_grade="A")
    write_document(connect(db_url), doc)
    set_grade(db_url, fits_files[2].name, "C", "operator", "tracking error")  # exp2 (r) now excluded
    instr = tmp_path / "sel.xml"
    instr.write_text(QUERY_PIPELINE)
    summary = run_instructions(str(instr), workdir=str(tmp_path / "work"), jobs=1, db_url=db_url)
    assert summary.get("failed", 0) == 0
    with connect(db_url).connect() as conn:
        inputs = [json.loads(r) for r in conn.execute(
            select(S.units.c.inputs).join(S.steps).where(S.steps.c.run_id != "").where(S.steps.c.step == "scale"))
            .scalars()]
    assert inputs == [[str(fits_files[1])]]


def test_failed_step_recorded(db_url, probe_tool, tmp_path, monkeypatch):
    from terapix_fw.dropin import run_tool_command
    monkeypatch.setenv("TERAPIX_DB_URL", db_url)
    monkeypatch.delenv("TERAPIX_DBCLIENT_URL", raising=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TERAPIX_HOME", str(tmp_path / "home"))
    (tmp_path / "bad.fits").write_bytes(b"x")
    assert run_tool_command("rdbix_probe", ["bad.fits", "-FAIL", "Y"]) == 1
    with connect(db_url).connect() as conn:
        run = conn.execute(select(S.runs)).one()
        step = conn.execute(select(S.steps)).one()
        unit = conn.execute(select(S.units)).one()
        assert (run.status, step.status, unit.status) == ("failed", "failed", "failed")
        assert "ToolError: bad.fits: keyword GAIN missing" in unit.error and unit.log_path
        assert json.loads(step.summary) == {"failed": "1"}
        assert conn.execute(select(S.products)).all() == []


@pytest.mark.parametrize("asks", [False, True])
def test_dropin_forks_only_tools_that_ask_for_it(probe_tool, tmp_path, monkeypatch, asks):
    """``Tool.dropin_overlap`` decides: a long-running tool (swarp) stays in the command's process (a
    second process would only add memory); a short one (sextractor) overlaps with opening RDBix."""
    import os

    pids = tmp_path / "pids"
    plain_run = RecordingTool.run

    def run_and_tell(self, ctx):
        with open(pids, "a") as handle:
            handle.write(f"{os.getpid()}\n")
        plain_run(self, ctx)

    monkeypatch.setattr(RecordingTool, "run", run_and_tell)
    monkeypatch.setattr(RecordingTool, "dropin_overlap", asks)
    monkeypatch.setenv("TERAPIX_DB_URL", f"sqlite:///{tmp_path / 'db.sqlite'}")
    _dropin(tmp_path, monkeypatch, overlap=True)
    assert (int(pids.read_text()) != os.getpid()) is asks


def test_forked_tool_killed_is_a_failed_run_naming_tool_and_input(probe_tool, tmp_path, monkeypatch, capsys):
    """A tool process that dies (SIGKILL, the kernel's out-of-memory killer) ends the drop-in with exit
    code 1, a message naming the tool and its input, and the run recorded as failed."""
    import os
    import signal

    from terapix_fw.db.engine import connect
    from terapix_fw.dropin import run_tool_command

    monkeypatch.setattr(RecordingTool, "run", lambda self, ctx: os.kill(os.getpid(), signal.SIGKILL))
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    monkeypatch.setenv("TERAPIX_DB_URL", url)
    monkeypatch.setenv("TERAPIX_HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    raw = tmp_path / "raw001.fits"
    raw.write_bytes(b"SIMPLE  = T fake exposure")
    assert run_tool_command("rdbix_probe", [str(raw)], overlap=True) == 1
    err = capsys.readouterr().err
    assert "rdbix_probe on" in err and "raw001.fits" in err and "died" in err
    with connect(url).connect() as conn:
        assert conn.execute(select(S.runs.c.status)).scalar_one() == "failed"
        assert conn.execute(select(S.units.c.status)).scalar_one() == "failed"
    assert not (tmp_path / "raw001.fits.cat").exists()
