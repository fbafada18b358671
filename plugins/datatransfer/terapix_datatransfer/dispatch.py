"""Dispatch policies: which node receives which file.

* ``ROUND_ROBIN``: the i-th file (in input order) goes to node i mod n, so that a night's exposures
  spread evenly and a re-run assigns every file to the same node.
* ``FREE_SPACE``: largest file first, each to the node with the most free disk left once the files
  already assigned to it are counted (a greedy "worst fit", which keeps the nodes' free space even).
* ``BY_KEY``: the value of a FITS header keyword (``FILTER``, ``RUNID``...) mapped to a node, as
  TERAPIX sorted MegaCam images by filter and run; ``*`` maps every other value.
"""
from __future__ import annotations

import re
import string
import zlib
from dataclasses import dataclass, field
from pathlib import Path

from terapix_fw.errors import ConfigError

__all__ = ["Assignment", "round_robin", "free_space", "parse_key_map", "by_key", "header_value",
           "template_keywords", "expand_template"]


@dataclass
class Assignment:
    """Where each file goes; ``refused`` maps a file to the reason it has no node."""

    nodes: dict[str, str] = field(default_factory=dict)  # file -> node name
    refused: dict[str, str] = field(default_factory=dict)  # file -> reason


def round_robin(files: list[str], nodes: list[str]) -> Assignment:
    """The i-th file to node i mod n.  A unit of one file (``fanout="file"``) has no position among
    the others, so its node is chosen by a stable hash of its name: even on average, and the same
    node on every re-run."""
    if len(files) == 1:
        name = Path(files[0]).name
        return Assignment({files[0]: nodes[zlib.crc32(name.encode()) % len(nodes)]})
    return Assignment({f: nodes[i % len(nodes)] for i, f in enumerate(files)})


def free_space(sizes: dict[str, int], free: dict[str, int], reserve: int = 0) -> Assignment:
    """Largest file first, each to the node with the most free bytes left (``reserve`` kept free)."""
    left = {n: b - reserve for n, b in free.items()}
    out = Assignment()
    # ties between equal sizes keep the input order; ties between nodes keep the node order
    for name in sorted(sizes, key=lambda f: -sizes[f]):
        best = max(left, key=lambda n: left[n])
        if left[best] < sizes[name]:
            out.refused[name] = (f"no node has room for {sizes[name]} bytes (most free: node {best}, "
                                 f"{max(left[best], 0)} bytes once the reserve and earlier files are counted)")
            continue
        left[best] -= sizes[name]
        out.nodes[name] = best
    return out


def parse_key_map(items: list[str], nodes: list[str]) -> dict[str, str]:
    """``["u.MP9301:node1", "*:node2"]`` -> ``{"u.MP9301": "node1", "*": "node2"}`` (checked)."""
    mapping = {}
    for item in items:
        value, sep, node = item.rpartition(":")
        if not sep or not value or not node:
            raise ConfigError(f"bad DISPATCH_MAP item {item!r}; expected VALUE:NODE", "datatransfer",
                              "DISPATCH_MAP")
        if node not in nodes:
            raise ConfigError(f"DISPATCH_MAP item {item!r} names node {node!r}, which is not one of "
                              f"{', '.join(nodes)}", "datatransfer", "DISPATCH_MAP")
        mapping[value] = node
    if not mapping:
        raise ConfigError("DISPATCH BY_KEY needs DISPATCH_MAP (VALUE:NODE items, * for any other value)",
                          "datatransfer", "DISPATCH_MAP")
    return mapping


def header_value(path: str | Path, keyword: str) -> str | None:
    """``keyword`` of the primary header, else of the first extension (compressed MEF files)."""
    from astropy.io import fits

    with fits.open(path, memmap=False, lazy_load_hdus=True) as hdul:
        for hdu in hdul[:2]:
            if keyword in hdu.header:
                return str(hdu.header[keyword]).strip()
    return None


def by_key(files: list[str], keyword: str, mapping: dict[str, str], read=header_value) -> Assignment:
    out = Assignment()
    for name in files:
        try:
            value = read(name, keyword)
        except OSError as exc:
            out.refused[name] = f"cannot read its FITS header for {keyword}: {exc}"
            continue
        if value is None:
            out.refused[name] = f"no {keyword} keyword in its header"
        elif value in mapping or "*" in mapping:
            out.nodes[name] = mapping.get(value, mapping.get("*"))
        else:
            out.refused[name] = (f"{keyword} = {value!r} is not in DISPATCH_MAP "
                                 f"({', '.join(sorted(mapping))}); add it or a '*' entry")
    return out


def template_keywords(template: str) -> list[str]:
    """Header keywords named in a ``REMOTE_DIR`` template such as ``megacam/{FILTER}/{RUNID}``."""
    try:
        return [field_name for _, field_name, _, _ in string.Formatter().parse(template) if field_name]
    except ValueError as exc:
        raise ConfigError(f"bad REMOTE_DIR template {template!r}: {exc}", "datatransfer", "REMOTE_DIR") from None


def expand_template(template: str, path: str | Path, read=header_value) -> str:
    """``template`` with each ``{KEYWORD}`` replaced by the file's header value, made a safe directory
    name (characters other than letters, digits, ``.``, ``_``, ``+``, ``-`` become ``_``), the way
    TERAPIX sorted MegaCam images by filter and run."""
    values = {}
    for key in template_keywords(template):
        value = read(path, key)
        if value is None or not value.strip():
            raise PermissionError(f"REMOTE_DIR {template!r}: no {key} keyword in the header of {path}")
        safe = re.sub(r"[^A-Za-z0-9._+-]", "_", value.strip())
        if set(safe) == {"."}:
            raise PermissionError(f"REMOTE_DIR {template!r}: {key} = {value!r} in {path} is not a directory name")
        values[key] = safe
    return template.format(**values)
