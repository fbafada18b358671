"""``terapix validate`` checks every file it is given, recognises each kind of terapix-fw document by
its root element, and reports every fault of a file, in file order, not only the first."""
from __future__ import annotations

from pathlib import Path

from terapix_fw.cli import main

ROOT = Path(__file__).resolve().parents[1]

BAD = """\
<?xml version="1.0"?>
<instructions name="x" version="1">
  <inputs><inputset id="raw"><files pattern="raw/*.fits"/></inputset></inputs>
  <steps>
    <step id="sex" tool="sextractor">
      <config><param name="DETECT_TRESH">2</param>
              <param name="BACK_SIZE">abc</param></config>
      <input set="raww"/>
    </step>
    <step id="ww" tool="weightwatchr"><input set="raw"/></step>
  </steps>
</instructions>
"""

SCHEMA_BAD = """\
<?xml version="1.0"?>
<instructions name="x" version="1" colour="blue">
  <steps>
    <step id="a" tool="sextractor" fanout="sometimes"/>
  </steps>
</instructions>
"""


def test_every_fault_of_a_file_in_file_order(tmp_path, capsys):
    (tmp_path / "bad.xml").write_text(BAD)
    assert main(["validate", str(tmp_path / "bad.xml")]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 4, lines
    assert "unknown parameter DETECT_TRESH" in lines[0] and "did you mean DETECT_THRESH" in lines[0]
    assert "BACK_SIZE" in lines[1] and "expected an integer" in lines[1]
    assert "unknown input set 'raww'" in lines[2]
    assert "unknown tool weightwatchr; did you mean weightwatcher" in lines[3]
    assert [int(line.split(":")[3]) for line in lines] == [6, 7, 8, 10]  # terapix: error: FILE:LINE:...


def test_every_schema_error_is_reported(tmp_path, capsys):
    (tmp_path / "s.xml").write_text(SCHEMA_BAD)
    assert main(["validate", str(tmp_path / "s.xml")]) == 2
    err = capsys.readouterr().err
    assert "colour" in err and "sometimes" in err and len(err.strip().splitlines()) >= 2


def test_each_document_type_is_recognised_and_every_file_checked(tmp_path, capsys):
    (tmp_path / "bad.xml").write_text(BAD)
    (tmp_path / "other.xml").write_text("<catalogue/>")
    files = [tmp_path / "bad.xml", ROOT / "instructions" / "survey_demo.xml", tmp_path / "other.xml",
             ROOT / "instructions" / "demo.xml"]
    assert main(["validate", *map(str, files)]) == 2
    captured = capsys.readouterr()
    assert "survey_demo.xml: valid simulated survey description" in captured.out
    assert "demo.xml: valid instruction file" in captured.out
    assert "root element <catalogue> is not a terapix-fw document" in captured.err
    assert "2 of 4 file(s) invalid" in captured.err


def test_a_valid_file_exits_zero(capsys):
    assert main(["validate", str(ROOT / "instructions" / "survey_demo.xml")]) == 0
