"""Two loopback SSH/SFTP "nodes" for the datatransfer tests (see terapix_datatransfer.loopback)."""
from __future__ import annotations

from pathlib import Path

import paramiko
import pytest

from terapix_datatransfer.loopback import LoopbackNode


class Cluster:
    """Two nodes, n1 and n2, each with destination root ``/data``; one client key; a known_hosts file."""

    def __init__(self, tmp_path: Path):
        self.tmp = tmp_path
        self.client_key = paramiko.ECDSAKey.generate()
        self.key_file = tmp_path / "id_ecdsa"
        self.client_key.write_private_key_file(str(self.key_file))
        self.nodes = {}
        for name in ("n1", "n2"):
            root = tmp_path / f"node_{name}"
            (root / "data").mkdir(parents=True)
            self.nodes[name] = LoopbackNode(name, root, self.client_key)
        self.known_hosts = tmp_path / "known_hosts"
        self.known_hosts.write_text("".join(n.known_hosts_line() for n in self.nodes.values()))

    def __getitem__(self, name: str) -> LoopbackNode:
        return self.nodes[name]

    def node_specs(self, names=("n1", "n2")) -> list[str]:
        return [f"{n}=terapix@127.0.0.1:{self.nodes[n].port}:/data" for n in names]

    def stored(self, name: str, rel: str = "") -> Path:
        return self.nodes[name].root / "data" / rel

    def close(self) -> None:
        for node in self.nodes.values():
            node.close()


@pytest.fixture
def cluster(tmp_path):
    c = Cluster(tmp_path)
    yield c
    c.close()


