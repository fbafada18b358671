"""Safe XML parsing and XSD validation shared by instruction files, dbClient documents and surveys.

XML comes from users and from other nodes: entity resolution, DTD loading and network access are off, and
huge trees are refused.  A document with a DOCTYPE (internal subset, external DTD, entity declarations) is
refused whatever its encoding: the check is made on the parsed document (``docinfo``), not on its bytes,
so a UTF-16 or UTF-32 document cannot slip a declaration past it.  Documents are bounded in size
(``max_bytes``, checked before reading) and in element depth (``max_depth``).  Errors are one line naming
the file, line and column and what was expected.
"""
from __future__ import annotations

import re
import threading
from pathlib import Path

from .errors import InstructionError

__all__ = ["safe_parser", "parse_xml", "schema_path", "load_schema", "validate", "check_xml_prolog",
           "MAX_XML_BYTES", "MAX_XML_DEPTH"]

#: default bound on the size of an XML document (instruction files, surveys, dbClient requests)
MAX_XML_BYTES = 64 << 20
#: default bound on element nesting (the deepest framework document, a VOTable, nests 8 levels)
MAX_XML_DEPTH = 64
_NO_DTD = "DOCTYPE and ENTITY declarations are not allowed"


def safe_parser():
    """The one parser configuration of the framework: no entity resolution, no DTD loading or validation,
    no network, libxml2's own limits on huge text nodes and deep trees kept (``huge_tree=False``)."""
    from lxml import etree

    return etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, dtd_validation=False,
                           huge_tree=False, remove_comments=False)


def _check_tree(tree, label: str, error_class, max_depth: int) -> None:
    """Refuse a parsed document with a DOCTYPE or an entity, or nested deeper than ``max_depth``."""
    from lxml import etree

    info = tree.docinfo
    if info.doctype or info.internalDTD is not None or info.externalDTD is not None or info.system_url \
            or info.public_id:
        raise error_class(_NO_DTD, label)
    depth = 0
    for event, element in etree.iterwalk(tree, events=("start", "end")):
        if event == "start":
            depth += 1
            if depth > max_depth:
                raise error_class(f"elements nested deeper than {max_depth} levels",
                                  f"{label}:{element.sourceline or 0}")
            if isinstance(element, etree._Entity):  # only possible with a declaration, refused above
                raise error_class(_NO_DTD, f"{label}:{element.sourceline or 0}")
        else:
            depth -= 1


def check_xml_prolog(path: str | Path, label: str | None = None, error_class=InstructionError) -> None:
    """Refuse a file with a DOCTYPE without reading it all.

    For XML read by another parser (astropy's VOTable reader), which would otherwise expand internal
    entities.

    Parameters
    ----------
    path : str or Path
        The file.
    label : str, optional
        Name used in messages (the path by default).
    error_class : type
        Exception class raised (an :class:`~terapix_fw.errors.InstructionError` by default).

    Raises
    ------
    error_class
        On a DOCTYPE, malformed XML or an unreadable file.
    """
    from lxml import etree

    label = label or str(path)
    try:
        # our own handle: iterparse given a name would leave the file open when we stop at the root
        with open(path, "rb") as handle:
            context = etree.iterparse(handle, events=("start",), resolve_entities=False, no_network=True,
                                      load_dtd=False, dtd_validation=False, huge_tree=False)
            for _, element in context:
                info = element.getroottree().docinfo
                if info.doctype or info.internalDTD is not None or info.system_url or info.public_id:
                    raise error_class(_NO_DTD, label)
                return
    except etree.XMLSyntaxError as exc:
        line, col = exc.position if exc.position else (0, 0)
        message = re.sub(r", line \d+, column \d+$", "", exc.msg)
        raise error_class(f"malformed XML: {message}", f"{label}:{line}:{col}") from None
    except OSError as exc:
        raise error_class(f"cannot read: {exc.strerror or exc}", label) from None


def schema_path(name: str) -> Path:
    """The file of schema ``name`` (see :func:`terapix_fw.resources.schemas_dir`).

    Parameters
    ----------
    name : str
        File name of the schema (``instructions.xsd``), no directory.

    Returns
    -------
    Path

    Raises
    ------
    FileNotFoundError
        If the packaged schemas have no such file.
    """
    from .resources import schemas_dir
    base = schemas_dir()
    path = base / name
    if Path(name).name != name or not path.is_file():
        raise FileNotFoundError(f"schema {name} not found in {base}")
    return path


#: compiled schemas of each thread, by name (see :func:`load_schema`)
_thread_schemas = threading.local()
#: libxml2's schema compiler is not used by two threads at once
_compile_lock = threading.Lock()


def load_schema(name: str):
    """The compiled schema ``name``, cached per thread.

    One libxml2 schema validated documents in several threads at once crashes the process: the dbClient
    server's request threads sharing one cached schema segfaulted inside lxml, and once reported "Document
    is not valid XML Schema" for the packaged schema.  So each thread compiles its own (a few ms, once),
    one compilation at a time.

    Parameters
    ----------
    name : str
        File name of the schema.

    Returns
    -------
    lxml.etree.XMLSchema
    """
    cache = getattr(_thread_schemas, "by_name", None)
    if cache is None:
        cache = _thread_schemas.by_name = {}
    schema = cache.get(name)
    if schema is None:
        from lxml import etree

        with _compile_lock:
            schema = etree.XMLSchema(etree.parse(str(schema_path(name)), safe_parser()))
        cache[name] = schema
    return schema


def parse_xml(source: str | bytes | Path, label: str | None = None, error_class=InstructionError,
              max_bytes: int = MAX_XML_BYTES, max_depth: int = MAX_XML_DEPTH):
    """Parse XML safely from a path or from bytes; a syntax error names the line and column.

    Refused with one line naming ``label``: more than ``max_bytes`` (a file is measured before it is
    read), a DOCTYPE or entity declaration in any encoding, elements nested deeper than ``max_depth``.

    Parameters
    ----------
    source : str, bytes or Path
        A file path, or the document itself as bytes.
    label : str, optional
        Name used in messages.
    error_class : type
        Exception class raised (an :class:`~terapix_fw.errors.InstructionError` by default).
    max_bytes : int
        Largest document accepted.
    max_depth : int
        Deepest element nesting accepted.

    Returns
    -------
    lxml.etree._ElementTree

    Raises
    ------
    error_class
        On any of the refusals above, malformed XML or an unreadable file.
    """
    from lxml import etree

    label = label or (str(source) if isinstance(source, Path) else "<document>")
    try:
        if isinstance(source, Path):
            size = source.stat().st_size
            if size > max_bytes:
                raise error_class(f"XML file of {size} bytes exceeds the limit of {max_bytes} bytes", label)
            data = source.read_bytes()
        else:
            data = source.encode("utf-8") if isinstance(source, str) else source
        if len(data) > max_bytes:
            raise error_class(f"XML document of {len(data)} bytes exceeds the limit of {max_bytes} bytes", label)
        root = etree.fromstring(data, safe_parser(), base_url=str(source) if isinstance(source, Path) else None)
        tree = root.getroottree()
    except etree.XMLSyntaxError as exc:
        line, col = exc.position if exc.position else (0, 0)
        message = re.sub(r", line \d+, column \d+$", "", exc.msg)  # the location goes in front
        if "entity" in message.lower():  # libxml2 stops at an entity declared in a DOCTYPE it was not to load
            message += f" ({_NO_DTD})"
        raise error_class(f"malformed XML: {message}", f"{label}:{line}:{col}") from None
    except etree.LxmlError as exc:  # anything else libxml2 reports: one line, never a traceback
        raise error_class(f"cannot parse XML: {exc}".splitlines()[0], label) from None
    except OSError as exc:
        raise error_class(f"cannot read: {exc.strerror or exc}", label) from None
    _check_tree(tree, label, error_class, max_depth)
    return tree


def validate(tree, schema_name: str, label: str, error_class=InstructionError) -> None:
    """Validate a parsed tree against ``schemas/schema_name``.

    Parameters
    ----------
    tree : lxml.etree._ElementTree
        The parsed document.
    schema_name : str
        File name of the schema.
    label : str
        Name of the document in messages.
    error_class : type
        Exception class raised (an :class:`~terapix_fw.errors.InstructionError` by default).

    Raises
    ------
    error_class
        The first violation, naming line and element, with every violation in its ``all_errors``.
    """
    from lxml import etree

    schema = load_schema(schema_name)
    try:
        if schema.validate(tree):
            return
    except etree.LxmlError as exc:  # libxml2's internal errors (e.g. an unexpanded entity): one line
        raise error_class(f"cannot be validated against {schema_name}: {exc}".splitlines()[0], label) from None
    from .errors import ErrorCollector
    errors = ErrorCollector(error_class)  # every schema error of the document, not only the first
    for err in schema.error_log:
        message = err.message
        column = err.column
        tag = re.match(r"Element '([^']+)'", message)
        if tag and not column:
            attribute = re.search(r"attribute '([^']+)'", message)
            column = source_column(tree, err.line, tag.group(1), attribute.group(1) if attribute else None)
        if message.startswith("Element '"):
            message = "element <" + message[len("Element '"):].replace("'", ">", 1)
        errors.add(error_class(f"does not follow {schema_name}: {message}", f"{label}:{err.line}:{column}"))
    errors.raise_if_any()


def source_column(tree, line: int, tag: str, attribute: str | None = None) -> int:
    """1-based column of ``<tag`` (or of ``attribute=``) on source line ``line`` of a parsed document.

    Parameters
    ----------
    tree : lxml.etree._ElementTree
        The parsed document (its source is re-read from ``docinfo.URL``).
    line : int
        1-based line number.
    tag : str
        Element name.
    attribute : str, optional
        Attribute name to find instead of the element.

    Returns
    -------
    int
        The column, 1 when it cannot be found.
    """
    url = tree.docinfo.URL
    text = None
    if url:
        try:
            text = Path(url).read_text(encoding="utf-8", errors="replace").splitlines()
        except OSError:
            text = None
    if text is None or not 0 < line <= len(text):
        return 1
    source = text[line - 1]
    index = source.find(f"{attribute}=") if attribute else -1
    if index < 0:
        index = source.find(f"<{tag}")
    return index + 1 if index >= 0 else 1
