"""The one safe XML parser (terapix_fw.xmlutil): DOCTYPE, DTD and entity declarations refused whatever the
encoding, size and depth bounds, one-line errors naming the file; instruction files bounded in size and in
parameter substitution; ``terapix validate`` finds the output names ``terapix run`` refuses (issue 16,
findings 2 and 10)."""
from __future__ import annotations

import textwrap

import pytest

from terapix_fw.dbclient.xmldoc import DocumentError, parse_documents, to_xml
from terapix_fw.db.ops import Document
from terapix_fw.errors import InstructionError
from terapix_fw.instructions import load_instructions
from terapix_fw.xmlutil import parse_xml

GOOD = to_xml(Document(id="good-1").add("node", name="n1", free_disk=10))
ENTITY_DOC = (b'<!DOCTYPE document [<!ENTITY x "expanded-by-the-parser">]>'
              + GOOD.replace(b'name="n1"', b'name="&x;"'))
EXTERNAL_DTD_DOC = b'<!DOCTYPE document SYSTEM "file:///etc/hostname">' + GOOD
EXTERNAL_ENTITY_IN_CONTENT = (b'<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/hostname">]>'
                              b'<instructions name="t" version="1"><description>&e;</description></instructions>')


def _utf16(text: bytes) -> bytes:
    return ('<?xml version="1.0" encoding="UTF-16"?>' + text.decode()).encode("utf-16")


@pytest.mark.parametrize("data", [ENTITY_DOC, _utf16(ENTITY_DOC), EXTERNAL_DTD_DOC, _utf16(EXTERNAL_DTD_DOC),
                                  ('<?xml version="1.0" encoding="UTF-32"?>'
                                   + ENTITY_DOC.decode()).encode("utf-32")],
                         ids=["entity", "entity-utf16", "external-dtd", "external-dtd-utf16", "entity-utf32"])
def test_dbclient_document_with_doctype_refused_whatever_the_encoding(data):
    with pytest.raises(DocumentError) as err:
        parse_documents(data, label="request from 127.0.0.1")
    assert str(err.value) == "request from 127.0.0.1: DOCTYPE and ENTITY declarations are not allowed"


def test_utf16_document_without_doctype_still_accepted():
    [doc] = parse_documents(_utf16(GOOD))
    assert doc.instructions == [("node", {"name": "n1", "free_disk": 10})]


def test_external_entity_in_content_is_one_line_not_a_schema_crash(tmp_path, capsys):
    path = tmp_path / "evil.xml"
    path.write_bytes(EXTERNAL_ENTITY_IN_CONTENT)
    with pytest.raises(InstructionError) as err:
        load_instructions(path)
    assert str(err.value) == f"{path}: DOCTYPE and ENTITY declarations are not allowed"
    from terapix_fw.cli import main
    assert main(["validate", str(path)]) == 2
    out = capsys.readouterr()
    assert out.err == f"terapix: error: {path}: DOCTYPE and ENTITY declarations are not allowed\n"
    assert "Traceback" not in out.err + out.out


def test_depth_and_size_bounds_name_the_file(tmp_path):
    deep = b"<a>" * 100 + b"</a>" * 100
    with pytest.raises(InstructionError, match=r"^deep\.xml:\d+: elements nested deeper than 64 levels$"):
        parse_xml(deep, "deep.xml")
    path = tmp_path / "big.xml"
    path.write_bytes(b"<a>" + b" " * 2000 + b"</a>")
    with pytest.raises(InstructionError) as err:
        parse_xml(path, max_bytes=1000)
    assert str(err.value) == f"{path}: XML file of 2007 bytes exceeds the limit of 1000 bytes"


def test_votable_prolog_check(tmp_path):
    from terapix_fw.xmlutil import check_xml_prolog
    good, bad = tmp_path / "good.xml", tmp_path / "bad.xml"
    good.write_bytes(b'<?xml version="1.0"?><VOTABLE><RESOURCE/></VOTABLE>')
    bad.write_bytes(_utf16(b'<!DOCTYPE VOTABLE [<!ENTITY a "aaaa">]><VOTABLE>&a;</VOTABLE>'))
    check_xml_prolog(good)
    with pytest.raises(InstructionError, match="DOCTYPE and ENTITY declarations are not allowed"):
        check_xml_prolog(bad)


# -- instruction files: parameter substitution and size --------------------------------------------

def _write(tmp_path, text: str, name: str = "run.xml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def test_parameter_substitution_bounded_in_output_size(tmp_path, demo_tools):
    # ${P1} = ${P0} x 10 ... ${P9}: 10**9 copies of P0 if expanded; refused before memory runs out
    params = ['<param name="P0">xxxxxxxxxx</param>'] + [
        f'<param name="P{i}">{"${P%d}" % (i - 1) * 10}</param>' for i in range(1, 10)]
    path = _write(tmp_path, f"""\
        <instructions name="t" version="1">
          <parameters>{''.join(params)}</parameters>
          <steps><step id="s" tool="stack" outdir="${{P9}}"/></steps>
        </instructions>
        """)
    with pytest.raises(InstructionError) as err:
        load_instructions(path)
    assert "element <param>: substituting parameters gives more than 65536 characters" in str(err.value)
    assert str(err.value).startswith(f"{path}:")


def test_huge_instruction_file_refused_before_reading(tmp_path, demo_tools):
    from terapix_fw import instructions
    path = tmp_path / "huge.xml"
    with open(path, "wb") as handle:
        handle.write(b'<instructions name="t" version="1"><parameters>')
        handle.seek(instructions.MAX_INSTRUCTION_BYTES)
        handle.write(b'</parameters><steps/></instructions>')
    with pytest.raises(InstructionError) as err:
        load_instructions(path)
    assert str(err.value) == (f"{path}: XML file of {path.stat().st_size} bytes exceeds the limit of "
                              f"{instructions.MAX_INSTRUCTION_BYTES} bytes")


@pytest.mark.parametrize("where", ["outdir", "param"])
@pytest.mark.parametrize("name", ["../../x", "/tmp/elsewhere", "link"])
def test_validate_finds_output_names_run_refuses(tmp_path, demo_tools, where, name):
    (tmp_path / "outside").mkdir()
    # the link is where the name is resolved: in the work directory for an outdir, in the outdir for a file
    linkdir = tmp_path / "wd" / ("s" if where == "param" else "")
    linkdir.mkdir(parents=True)
    (linkdir / "link").symlink_to(tmp_path / "outside")
    target = name
    if where == "outdir":
        step = f'<step id="s" tool="stack" outdir="{target}"><input files="*.fits"/></step>'
    else:
        step = (f'<step id="s" tool="stack"><config><param name="OUTPUT_NAME">{target}/sum.fits</param>'
                f'</config><input files="*.fits"/></step>')
    path = _write(tmp_path, f'<instructions name="t" version="1"><steps>{step}</steps></instructions>')
    with pytest.raises(InstructionError) as err:
        load_instructions(path, workdir=tmp_path / "wd")
    assert "escapes" in str(err.value) and str(err.value).startswith(f"{path}:")
    from terapix_fw.cli import main
    assert main(["validate", str(path), "--workdir", str(tmp_path / "wd")]) == 2
