"""The cluster description: nodes (name, host, port, user, key file, destination root) and the
confinement of remote paths below each node's destination root.

Nodes come from the ``NODES`` keyword (``name=user@host:port:/dest/root``, port and user optional) or
from a nodes file, one node a line (``#`` starts a comment)::

    # name   host          port  user     key_file            dest_root
    node01   10.0.0.11     22    terapix  ~/.ssh/id_ed25519   /data/megacam
    node02   node02.lan    2222  terapix  -                   /scratch/megacam

A ``-`` key file means the ``KEY_FILE`` keyword's.  The destination root is trusted (it comes from the
operator's cluster description); every name below it comes from inputs or instruction files and is
confined with :func:`remote_path`.
"""
from __future__ import annotations

import getpass
import posixpath
import re
from dataclasses import dataclass
from pathlib import Path

from terapix_fw.errors import ConfigError

__all__ = ["Node", "parse_node_spec", "read_nodes_file", "remote_path", "check_relative"]

_NAME = r"[A-Za-z0-9_.-]+"
_SPEC = re.compile(rf"^(?P<name>{_NAME})=(?:(?P<user>[^@\s]+)@)?(?P<host>\[[^\]]+\]|[^:@\s\[\]]+)"
                   r"(?::(?P<port>\d+))?:(?P<root>/\S*)$")


@dataclass(frozen=True)
class Node:
    """One destination of the cluster."""

    name: str
    host: str
    port: int
    user: str
    key_file: str
    root: str  # absolute POSIX path on the node; every remote path is below it

    @property
    def address(self) -> str:
        return f"{self.user}@{self.host}:{self.port}"


def _check_root(root: str, where: str) -> str:
    if not root.startswith("/") or ".." in root.split("/"):
        raise ConfigError(f"destination root {root!r} must be an absolute path without '..'", where, "NODES")
    return posixpath.normpath(root)


def _check_port(text: str, where: str) -> int:
    port = int(text)
    if not 1 <= port <= 65535:
        raise ConfigError(f"port {text} is not between 1 and 65535", where, "NODES")
    return port


def parse_node_spec(spec: str, key_file: str = "", where: str = "NODES") -> Node:
    """A node from ``name=user@host:port:/dest/root`` (``user@`` and ``:port`` optional)."""
    m = _SPEC.match(spec.strip())
    if m is None:
        raise ConfigError(f"bad node {spec!r}; expected name=user@host:port:/dest/root "
                          "(user and port optional)", where, "NODES")
    host = m["host"].strip("[]")
    return Node(m["name"], host, _check_port(m["port"] or "22", where), m["user"] or getpass.getuser(),
                key_file, _check_root(m["root"], where))


def read_nodes_file(path: str | Path, key_file: str = "") -> list[Node]:
    """The nodes of a nodes file (see the module documentation for the format)."""
    path = Path(path).expanduser()
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read nodes file {path}: {exc.strerror or exc}", "NODES_FILE",
                          "NODES_FILE") from None
    nodes = []
    for lineno, line in enumerate(text.splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        where = f"{path}:{lineno}"
        fields = line.split()
        if len(fields) != 6:
            raise ConfigError(f"expected 6 fields (name host port user key_file dest_root), got {len(fields)}: "
                              f"{line!r}", where, "NODES_FILE")
        name, host, port, user, key, root = fields
        if not re.fullmatch(_NAME, name):
            raise ConfigError(f"bad node name {name!r}; expected letters, digits, '_', '.', '-'", where,
                              "NODES_FILE")
        if not port.isdigit():
            raise ConfigError(f"bad port {port!r}; expected an integer", where, "NODES_FILE")
        nodes.append(Node(name, host, _check_port(port, where), user, key_file if key == "-" else key,
                          _check_root(root, where)))
    return nodes


def check_relative(name: str, what: str) -> str:
    """``name`` as a normalised relative POSIX path; refuse absolute names, ``..``, empty names and
    control characters (names come from inputs and instruction files, i.e. from outside)."""
    if not name or name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name):
        raise PermissionError(f"{what} {name!r} must be a relative path below the node's destination root")
    parts = name.replace("\\", "/").split("/")
    if ".." in parts:
        raise PermissionError(f"{what} {name!r} contains '..': refused, it could escape the destination root")
    if any(ord(c) < 32 or c == "\x7f" for c in name):
        raise PermissionError(f"{what} {name!r} contains control characters")
    clean = posixpath.normpath("/".join(p for p in parts if p not in ("", ".")) or ".")
    if clean == ".":
        raise PermissionError(f"{what} {name!r} names no file")
    return clean


def remote_path(node: Node, *names: str, what: str = "remote name") -> str:
    """The absolute remote path of ``names`` joined below ``node.root``, confined to it."""
    rel = check_relative("/".join(n for n in names if n), what)
    full = posixpath.normpath(posixpath.join(node.root, rel))
    root = node.root.rstrip("/") + "/"
    if not full.startswith(root) and node.root != "/":  # belt and braces: normpath cannot climb here
        raise PermissionError(f"{what} {rel!r} escapes the destination root {node.root} of node {node.name}")
    return full
