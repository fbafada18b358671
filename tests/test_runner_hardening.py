"""The runner against crashes (issue 16, findings 6 and 7): a ``kill -9`` of a local run leaves no pool
worker behind, the killed run's row is recorded ``interrupted`` at the next start, and a unit the runner
recorded done is never executed again by the executor behind its back."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

from sqlalchemy import select

from terapix_testing.services import process_alive

WAIT = 120.0  # generous bound on waiting for something that must happen


def _children(pid: int) -> set[int]:
    """Every live descendant of ``pid`` (zombies count as dead)."""
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as handle:
                    fields = handle.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if fields[0] != "Z":
                parents.setdefault(int(fields[1]), []).append(int(entry))
    out, todo = set(), [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            out.add(child)
            todo.append(child)
    return out


def _wait_for(condition, what: str) -> None:
    deadline = time.monotonic() + WAIT
    while not condition():
        assert time.monotonic() < deadline, f"still waiting after {WAIT:.0f} s for {what}"
        time.sleep(0.1)


DRIVER = """
import sys
import demo_tools
from terapix_fw import plugins
pm = plugins.get_plugin_manager()
pm.register(demo_tools, name="demo_tools")
plugins._tools.cache_clear()
from terapix_fw.runner import run_instructions
run_instructions(sys.argv[1], workdir=sys.argv[2], jobs=2, progress=False)
"""


def test_killed_run_leaves_no_worker_and_is_recorded_interrupted(tmp_path, fits_files, demo_tools):
    order = tmp_path / "order.log"
    xml = tmp_path / "run.xml"
    xml.write_text(textwrap.dedent(f"""\
        <instructions name="t" version="1">
          <parameters><param name="SLEEP">300</param></parameters>
          <inputs><inputset id="raw"><files pattern="{tmp_path}/raw/*.fits"/></inputset></inputs>
          <steps><step id="scale" tool="scale" fanout="file">
            <config><param name="SLEEP">${{SLEEP}}</param><param name="ORDER_LOG">{order}</param></config>
            <input set="raw"/></step></steps>
        </instructions>
        """))
    workdir = tmp_path / "work"
    proc = subprocess.Popen([sys.executable, "-c", DRIVER, str(xml), str(workdir)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    workers: set[int] = set()
    try:
        _wait_for(lambda: order.exists() and len(order.read_text().splitlines()) >= 2 or proc.poll() is not None,
                  "two units to start")
        assert proc.poll() is None, proc.stderr.read().decode()
        workers = _children(proc.pid)
        assert len(workers) >= 2  # the two pool workers (and the resource tracker)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        _wait_for(lambda: not any(process_alive(p) for p in workers), f"the pool workers {sorted(workers)} to end")
    finally:
        if proc.poll() is None:
            proc.kill()
        for pid in workers | _children(proc.pid):  # never leave the test's own processes behind
            if process_alive(pid):
                os.kill(pid, signal.SIGKILL)
        proc.wait()
        proc.stderr.close()

    from terapix_fw.db import schema as S
    from terapix_fw.db.engine import connect, dispose_all
    from terapix_fw.runner import run_instructions
    url = f"sqlite:///{workdir / 'rdbix.sqlite'}"
    with connect(url).connect() as conn:
        [(killed_id, status)] = conn.execute(select(S.runs.c.run_id, S.runs.c.status)).all()
    assert status == "running"
    summary = run_instructions(xml, workdir=workdir, jobs=1, progress=False, overrides={"SLEEP": "0"})
    assert summary["done"] == 3
    with connect(url).connect() as conn:
        statuses = dict(conn.execute(select(S.runs.c.run_id, S.runs.c.status)).all())
    dispose_all()
    assert statuses.pop(killed_id) == "interrupted"
    assert list(statuses.values()) == ["done"]


def test_unit_recorded_done_is_not_executed_again(tmp_path, fits_files, demo_tools):
    """Dask recomputes a finished task whose worker was lost while the client held its key: the task
    itself refuses to run a unit whose state file already holds its key, and says so in a file beside
    the unit's log (the log of the recorded execution is left as it was)."""
    from terapix_fw.execute import UnitSpec
    from terapix_fw.executors import run_unless_recorded
    order = tmp_path / "order.log"
    spec = UnitSpec(step="scale", unit="exp0", tool="scale", inputs=[str(fits_files[0])],
                    config_layers=[[("ORDER_LOG", str(order), "test")]], outdir=str(tmp_path / "out"),
                    log_path=str(tmp_path / "logs" / "exp0.log"), key="k" * 64, tool_ref="demo_tools:ScaleTool")
    marker = tmp_path / "state.json"
    first = run_unless_recorded(spec, str(marker))  # no state yet: runs
    assert first.status == "done" and order.read_text() == "scale/exp0\n"
    log_text = (tmp_path / "logs" / "exp0.log").read_text()
    marker.write_text(json.dumps({"key": spec.key, "products": []}))
    again = run_unless_recorded(spec, str(marker))
    assert again.status == "skipped" and "already recorded done" in again.error
    assert order.read_text() == "scale/exp0\n"  # the tool did not run again
    assert (tmp_path / "logs" / "exp0.log").read_text() == log_text
    assert "re-execution of scale/exp0 by the executor refused" in \
        (tmp_path / "logs" / "exp0.log.reexecution").read_text()
    marker.write_text(json.dumps({"key": "another configuration"}))
    assert run_unless_recorded(spec, str(marker)).status == "done"  # a different unit content runs


def test_dask_executor_task_checks_the_runner_state(tmp_path, fits_files, demo_tools):
    """The runner gives the Dask executor each unit's state file: a task Dask runs again after the runner
    recorded the unit done (as after a worker loss) does not execute the tool, and the future is released
    once the runner holds its result (the scheduler then forgets the key)."""
    import pytest
    pytest.importorskip("distributed")
    from terapix_fw.execute import UnitSpec
    from terapix_fw.executors import DaskExecutor
    order = tmp_path / "order.log"
    spec = UnitSpec(step="scale", unit="exp0", tool="scale", inputs=[str(fits_files[0])],
                    config_layers=[[("ORDER_LOG", str(order), "test")]], outdir=str(tmp_path / "out"),
                    log_path=str(tmp_path / "logs" / "exp0.log"), key="k" * 64, tool_ref="demo_tools:ScaleTool")
    marker = tmp_path / "state.json"
    executor = DaskExecutor(jobs=1)
    try:
        first = executor.submit(spec, 0, str(marker))
        assert executor.wait([first], timeout=WAIT) == [first]
        result, exc = executor.outcome(first)
        assert exc is None and result.status == "done" and order.read_text() == "scale/exp0\n"
        # released (asynchronously, on the client's loop): the client no longer wants the key
        _wait_for(lambda: executor.client.refcount.get(first.key, 0) == 0, "the key to be released")
        marker.write_text(json.dumps({"key": spec.key}))  # the runner records it done
        again = executor.submit(spec, 0, str(marker))  # what Dask's recomputation would run
        assert executor.wait([again], timeout=WAIT) == [again]
        result, exc = executor.outcome(again)
        assert exc is None and result.status == "skipped" and order.read_text() == "scale/exp0\n"
    finally:
        executor.close()


def test_run_stopped_by_ctrl_c_is_recorded_interrupted(tmp_path, fits_files, demo_tools, monkeypatch):
    import pytest
    from terapix_fw import executors
    from terapix_fw.db import schema as S
    from terapix_fw.db.engine import connect, dispose_all
    from terapix_fw.runner import run_instructions
    xml = tmp_path / "run.xml"
    xml.write_text(textwrap.dedent(f"""\
        <instructions name="t" version="1">
          <inputs><inputset id="raw"><files pattern="{tmp_path}/raw/*.fits"/></inputset></inputs>
          <steps><step id="scale" tool="scale" fanout="file"><input set="raw"/></step></steps>
        </instructions>
        """))

    def interrupted(self, futures, timeout=None):
        raise KeyboardInterrupt

    monkeypatch.setattr(executors.LocalExecutor, "wait", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run_instructions(xml, workdir=tmp_path / "work", jobs=1, progress=False)
    url = f"sqlite:///{tmp_path / 'work' / 'rdbix.sqlite'}"
    with connect(url).connect() as conn:
        assert conn.execute(select(S.runs.c.status)).scalars().all() == ["interrupted"]
    dispose_all()
    assert (tmp_path / "work" / ".terapix" / "run-t.lock").read_text() == ""  # its end was recorded
