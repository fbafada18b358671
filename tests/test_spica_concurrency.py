"""Image-by-image and release modes on one scheduler (Spica's ``run_jobs``), on a local pool and on a local
Dask cluster: with one worker slot the jobs start in priority order (the release file's per mode, changed by
the operator); with two slots an image-by-image job and a release job run at the same moment (each waits
for the other to arrive: no timing) and ``terapix spica status`` shows both modes in progress; the
astrometric solution their group shares runs once.  The jobs are small real instruction files of the test
tools (``scale``, ``stack``, ``meet``), shaped as Spica generates them: catalogues and ``scamp_<group>``,
then the job's own steps."""
from __future__ import annotations

import threading
from pathlib import Path

import pytest
from sqlalchemy import insert, select

from terapix_fw.db import schema as S
from terapix_fw.db.engine import connect
from terapix_fw.spica.grading import SpicaError
from terapix_fw.spica.jobs import run_jobs, set_priority

SOLUTION = """
    <step id="catalogs" tool="scale" fanout="file" outdir="exposures/catalogs">
      <config><param name="OUTPUT_NAME">{{stem}}.cat.fits</param></config>
      <input set="astrometric"/>
    </step>
    <step id="scamp_{group}" tool="stack" fanout="all" outdir="astrometry/{group}">
      <config><param name="OUTPUT_NAME">solution.fits</param></config>
      <input step="catalogs" kind="image"/>
    </step>"""

JOB = """<instructions name="{name}" version="T0001">
  <inputs>
    <inputset id="astrometric"><files pattern="{raw}/*.fits"/></inputset>
    <inputset id="stack"><files pattern="{raw}/{exposure}"/></inputset>
  </inputs>
  <steps>{solution}{meet}
    <step id="swarp_{name}" tool="stack" fanout="all" outdir="stacks">
      <config><param name="OUTPUT_NAME">{name}.fits</param></config>
      <input set="stack"/>{after_solution}
    </step>
  </steps>
</instructions>
"""

MEET = """
    <step id="meet_{name}" tool="meet" fanout="all" outdir="meetings">
      <config><param name="ARRIVE">{meet}/{name}</param><param name="PARTNERS">{partners}</param>
        <param name="GO">{meet}/go</param><param name="OUTPUT_NAME">{name}.txt</param></config>
      <input set="stack"/>
    </step>"""

FIELD = """<instructions name="{name}" version="T0001">
  <inputs><inputset id="stacks">{files}</inputset></inputs>
  <steps>
    <step id="chi2_{name}" tool="stack" fanout="all" outdir="stacks">
      <config><param name="OUTPUT_NAME">{name}.fits</param></config>
      <input set="stacks"/>
    </step>
  </steps>
</instructions>
"""


def add_job(url: str, base: Path, name: str, mode: str, priority: int, *, group: str | None = "gA",
            exposure: str = "exp0.fits", meet: list[str] = (), kind: str | None = None, members: list[str] = ()):
    """One Spica job: its instruction file (under ``base/spica``) and its ``spica_jobs`` row."""
    spica, work = base / "spica", base / "work"
    spica.mkdir(exist_ok=True)
    kind = kind or ("image" if mode == "image" else "stack")
    if kind == "field":
        files = "".join(f'<files pattern="{work}/stacks/{m}.fits"/>' for m in members)
        text = FIELD.format(name=name, files=files)
    else:
        meeting = base / "meet"
        meeting.mkdir(exist_ok=True)
        text = JOB.format(
            name=name, raw=base / "raw", exposure=exposure,
            solution=SOLUTION.format(group=group) if group else "",
            after_solution=f'\n      <input step="scamp_{group}" kind="sum"/>' if group else "",
            meet=MEET.format(name=name, meet=meeting, partners=",".join(str(meeting / p) for p in meet))
            if meet else "")
    xml = spica / f"{name}_spica.xml"
    xml.write_text(text)
    with connect(url).begin() as conn:
        conn.execute(insert(S.spica_jobs).values(
            name=name, version="T0001", mode=mode, kind=kind, priority=priority, astrometric_group=group,
            instruction_file=str(xml), workdir=str(work), status="pending"))


def rows(url: str) -> dict[str, dict]:
    with connect(url).connect() as conn:
        return {r.name: dict(r._mapping) for r in conn.execute(select(S.spica_jobs))}


def scamp_units(url: str, group: str) -> list[str]:
    with connect(url).connect() as conn:
        return conn.execute(select(S.units.c.status).join(S.steps, S.steps.c.id == S.units.c.step_pk)
                            .where(S.steps.c.step == f"scamp_{group}")).scalars().all()


@pytest.fixture
def url(tmp_path, fits_files):
    return f"sqlite:///{tmp_path / 'rdbix.sqlite'}"


def test_one_slot_starts_jobs_by_priority_and_solves_once(url, tmp_path, demo_tools):
    # the release file's priorities (Deep 10, Wide 5, image-by-image 1), then the operator's
    add_job(url, tmp_path, "D_g", "release", 10, exposure="exp0.fits")
    add_job(url, tmp_path, "D_r", "release", 10, exposure="exp1.fits")
    add_job(url, tmp_path, "W_r", "release", 5, exposure="exp2.fits")
    add_job(url, tmp_path, "exp2_T0001", "image", 1, exposure="exp2.fits")
    add_job(url, tmp_path, "D_gr_chi2", "release", 9, kind="field", members=["D_g", "D_r"])
    assert set_priority(url, "T0001", "image", 7) == ["exp2_T0001"]
    assert set_priority(url, "T0001", "D_r", 3) == ["D_r"]
    with pytest.raises(SpicaError, match="no job of release T0001"):
        set_priority(url, "T0001", "D_z*", 3)

    finished = run_jobs(url, "T0001", parallel=1, jobs=1)
    assert {r["name"]: r["status"] for r in finished} == dict.fromkeys(
        ["D_g", "D_r", "W_r", "exp2_T0001", "D_gr_chi2"], "done"), [(r["name"], r["error"]) for r in finished]
    jobs = rows(url)
    started = sorted(jobs, key=lambda n: jobs[n]["start"])
    # the field (9) waits for D_r (lowered to 3); the image-by-image exposure (raised to 7) overtakes Wide
    assert started == ["D_g", "exp2_T0001", "W_r", "D_r", "D_gr_chi2"]
    for a, b in zip(started, started[1:]):  # one slot: each job ended before the next started
        assert jobs[a]["end"] <= jobs[b]["start"]
    # the group's solution ran once, as its own run, before every job of the group; each job found it made
    with connect(url).connect() as conn:
        runs = {r.name: r for r in conn.execute(select(S.runs))}
    assert runs["astrometry_gA"].start <= jobs["D_g"]["start"]
    assert sorted(scamp_units(url, "gA")) == ["done"] + ["skipped"] * 4

    # a forced re-run of the group's stacks (`terapix spica run --rerun`): the solution is made again
    # once, by its own run, and each job re-makes its own steps but finds the solution made
    from terapix_fw.spica.jobs import reset_job
    for name in ("D_g", "D_r", "W_r"):
        reset_job(url, name, "T0001")
    again = run_jobs(url, "T0001", parallel=1, jobs=1, names=["D_g", "D_r", "W_r"], force=True)
    assert {r["name"]: r["status"] for r in again} == dict.fromkeys(["D_g", "D_r", "W_r"], "done")
    assert sorted(scamp_units(url, "gA")) == ["done"] * 2 + ["skipped"] * 7


def test_a_failed_solution_blocks_its_jobs_only(url, tmp_path, demo_tools):
    add_job(url, tmp_path, "D_g", "release", 10, exposure="exp0.fits")
    add_job(url, tmp_path, "D_gr_chi2", "release", 9, kind="field", members=["D_g"])
    add_job(url, tmp_path, "exp2_T0001", "image", 1, group="gB", exposure="exp2.fits")
    text = (tmp_path / "spica" / "D_g_spica.xml").read_text()  # gA's catalogues fail on every exposure
    (tmp_path / "spica" / "D_g_spica.xml").write_text(text.replace(
        "<param name=\"OUTPUT_NAME\">{stem}.cat.fits</param>",
        "<param name=\"OUTPUT_NAME\">{stem}.cat.fits</param><param name=\"FAIL_ON\">exp</param>"))
    finished = {r["name"]: r for r in run_jobs(url, "T0001", parallel=1, jobs=1)}
    assert finished["D_g"]["status"] == "failed" and "astrometric solution gA failed" in finished["D_g"]["error"]
    assert finished["D_gr_chi2"]["status"] == "failed" and "D_g" in finished["D_gr_chi2"]["error"]
    assert finished["exp2_T0001"]["status"] == "done"  # another group: not blocked
    assert rows(url)["D_g"]["start"] is None  # never started


def _run_in_background(url: str, **kw):
    out: dict = {}

    def target():
        try:
            out["finished"] = run_jobs(url, "T0001", **kw)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the test's thread
            out["error"] = exc

    thread = threading.Thread(target=target)
    thread.start()
    return thread, out


@pytest.fixture(params=["local", "dask"])
def backend(request, tmp_path):
    """``None`` for the local pool (threads running each job's runner); a ``LocalCluster`` of 2 workers."""
    if request.param == "local":
        yield None
        return
    pytest.importorskip("distributed")
    import dask
    from dask.distributed import LocalCluster
    # a worker runs a job's units in a process pool: its process must be allowed children (not a daemon)
    with dask.config.set({"distributed.worker.daemon": False}):
        cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                               dashboard_address=None, local_directory=str(tmp_path / "dask"))
    try:
        from dask.distributed import Client
        from meeting_tools import register_test_tools
        with Client(cluster) as client:  # the workers' plugin managers learn the test tools
            client.run(register_test_tools)
        yield cluster.scheduler_address
    finally:
        cluster.close()


def test_two_slots_run_both_modes_at_once(url, tmp_path, demo_tools, meeting_tools, backend, capsys):
    from meeting_tools import wait_for_files

    from terapix_fw.cli import main
    meet = tmp_path / "meet"
    # one release job and one image-by-image job, each waiting for the other to arrive; a third waits
    add_job(url, tmp_path, "D_g", "release", 10, exposure="exp0.fits", meet=["D_g", "exp1_T0001"])
    add_job(url, tmp_path, "exp1_T0001", "image", 10, exposure="exp1.fits", meet=["D_g", "exp1_T0001"])
    add_job(url, tmp_path, "W_r", "release", 5, exposure="exp2.fits")
    thread, out = _run_in_background(url, parallel=2, jobs=1, scheduler=backend)
    try:
        # both arrived: each is running; the operator's status shows both modes in progress
        assert wait_for_files([meet / "D_g", meet / "exp1_T0001"], timeout=180), out.get("error")
        assert main(["spica", "status", "--release", "T0001", "--db", url]) == 0
        text = capsys.readouterr().out
        block = text.split("in progress:")[1].split("remaining by component")[0]
        lines = {line.split()[0]: line.split()[1] for line in block.strip().splitlines()}
        assert lines == {"D_g": "release", "exp1_T0001": "image"}, text
        assert "W_r" in text.split("pending:")[1]  # no slot left for it
    finally:
        (meet / "go").write_text("go\n")
        thread.join(timeout=300)
    assert not thread.is_alive() and "error" not in out, out.get("error")
    assert {r["name"]: r["status"] for r in out["finished"]} == dict.fromkeys(["D_g", "exp1_T0001", "W_r"], "done")
    jobs = rows(url)
    d, e, w = jobs["D_g"], jobs["exp1_T0001"], jobs["W_r"]
    assert d["start"] < e["end"] and e["start"] < d["end"]   # recorded intervals overlap
    assert w["start"] >= min(d["end"], e["end"])              # the third took the first free slot
    assert sorted(scamp_units(url, "gA")) == ["done"] + ["skipped"] * 3  # one solution for the three
