"""The runner on the local process pool: fan-out, priorities, retries, tool errors, resume, history."""
from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from lxml import etree

from terapix_fw.runner import run_instructions

PIPELINE = """\
<?xml version="1.0"?>
<instructions name="t" version="1">
  <parameters><param name="FACTOR">2</param><param name="LOG">order.log</param></parameters>
  <inputs><inputset id="raw"><files pattern="raw/*.fits"/></inputset></inputs>
  <steps>
    <step id="scale" tool="scale" fanout="extension" priority="1">
      <config>
        <param name="FACTOR">${FACTOR}</param>
        <param name="OUTPUT_NAME">{stem}.{ext}.fits</param>
        <param name="ORDER_LOG">${LOG}</param>
        EXTRA_PARAMS
      </config>
      <input set="raw"/>
    </step>
    <step id="sum" tool="stack" fanout="group" group-by="FILTER">
      <config><param name="OUTPUT_NAME">sum_{group}.fits</param><param name="ORDER_LOG">${LOG}</param></config>
      <input step="scale" kind="image"/>
    </step>
    <step id="urgent" tool="scale" fanout="file" priority="9">
      <config><param name="OUTPUT_NAME">{stem}_u.fits</param><param name="ORDER_LOG">${LOG}</param></config>
      <input set="raw"/>
    </step>
  </steps>
</instructions>
"""


@pytest.fixture
def pipeline(tmp_path, fits_files, demo_tools):
    def make(extra: str = "") -> Path:
        path = tmp_path / "run.xml"
        text = PIPELINE.replace("${LOG}", str(tmp_path / "order.log")).replace("EXTRA_PARAMS", extra)
        path.write_text(textwrap.dedent(text))
        return path
    return make


def order(tmp_path) -> list[str]:
    return (tmp_path / "order.log").read_text().split()


def history_units(summary) -> dict[str, etree._Element]:
    root = etree.parse(summary["history"]).getroot()
    return {f"{s.get('id')}/{u.get('id')}": u for s in root.findall("step") for u in s.findall("unit")}


def test_products_fanout_and_priorities(tmp_path, pipeline):
    summary = run_instructions(pipeline(), tmp_path / "work", jobs=1, progress=False)
    assert summary["done"] == 6 + 2 + 3 and summary["failed"] == 0
    work = tmp_path / "work"
    assert sorted(p.name for p in (work / "scale").glob("*.fits")) == [
        "exp0.1.fits", "exp0.2.fits", "exp1.1.fits", "exp1.2.fits", "exp2.1.fits", "exp2.2.fits"]
    # the r group sums extensions 1 and 2 of exp1 and exp2, each scaled by 2
    expected_r = 2 * (10 + 11 + 20 + 21)
    assert fits.getdata(work / "sum" / "sum_r.fits")[0, 0] == expected_r
    assert fits.getdata(work / "sum" / "sum_g.fits")[0, 0] == 2 * (0 + 1)
    # with one worker, the priority-9 step runs before every priority-1 unit
    seen = order(tmp_path)
    assert seen[:3] == ["urgent/exp0", "urgent/exp1", "urgent/exp2"]
    assert all(s.startswith("sum/") for s in seen[-2:])
    # no temporary file is left behind
    assert not list(work.rglob("*.part"))


def test_history_and_equivalent_commands(tmp_path, pipeline):
    summary = run_instructions(pipeline(), tmp_path / "work", jobs=2, progress=False)
    root = etree.parse(summary["history"]).getroot()
    assert root.get("name") == "t" and root.get("host")
    scale = root.find("step[@id='scale']")
    assert scale.get("tool") == "scale" and scale.get("version") == "1.2"
    assert "-FACTOR 2" in scale.find("config/COMMAND").text
    unit = scale.find("unit[@id='exp1.2']")
    (inp,) = unit.findall("input")
    assert inp.get("path").endswith("raw/exp1.fits") and len(inp.get("sha256")) == 64
    (out,) = unit.findall("output")
    assert out.get("kind") == "image" and out.get("path").endswith("scale/exp1.2.fits")
    script = Path(summary["script"]).read_text()
    assert "terapix tool scale" in script and "exp1.fits[2]' -FACTOR 2.0 -OUTPUT_NAME exp1.2.fits" in script


def test_tool_error_is_not_retried_and_blocks_downstream(tmp_path, pipeline, capsys):
    path = pipeline('<param name="FAIL_ON">exp1</param>')
    summary = run_instructions(path, tmp_path / "work", jobs=2, retries=3, progress=False)
    assert summary["failed"] == 2 and summary["blocked"] == 1  # scale/exp1.1 and exp1.2; sum/r downstream
    units = history_units(summary)
    failed = {k for k, u in units.items() if u.get("status") == "failed"}
    assert {"scale/exp1.1", "scale/exp1.2"} <= failed
    assert units["sum/r"].get("status") == "blocked"
    assert units["sum/g"].get("status") == "done"
    # each failing unit ran exactly once: a deterministic error is not retried
    assert order(tmp_path).count("scale/exp1.1") == 1
    assert units["scale/exp1.1"].get("attempts") == "1"
    err = capsys.readouterr().err
    assert "unit scale/exp1.1 failed: ToolError:" in err and "refused because its name contains 'exp1'" in err
    log = (tmp_path / "work" / "logs" / "scale" / "exp1.1.log").read_text()
    assert "Traceback" in log and "refused because" in log


def test_lost_worker_is_retried(tmp_path, pipeline):
    marker = tmp_path / "killed-once"
    summary = run_instructions(pipeline(f'<param name="KILL_ONCE">{marker}</param>'), tmp_path / "work",
                               jobs=2, retries=2, progress=False)
    assert marker.exists()  # a worker really was killed
    assert summary["failed"] == 0 and summary["done"] == 11
    units = history_units(summary)
    assert max(int(u.get("attempts")) for k, u in units.items() if k.startswith("scale/")) == 2


def test_lost_worker_without_retries_fails(tmp_path, pipeline):
    marker = tmp_path / "killed-once"
    summary = run_instructions(pipeline(f'<param name="KILL_ONCE">{marker}</param>'), tmp_path / "work",
                               jobs=1, retries=0, progress=False)
    units = history_units(summary)
    lost = [u for u in units.values() if u.get("status") == "failed"]
    assert lost and "worker lost 1 times: BrokenProcessPool" in lost[0].findtext("error")


def test_resume_skips_up_to_date_units(tmp_path, pipeline, fits_files):
    work = tmp_path / "work"
    first = run_instructions(pipeline(), work, jobs=2, progress=False)
    assert first["done"] == 11
    product = work / "scale" / "exp0.1.fits"
    stamp = product.stat().st_mtime_ns
    again = run_instructions(pipeline(), work, jobs=2, progress=False)
    assert again["skipped"] == 11 and again["done"] == 0
    assert product.stat().st_mtime_ns == stamp
    # a changed input re-runs only what depends on it
    with fits.open(fits_files[2], mode="update") as hdul:
        hdul[1].data[:] = 100.0
    changed = run_instructions(pipeline(), work, jobs=2, progress=False)
    assert changed["done"] == 2 + 1 + 1  # exp2.1, exp2.2, urgent/exp2, sum/r
    assert fits.getdata(work / "sum" / "sum_r.fits")[0, 0] == 2 * (10 + 11 + 100 + 21)
    # a missing product re-runs its unit; a changed configuration re-runs the step
    (work / "sum" / "sum_g.fits").unlink()
    assert run_instructions(pipeline(), work, jobs=2, progress=False)["done"] == 1
    more = run_instructions(pipeline(), work, jobs=2, overrides={"FACTOR": "3"}, progress=False)
    assert more["done"] == 6 + 2 and more["skipped"] == 3
    assert run_instructions(pipeline(), work, jobs=2, force=True, progress=False)["done"] == 11


def test_atomic_product_never_half_written(tmp_path):
    from terapix_fw.atomic import atomic_path

    final = tmp_path / "out.fits"
    final.write_text("previous version")
    with pytest.raises(RuntimeError):
        with atomic_path(final) as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed while writing")
    assert final.read_text() == "previous version"
    assert [p.name for p in tmp_path.iterdir()] == ["out.fits"]


def test_output_names_are_confined_to_the_work_directory(tmp_path, pipeline):
    path = pipeline().read_text().replace("{stem}_u.fits", "../../{stem}_escape.fits")
    (tmp_path / "run.xml").write_text(path)
    summary = run_instructions(tmp_path / "run.xml", tmp_path / "work", jobs=2, progress=False)
    units = history_units(summary)
    assert units["urgent/exp0"].get("status") == "failed"
    assert "escapes its directory" in units["urgent/exp0"].findtext("error")
    assert not list(tmp_path.glob("*escape.fits"))


def test_per_input_products_follow_input_order():
    from terapix_fw.runner import _match_by_stem

    heads = ["/w/scamp/700002p.head", "/w/scamp/700001p.head", "/w/scamp/700003p.head"]
    inputs = ["/raw/700001p.fits", "/raw/700003p.fits"]
    assert _match_by_stem(heads, inputs) == ["/w/scamp/700001p.head", "/w/scamp/700003p.head"]
    # ambiguous or missing matches leave the list alone
    assert _match_by_stem(heads, ["/raw/700009p.fits"]) == heads
    assert _match_by_stem(["/w/a.weight.fits"], inputs) == ["/w/a.weight.fits"]


def test_failure_blocks_dependents_transitively(tmp_path, pipeline):
    # a third level (sum of the group sums) must be blocked through the blocked sum/r, not left waiting
    text = pipeline('<param name="FAIL_ON">exp1</param>').read_text().replace("  </steps>", """\
    <step id="total" tool="stack" fanout="all">
      <config><param name="OUTPUT_NAME">total.fits</param></config>
      <input step="sum" kind="sum"/>
    </step>
  </steps>""")
    path = tmp_path / "chain.xml"
    path.write_text(text)
    summary = run_instructions(path, tmp_path / "work", jobs=2, progress=False)
    units = history_units(summary)
    assert units["sum/r"].get("status") == "blocked"
    assert units["total/all"].get("status") == "blocked"
    assert summary["failed"] == 2 and summary["blocked"] == 2 and summary["done"] == 4 + 1 + 3


def test_units_writing_the_same_file_are_refused_before_running(tmp_path, pipeline, capsys):
    """Two units of a step with one fixed output name would overwrite each other: ``terapix validate``
    and the runner refuse the file before anything runs, naming both units, the keyword and the file."""
    from terapix_fw.cli import main
    from terapix_fw.errors import InstructionError

    text = pipeline().read_text().replace("{stem}_u.fits", "same.fits")
    (tmp_path / "run.xml").write_text(text)
    with pytest.raises(InstructionError, match=r"units urgent/exp0 and urgent/exp1 would both write same\.fits "
                                               r"\(OUTPUT_NAME = 'same\.fits'\)"):
        run_instructions(tmp_path / "run.xml", tmp_path / "work", jobs=1, progress=False)
    assert not (tmp_path / "work" / "urgent").exists()
    assert main(["validate", str(tmp_path / "run.xml")]) == 2
    assert "would both write same.fits" in capsys.readouterr().err
    # a token that is empty in this fan-out ({group} in a per-file step) is caught the same way
    (tmp_path / "run.xml").write_text(pipeline().read_text().replace("{stem}_u.fits", "u{group}.fits"))
    assert main(["validate", str(tmp_path / "run.xml")]) == 2
    (tmp_path / "run.xml").write_text(pipeline().read_text())
    assert main(["validate", str(tmp_path / "run.xml")]) == 0
    assert "configured output names, no clash" in capsys.readouterr().out


def test_products_of_products_are_named_after_them(tmp_path, pipeline):
    """{stem} of a unit whose input is the product of a unit that combined several files (a stack) is
    that product's stem, not the first raw file's (``stack_catalogs/700001p.ldac`` for the g stack)."""
    text = pipeline().read_text().replace("  </steps>", """\
    <step id="sumscale" tool="scale" fanout="file">
      <config><param name="OUTPUT_NAME">{stem}_x.fits</param></config>
      <input step="sum" kind="sum"/>
    </step>
  </steps>""")
    (tmp_path / "run.xml").write_text(text)
    summary = run_instructions(tmp_path / "run.xml", tmp_path / "work", jobs=1, progress=False)
    assert summary["failed"] == 0
    assert sorted(p.name for p in (tmp_path / "work" / "sumscale").glob("*.fits")) == ["sum_g_x.fits",
                                                                                      "sum_r_x.fits"]
    # the history's commands repeat the same names
    units = history_units(summary)
    assert "sum_g_x.fits" in etree.tostring(units["sumscale/g"]).decode()