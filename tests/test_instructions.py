"""Instruction files: malformed XML, schema violations, unknown tools and parameters, with exact messages."""
from __future__ import annotations

import textwrap

import pytest

from terapix_fw.errors import InstructionError, UnknownTool
from terapix_fw.graph import build_graph
from terapix_fw.instructions import load_instructions

GOOD = """\
<?xml version="1.0"?>
<instructions name="t" version="1">
  <parameters><param name="RAW">raw</param></parameters>
  <inputs><inputset id="raw"><files pattern="${RAW}/*.fits"/></inputset></inputs>
  <steps>
    <step id="scale" tool="scale" fanout="extension" priority="3">
      <config><param name="FACTOR">2</param><param name="OUTPUT_NAME">{stem}.{ext}.fits</param></config>
      <input set="raw"/>
      <output kind="image"/>
    </step>
    <step id="sum" tool="stack" fanout="group" group-by="FILTER">
      <config><param name="OUTPUT_NAME">sum_{group}.fits</param></config>
      <input step="scale" kind="image"/>
    </step>
    <step id="all" tool="stack" depends="sum" priority="9">
      <input step="scale" kind="image"/>
    </step>
  </steps>
</instructions>
"""


def write(tmp_path, text, name="run.xml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def test_valid_file_and_graph(tmp_path, fits_files, demo_tools):
    doc = load_instructions(write(tmp_path, GOOD))
    assert [s.id for s in doc.steps] == ["scale", "sum", "all"]
    graph = build_graph(doc)
    scale = graph.by_step("scale")
    assert [u.id for u in scale] == ["exp0.1", "exp0.2", "exp1.1", "exp1.2", "exp2.1", "exp2.2"]
    assert {u.extension for u in scale} == {1, 2}
    sums = graph.by_step("sum")
    assert [(u.id, len(u.items)) for u in sums] == [("g", 2), ("r", 4)]
    assert sums[1].deps == {"scale/exp1.1", "scale/exp1.2", "scale/exp2.1", "scale/exp2.2"}
    (last,) = graph.by_step("all")
    assert last.deps == {u.key for u in scale} | {u.key for u in sums}
    order = [u.key for u in graph.order()]
    assert order.index("all/all") > max(order.index(u.key) for u in sums)


def test_malformed_xml(tmp_path, demo_tools):
    path = write(tmp_path, '<instructions name="t" version="1">\n  <steps>\n  </instructions>\n')
    with pytest.raises(InstructionError) as err:
        load_instructions(path)
    assert str(err.value) == (f"{path}:3:18: malformed XML: Opening and ending tag mismatch: "
                              "steps line 2 and instructions")


def test_entities_are_refused(tmp_path, demo_tools):
    path = write(tmp_path, '<?xml version="1.0"?>\n<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]>\n'
                           '<instructions name="t" version="1"><steps/></instructions>\n')
    with pytest.raises(InstructionError, match="DOCTYPE and ENTITY declarations are not allowed"):
        load_instructions(path)


def test_schema_violation_names_line_and_element(tmp_path, demo_tools):
    text = GOOD.replace('fanout="extension"', 'fanout="ccd"')
    path = write(tmp_path, text)
    with pytest.raises(InstructionError) as err:
        load_instructions(path)
    message = str(err.value)
    assert message.startswith(f"{path}:6:35: ")
    assert "does not follow instructions.xsd: element <step>, attribute 'fanout'" in message
    assert "'ccd' is not an element of the set" in message


def test_missing_required_attribute(tmp_path, demo_tools):
    path = write(tmp_path, GOOD.replace('<step id="sum" tool="stack"', '<step id="sum"'))
    with pytest.raises(InstructionError) as err:
        load_instructions(path)
    assert f"{path}:11:5: " in str(err.value)
    assert "The attribute 'tool' is required but missing" in str(err.value)


def test_unknown_tool(tmp_path, demo_tools):
    path = write(tmp_path, GOOD.replace('tool="stack" fanout="group"', 'tool="stak" fanout="group"'))
    with pytest.raises(UnknownTool) as err:
        load_instructions(path)
    assert str(err.value).startswith(f"{path}:11:20: element <step id=\"sum\">: unknown tool stak; did you mean stack?")


def test_unknown_parameter_with_suggestion(tmp_path, demo_tools):
    path = write(tmp_path, GOOD.replace('<param name="FACTOR">2</param>', '<param name="FACTR">2</param>'))
    with pytest.raises(InstructionError) as err:
        load_instructions(path)
    assert str(err.value) == (f"{path}:7:22: element <param>: unknown parameter FACTR for tool scale; "
                              "did you mean FACTOR?")


def test_mistyped_parameter_value(tmp_path, demo_tools):
    path = write(tmp_path, GOOD.replace('<param name="FACTOR">2</param>', '<param name="FACTOR">two</param>'))
    with pytest.raises(InstructionError) as err:
        load_instructions(path)
    assert str(err.value) == (f"{path}:7:22: element <param>: bad value 'two' for parameter FACTOR of tool scale; "
                              "expected a number")


def test_unknown_substitution_parameter(tmp_path, demo_tools):
    path = write(tmp_path, GOOD.replace("${RAW}", "${RAWDIR}"))
    with pytest.raises(InstructionError) as err:
        load_instructions(path)
    assert str(err.value) == f"{path}:4:37: element <files>: unknown parameter ${{RAWDIR}} (parameters: INSTRUCTIONS_DIR, RAW)"


def test_bad_config_file_keyword(tmp_path, demo_tools):
    (tmp_path / "scale.conf").write_text("FACTOR 2\nSLEPP 1\n")
    path = write(tmp_path, GOOD.replace("<config><param name=\"FACTOR\">2</param>",
                                        "<config file=\"scale.conf\"><param name=\"FACTOR\">2</param>"))
    with pytest.raises(InstructionError) as err:
        load_instructions(path)
    assert str(err.value) == (f"{tmp_path / 'scale.conf'}:2: config file: unknown parameter SLEPP for tool scale; "
                              "did you mean SLEEP?")


def test_dependency_cycle_and_unknown_references(tmp_path, demo_tools):
    cyc = GOOD.replace('<step id="scale" tool="scale"', '<step id="scale" tool="scale" depends="all"')
    with pytest.raises(InstructionError, match="cycle: "):
        load_instructions(write(tmp_path, cyc))
    bad = GOOD.replace('<input step="scale" kind="image"/>\n    </step>\n    <step id="all"',
                       '<input step="scal" kind="image"/>\n    </step>\n    <step id="all"')
    with pytest.raises(InstructionError, match="unknown step 'scal'"):
        load_instructions(write(tmp_path, bad))
    wrong_kind = GOOD.replace('<input step="scale" kind="image"/>\n    </step>\n    <step id="all"',
                              '<input step="scale" kind="catalog"/>\n    </step>\n    <step id="all"')
    with pytest.raises(InstructionError, match="produces image, not 'catalog'"):
        load_instructions(write(tmp_path, wrong_kind))


def test_overrides_replace_parameters(tmp_path, fits_files, demo_tools):
    (tmp_path / "other").mkdir()
    doc = load_instructions(write(tmp_path, GOOD), overrides={"RAW": "other"})
    assert doc.inputsets["raw"].patterns == ["other/*.fits"]
    with pytest.raises(InstructionError, match="matches nothing"):
        build_graph(doc)
