"""dbClient documents: XML round trip of every instruction, the committed XSD is the generated one,
hostile XML refused, and the client spool (durable, ordered, kept while the server is away)."""
from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from terapix_fw.db.ops import OPS, Document, RecordError
from terapix_testing.rdbix import make_documents
from terapix_fw.dbclient.client import Client
from terapix_fw.dbclient.xmldoc import DocumentError, batch_xml, build_xsd, parse_documents, to_xml

REPO = Path(__file__).resolve().parents[1]


def test_committed_schema_is_generated_one():
    assert (REPO / "schemas" / "dbclient.xsd").read_text() == build_xsd(), \
        "regenerate: python -m terapix_fw.dbclient.xmldoc > schemas/dbclient.xsd"


def _sample(op):
    """A value of every field of ``op``."""
    values = {"str": "v'<&>\"\n\tx", "int": -7, "float": 1.25e-3, "bool": True,
              "time": dt.datetime(2004, 5, 6, 7, 8, 9, 123456, tzinfo=dt.timezone.utc)}
    data = {}
    for f in OPS[op].fields:
        if f.choices:
            data[f.name] = f.choices[-1]
        elif f.type in values:
            data[f.name] = values[f.type]
        elif f.type == "map":
            data[f.name] = {"K1": "a b", "K'2": ""}
        elif f.type == "list":
            data[f.name] = ["x", "", "y z"]
        else:
            data[f.name] = [{rf.name: (rf.choices[0] if rf.choices else values[rf.type]) for rf in f.row}]
    return data


@pytest.mark.parametrize("op", list(OPS))
def test_every_instruction_round_trips(op):
    doc = Document(id=f"id-{op}", node="n1").add(op, **_sample(op))
    [back] = parse_documents(to_xml(doc))
    assert (back.id, back.node, back.created) == (doc.id, doc.node, doc.created)
    assert back.instructions == doc.instructions


def test_batch_keeps_order():
    docs = make_documents("b", 5)
    parsed = parse_documents(batch_xml([to_xml(d) for d in docs]))
    assert [d.id for d in parsed] == [d.id for d in docs]
    assert [d.instructions for d in parsed] == [d.instructions for d in docs]


@pytest.mark.parametrize("body, status_word", [
    (b"<document xmlns='urn:terapix-fw:dbclient:1' id='x'><node name='a'/>", "malformed XML"),
    (b"<?xml version='1.0'?><!DOCTYPE d [<!ENTITY e SYSTEM 'file:///etc/passwd'>]>"
     b"<document xmlns='urn:terapix-fw:dbclient:1' id='x'><node name='&e;'/></document>", "DOCTYPE"),
    (b"<document xmlns='urn:terapix-fw:dbclient:1' id='x'><node free_disk='3'/></document>",
     "attribute 'name' is required"),
    (b"<document xmlns='urn:terapix-fw:dbclient:1' id='x'><drop_table name='a'/></document>",
     "drop_table"),
    (b"<document xmlns='urn:terapix-fw:dbclient:1' id='x'><node name='a' free_disk='lots'/></document>",
     "free_disk"),
    (b"<document xmlns='urn:terapix-fw:dbclient:1' id='x'><grade exposure='e' grade='E' author='a'/></document>",
     "grade"),
    (b"<document xmlns='urn:terapix-fw:dbclient:1' id='x'></document>", "Missing child element"),
    (b"<document id='x'><node name='a'/></document>", "document"),
])
def test_invalid_documents_refused_with_reason(body, status_word):
    with pytest.raises(DocumentError, match=status_word) as info:
        parse_documents(body, label="req")
    assert str(info.value).startswith("req:")


def test_control_characters_refused_by_name():
    with pytest.raises(RecordError, match=r"node.name: character U\+0001"):
        to_xml(Document().add("node", name="a\x01b"))


def test_client_spools_durably_and_in_order_when_server_down(tmp_path):
    # nothing listens on this port: the client keeps everything, in order, and does not raise
    client = Client("http://127.0.0.1:9", spool_dir=tmp_path / "spool", secret="s", timeout=2)
    docs = make_documents("down", 30)
    for doc in docs:
        client.submit(doc)
    pending = client.pending()
    assert [p.read_bytes() for p in pending] == [to_xml(d) for d in docs]
    assert not list((tmp_path / "spool").glob(".*.part"))  # no partial files left behind
    assert sorted(p.name for p in (tmp_path / "spool").iterdir() if p.is_file() and p.name != ".lock") == \
        [p.name for p in pending]
    result = client.flush()
    assert result.remaining == 30 and result.sent == 0 and "unreachable" in result.error


def test_client_needs_url_and_secret(tmp_path, monkeypatch):
    monkeypatch.delenv("TERAPIX_DBCLIENT_URL", raising=False)
    with pytest.raises(DocumentError, match="no dbClient server URL"):
        Client(spool_dir=tmp_path)
    with pytest.raises(DocumentError, match="expected http://HOST:PORT"):
        Client("ftp://x", spool_dir=tmp_path)
    from terapix_fw.dbclient.auth import load_secret
    monkeypatch.delenv("TERAPIX_DBCLIENT_SECRET", raising=False)
    with pytest.raises(DocumentError, match="TERAPIX_DBCLIENT_SECRET"):
        load_secret()
    (tmp_path / "secret").write_text("  s3cr3t\n")
    assert load_secret(secret_file=tmp_path / "secret") == b"s3cr3t"


def test_field_types_coerced_or_refused():
    import numpy as np
    from terapix_fw.db.ops import normalize
    out = normalize("catalog", {"path": "/c", "nsources": np.int64(12), "sources": [
        {"ra": np.float32(1.5), "dec": "-2.25", "number": 3.0, "flags": np.uint8(4)}]})
    assert out["nsources"] == 12 and out["sources"] == [{"ra": 1.5, "dec": -2.25, "number": 3, "flags": 4}]
    for bad in (np.float32(2.5), 2.5, "2.5", "many"):
        with pytest.raises(RecordError, match="catalog.nsources: .* is not a valid int"):
            normalize("catalog", {"path": "/c", "nsources": bad})
    with pytest.raises(RecordError, match="catalog: missing required field 'path'"):
        normalize("catalog", {"nsources": 1})
    with pytest.raises(RecordError, match=r"catalog.sources\[0\]: missing required field 'dec'"):
        normalize("catalog", {"path": "/c", "sources": [{"ra": 1.0}]})
    assert normalize("exposure", {"filename": "a", "photometric": "no"})["photometric"] is False
    with pytest.raises(RecordError, match="exposure.date_obs: 'yesterday' is not a valid time"):
        normalize("exposure", {"filename": "a", "date_obs": "yesterday"})


def test_schema_built_in_memory_when_schemas_folder_missing(monkeypatch):
    from terapix_fw import xmlutil

    def missing(name):
        raise FileNotFoundError(name)
    monkeypatch.setattr(xmlutil, "load_schema", missing)
    from terapix_fw.dbclient import xmldoc
    built = []
    real = xmldoc._generated_schema
    monkeypatch.setattr(xmldoc, "_generated_schema", lambda: built.append(1) or real())
    doc = Document(id="mem").add("node", name="n1")
    assert parse_documents(to_xml(doc))[0].instructions == doc.instructions
    assert built
    with pytest.raises(DocumentError, match="does not follow dbclient.xsd.*free_space"):
        parse_documents(to_xml(doc).replace(b'name="n1"', b'name="n1" free_space="3"'))


def test_each_thread_validates_with_its_own_compiled_schema():
    """The dbClient server's request threads must not share one libxml2 schema: sharing the cached one
    crashed the server (a segfault inside lxml) while eight clients sent documents at once."""
    import threading

    from terapix_fw import xmlutil

    main = xmlutil.load_schema("dbclient.xsd")  # compiled and cached before the threads ask
    seen = {}

    def load(k):
        seen[k] = (xmlutil.load_schema("dbclient.xsd"), xmlutil.load_schema("dbclient.xsd"))

    threads = [threading.Thread(target=load, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(first is again for first, again in seen.values())  # compiled once per thread
    assert len({id(first) for first, _ in seen.values()} | {id(main)}) == 5  # and never shared between threads
