"""Safe XML parsing and XSD validation shared by instruction files, dbClient documents and surveys.

XML comes from users and from other nodes: entity resolution, DTD loading and network access are off, and
huge trees are refused.  Errors name the file, line and column and what was expected.
"""
from __future__ import annotations

import functools
import os
import re
from pathlib import Path

from .errors import InstructionError

__all__ = ["safe_parser", "parse_xml", "schema_path", "load_schema", "validate"]


def safe_parser():
    from lxml import etree

    return etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, dtd_validation=False,
                           huge_tree=False, remove_comments=False)


def schema_path(name: str) -> Path:
    """The file of schema ``NAME`` (see :func:`terapix_fw.resources.schemas_dir`)."""
    from .resources import schemas_dir
    base = schemas_dir()
    path = base / name
    if Path(name).name != name or not path.is_file():
        raise FileNotFoundError(f"schema {name} not found in {base}")
    return path


@functools.lru_cache(maxsize=None)
def load_schema(name: str):
    from lxml import etree

    return etree.XMLSchema(etree.parse(str(schema_path(name)), safe_parser()))


def parse_xml(source: str | bytes | Path, label: str | None = None, error_class=InstructionError):
    """Parse XML safely from a path or from bytes; a syntax error names the line and column."""
    from lxml import etree

    label = label or (str(source) if isinstance(source, Path) else "<document>")
    try:
        if isinstance(source, Path):
            data = source.read_bytes()
        else:
            data = source.encode("utf-8") if isinstance(source, str) else source
        if b"<!ENTITY" in data or b"<!DOCTYPE" in data:
            raise error_class("DOCTYPE and ENTITY declarations are not allowed", label)
        root = etree.fromstring(data, safe_parser(), base_url=str(source) if isinstance(source, Path) else None)
        return root.getroottree()
    except etree.XMLSyntaxError as exc:
        line, col = exc.position if exc.position else (0, 0)
        message = re.sub(r", line \d+, column \d+$", "", exc.msg)  # the location goes in front
        raise error_class(f"malformed XML: {message}", f"{label}:{line}:{col}") from None
    except OSError as exc:
        raise error_class(f"cannot read: {exc.strerror}", label) from None


def validate(tree, schema_name: str, label: str, error_class=InstructionError) -> None:
    """Validate a parsed tree against ``schemas/schema_name``; the first error names line and element."""
    schema = load_schema(schema_name)
    if schema.validate(tree):
        return
    err = schema.error_log[0]
    message = err.message
    column = err.column
    tag = re.match(r"Element '([^']+)'", message)
    if tag and not column:
        attribute = re.search(r"attribute '([^']+)'", message)
        column = source_column(tree, err.line, tag.group(1), attribute.group(1) if attribute else None)
    if message.startswith("Element '"):
        message = "element <" + message[len("Element '"):].replace("'", ">", 1)
    raise error_class(f"does not follow {schema_name}: {message}", f"{label}:{err.line}:{column}")


def source_column(tree, line: int, tag: str, attribute: str | None = None) -> int:
    """1-based column of ``<tag`` (or of ``attribute=``) on source line ``line`` of a parsed document."""
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
