"""dbClient documents as XML, validated against ``schemas/dbclient.xsd``.

The schema is generated from the RDBix instruction set (:data:`terapix_fw.db.ops.OPS`) by
:func:`build_xsd`, so that the XML, the Python API and the database cannot drift apart; a test checks
that the committed ``schemas/dbclient.xsd`` is up to date (regenerate it with
``python -m terapix_fw.dbclient.xmldoc > schemas/dbclient.xsd``).

A document::

    <document xmlns="urn:terapix-fw:dbclient:1" id="0f3c..." node="node7" created="2026-11-21T05:00:00+00:00">
      <step_start run_id="..." step="sex" tool="sextractor" tool_version="2.28.0" start="...">
        <config><item key="DETECT_THRESH" value="1.5"/></config>
      </step_start>
    </document>

Scalar fields are attributes; ``map`` fields hold ``<item key= value=/>``, ``list`` fields
``<item value=/>`` and ``rows`` fields ``<row .../>`` children.  Several documents travel in one
``<batch>`` (a spool replay); each is still applied atomically and on its own.
"""
from __future__ import annotations

import datetime as _dt
import math
from xml.sax.saxutils import quoteattr

from ..db.ops import OPS, Document, Field, RecordError, normalize
from ..errors import TerapixError

__all__ = ["NAMESPACE", "SCHEMA_NAME", "DocumentError", "to_xml", "batch_xml", "parse_documents", "build_xsd",
           "document_rows", "MAX_DOCUMENT_ROWS"]

#: rows one document may carry (its instructions, their maps, lists and rows, counted as XML elements):
#: the 36 CCD headers of a MegaCam exposure are about 11,000 keyword rows.  The largest document holds a
#: writer for at most about 8 s (benchmarks/bench_dbclient_rows.py on a busy 2-core machine: 20,000
#: product inputs 7.7 s on MariaDB, 4.9 s on SQLite; keywords, metrics, extensions 1-3 s); larger ones
#: are refused with a 422 that names the limit.
MAX_DOCUMENT_ROWS = 20_000

NAMESPACE = "urn:terapix-fw:dbclient:1"
SCHEMA_NAME = "dbclient.xsd"
_NS = "{" + NAMESPACE + "}"
_XSD_TYPES = {"str": "xs:string", "int": "xs:long", "float": "xs:double", "bool": "xs:boolean",
              "time": "xs:dateTime"}


class DocumentError(TerapixError):
    """A dbClient document that is malformed, not valid against the schema, or not applicable."""

    def __init__(self, message: str, where: str | None = None):
        self.where = where
        self.reason = message
        super().__init__(f"{where}: {message}" if where else message)


def _text(ftype: str, value) -> str:
    if ftype == "bool":
        return "true" if value else "false"
    if ftype == "time":
        return value.astimezone(_dt.timezone.utc).isoformat()
    if ftype == "float":
        if math.isinf(value):
            return "INF" if value > 0 else "-INF"
        return repr(float(value))
    return str(value)


def _check_chars(text: str, where: str) -> str:
    # XML 1.0 cannot carry most control characters; refuse them with the field's name rather than
    # letting the server reject a malformed document later.
    for ch in text:
        o = ord(ch)
        if (o < 0x20 and ch not in "\t\n\r") or 0xD800 <= o <= 0xDFFF or o in (0xFFFE, 0xFFFF):
            raise RecordError(f"{where}: character U+{o:04X} cannot be stored in an XML document")
    return text


def _attr(name: str, ftype: str, value, where: str) -> str:
    text = _check_chars(_text(ftype, value), f"{where}.{name}")
    # quoteattr escapes &, <, > and quotes; newlines and tabs must be character references so that
    # attribute-value normalisation does not turn them into spaces
    quoted = quoteattr(text, {"\n": "&#10;", "\r": "&#13;", "\t": "&#9;"})
    return f" {name}={quoted}"


def _instruction_xml(op: str, data: dict) -> str:
    spec = OPS[op]
    attrs, children = [], []
    for f in spec.fields:
        if f.name not in data or data[f.name] is None:
            continue
        value = data[f.name]
        where = f"{op}.{f.name}"
        if f.type in _XSD_TYPES:
            attrs.append(_attr(f.name, f.type, value, op))
        elif f.type == "map":
            items = "".join(f"<item{_attr('key', 'str', k, where)}{_attr('value', 'str', v, where)}/>"
                            for k, v in value.items())
            children.append(f"<{f.name}>{items}</{f.name}>")
        elif f.type == "list":
            items = "".join(f"<item{_attr('value', 'str', v, where)}/>" for v in value)
            children.append(f"<{f.name}>{items}</{f.name}>")
        elif f.type == "rows":
            rows = []
            for row in value:
                cells = "".join(_attr(rf.name, rf.type, row[rf.name], where) for rf in f.row
                                if row.get(rf.name) is not None)
                rows.append(f"<row{cells}/>")
            children.append(f"<{f.name}>{''.join(rows)}</{f.name}>")
    return f"<{op}{''.join(attrs)}>{''.join(children)}</{op}>"


def to_xml(doc: Document) -> bytes:
    """Serialise a document (UTF-8, no XML declaration so that documents concatenate into a batch).

    Parameters
    ----------
    doc : Document

    Returns
    -------
    bytes
    """
    head = (f'<document xmlns="{NAMESPACE}"{_attr("id", "str", doc.id, "document")}'
            f'{_attr("node", "str", doc.node or "", "document")}{_attr("created", "time", doc.created, "document")}>')
    body = "".join(_instruction_xml(op, data) for op, data in doc.instructions)
    return (head + body + "</document>").encode("utf-8")


def batch_xml(documents: list[bytes]) -> bytes:
    """Several serialised documents in one ``<batch>``.

    Parameters
    ----------
    documents : list of bytes
        Documents serialised by :func:`to_xml`.

    Returns
    -------
    bytes
    """
    return b'<batch xmlns="' + NAMESPACE.encode() + b'">' + b"".join(documents) + b"</batch>"


def _from_element(elem, label: str) -> Document:
    doc = Document(instructions=[], id=elem.get("id"), node=elem.get("node") or "")
    created = elem.get("created")
    if created:
        from ..db.types import to_datetime
        doc.created = to_datetime(created)
    for child in elem:
        if not isinstance(child.tag, str):  # comments, processing instructions
            continue
        op = child.tag.replace(_NS, "")
        spec = OPS[op]
        data: dict = dict(child.attrib)
        for container in child:
            if not isinstance(container.tag, str):
                continue
            name = container.tag.replace(_NS, "")
            f = spec.field(name)
            items = [c for c in container if isinstance(c.tag, str)]
            if f.type == "map":
                data[name] = {c.get("key"): c.get("value", "") for c in items}
            elif f.type == "list":
                data[name] = [c.get("value", "") for c in items]
            else:
                data[name] = [dict(c.attrib) for c in items]
        try:
            doc.instructions.append((op, normalize(op, data)))
        except RecordError as exc:
            raise DocumentError(str(exc), f"{label}:{child.sourceline}") from None
    return doc


def document_rows(doc: Document) -> int:
    """The size of a document in rows, as :data:`MAX_DOCUMENT_ROWS` counts them: one per instruction,
    per map/list/rows container and per item or row in it.

    Parameters
    ----------
    doc : Document

    Returns
    -------
    int
    """
    rows = 0
    for _, data in doc.instructions:
        rows += 1
        for value in data.values():
            if isinstance(value, (list, dict)):
                rows += 1 + len(value)
    return rows


def parse_documents(data: bytes, label: str = "<dbclient>", max_rows: int = MAX_DOCUMENT_ROWS) -> list[Document]:
    """Parse and validate a ``<document>`` or a ``<batch>`` of documents; DocumentError says why not.

    A document of more than ``max_rows`` rows is refused before it is validated or converted.

    Parameters
    ----------
    data : bytes
        A ``<document>`` or ``<batch>``.
    label : str
        Name of the source, for messages.
    max_rows : int
        Largest document accepted, in rows.

    Returns
    -------
    list of Document

    Raises
    ------
    DocumentError
        On unsafe or malformed XML, a schema violation or a document too large.
    """
    from lxml import etree
    from ..xmlutil import parse_xml, validate
    tree = parse_xml(data, label, error_class=DocumentError, max_depth=8)
    root = tree.getroot()
    elems = [root] if root.tag == _NS + "document" else [e for e in root if e.tag == _NS + "document"]
    for elem in elems:
        rows = sum(1 for _ in elem.iter(etree.Element)) - 1
        if rows > max_rows:
            raise DocumentError(f"document {elem.get('id')!r} has {rows} rows, more than the limit of {max_rows} "
                                "per document: split it", f"{label}:{elem.sourceline}")
    try:
        validate(tree, SCHEMA_NAME, label, error_class=DocumentError)
    except FileNotFoundError:  # installed without the schemas/ folder: the same schema, built in memory
        schema = _generated_schema()
        try:
            valid = schema.validate(tree)
        except etree.LxmlError as exc:
            raise DocumentError(f"cannot be validated against {SCHEMA_NAME}: {exc}".splitlines()[0], label) from None
        if not valid:
            err = schema.error_log[0]
            raise DocumentError(f"does not follow {SCHEMA_NAME}: {err.message}", f"{label}:{err.line}:{err.column}")
    return [_from_element(e, label) for e in elems]


# ----------------------------------------------------------------------------------------------------
# XSD generation

_schema_cache: list = []


def _generated_schema():
    from lxml import etree
    if not _schema_cache:
        _schema_cache.append(etree.XMLSchema(etree.fromstring(build_xsd().encode())))
    return _schema_cache[0]


def _xsd_attribute(f: Field, indent: str) -> str:
    use = ' use="required"' if f.required else ""
    if f.choices:
        enum = "".join(f'<xs:enumeration value="{c}"/>' for c in f.choices)
        return (f'{indent}<xs:attribute name="{f.name}"{use}><xs:simpleType><xs:restriction base="xs:string">'
                f'{enum}</xs:restriction></xs:simpleType></xs:attribute>\n')
    ftype = "nonEmptyString" if f.required and f.type == "str" else _XSD_TYPES[f.type]
    return f'{indent}<xs:attribute name="{f.name}" type="{ftype}"{use}/>\n'


def build_xsd() -> str:
    """The XML Schema of dbClient documents, generated from the instruction set."""
    out = [
        '<?xml version="1.0" encoding="UTF-8"?>\n',
        "<!-- dbClient documents of terapix-fw (RDBix).  GENERATED by terapix_fw.dbclient.xmldoc.build_xsd from\n"
        "     the instruction set terapix_fw.db.ops.OPS: edit that, then regenerate with\n"
        "     python -m terapix_fw.dbclient.xmldoc > schemas/dbclient.xsd -->\n",
        f'<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema" targetNamespace="{NAMESPACE}"\n'
        f'           xmlns="{NAMESPACE}" elementFormDefault="qualified">\n\n',
        '  <xs:simpleType name="nonEmptyString"><xs:restriction base="xs:string">'
        '<xs:minLength value="1"/></xs:restriction></xs:simpleType>\n',
        '  <xs:simpleType name="documentId"><xs:restriction base="xs:string">'
        '<xs:pattern value="[A-Za-z0-9_.:\\-]{1,64}"/></xs:restriction></xs:simpleType>\n',
        '  <xs:complexType name="map"><xs:sequence><xs:element name="item" minOccurs="0" maxOccurs="unbounded">'
        '<xs:complexType><xs:attribute name="key" type="nonEmptyString" use="required"/>'
        '<xs:attribute name="value" type="xs:string" use="required"/></xs:complexType></xs:element>'
        '</xs:sequence></xs:complexType>\n',
        '  <xs:complexType name="list"><xs:sequence><xs:element name="item" minOccurs="0" maxOccurs="unbounded">'
        '<xs:complexType><xs:attribute name="value" type="xs:string" use="required"/></xs:complexType>'
        '</xs:element></xs:sequence></xs:complexType>\n\n',
    ]
    for spec in OPS.values():
        out.append(f"  <!-- {spec.name}: {spec.doc} -->\n")
        out.append(f'  <xs:complexType name="{spec.name}">\n    <xs:sequence>\n')
        attrs = []
        for f in spec.fields:
            if f.type == "map":
                out.append(f'      <xs:element name="{f.name}" type="map" minOccurs="0"/>\n')
            elif f.type == "list":
                out.append(f'      <xs:element name="{f.name}" type="list" minOccurs="0"/>\n')
            elif f.type == "rows":
                out.append(f'      <xs:element name="{f.name}" minOccurs="0"><xs:complexType><xs:sequence>'
                           f'<xs:element name="row" minOccurs="0" maxOccurs="unbounded"><xs:complexType>\n')
                for rf in f.row:
                    out.append(_xsd_attribute(rf, "        "))
                out.append("      </xs:complexType></xs:element></xs:sequence></xs:complexType></xs:element>\n")
            else:
                attrs.append(f)
        out.append("    </xs:sequence>\n")
        for f in attrs:
            out.append(_xsd_attribute(f, "    "))
        out.append("  </xs:complexType>\n\n")
    choices = "".join(f'        <xs:element name="{name}" type="{name}"/>\n' for name in OPS)
    out.append(
        '  <xs:complexType name="document">\n'
        '    <xs:choice minOccurs="1" maxOccurs="unbounded">\n'
        f"{choices}"
        "    </xs:choice>\n"
        '    <xs:attribute name="id" type="documentId" use="required"/>\n'
        '    <xs:attribute name="node" type="xs:string"/>\n'
        '    <xs:attribute name="created" type="xs:dateTime"/>\n'
        "  </xs:complexType>\n\n"
        '  <xs:element name="document" type="document"/>\n'
        '  <xs:element name="batch">\n'
        '    <xs:complexType><xs:sequence>\n'
        '      <xs:element name="document" type="document" minOccurs="1" maxOccurs="unbounded"/>\n'
        '    </xs:sequence></xs:complexType>\n'
        '  </xs:element>\n'
        "</xs:schema>\n")
    return "".join(out)


if __name__ == "__main__":
    import sys
    sys.stdout.write(build_xsd())
