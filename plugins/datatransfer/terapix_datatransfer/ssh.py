"""SSH/SFTP sessions to the nodes (paramiko): host-key checks, atomic uploads, verified downloads,
remote checksums and free disk.

Remote writes are atomic: a file is uploaded under a hidden temporary name beside its final name
(``.NAME.<random>.part``), its size and SHA-256 are checked on the node, and only then is it renamed
with the ``posix-rename@openssh.com`` extension (an atomic ``rename(2)`` that replaces an older copy).
An interrupted upload therefore never leaves a file under its final name.

The remote SHA-256 comes from ``sha256sum`` run on the node (one ``exec`` channel, the data are read
once, on the node) or, when the account has no shell (``internal-sftp``) or ``CHECKSUM_METHOD`` is
``REREAD``, from reading the file back over SFTP.
"""
from __future__ import annotations

import hashlib
import posixpath
import re
import shlex
import socket
import stat as statmod
import uuid
from dataclasses import dataclass
from pathlib import Path

import paramiko

from .nodes import Node

__all__ = ["SSHSettings", "NodeSession", "TransferError", "FatalNodeError", "part_name"]

CHUNK = 1 << 18  # 256 kB: paramiko pipelines SFTP writes, larger chunks only cost memory


class TransferError(Exception):
    """A transfer failed in a way a retry may cure (connection lost, checksum mismatch)."""


class FatalNodeError(Exception):
    """A node cannot be used at all (host key refused, authentication failed): never retried."""


@dataclass(frozen=True)
class SSHSettings:
    known_hosts: str  # "" = none loaded
    host_key_policy: str  # REJECT | WARN | AUTO_ADD
    timeout: float
    checksum_method: str  # AUTO | EXEC | REREAD


def part_name(final: str) -> str:
    """The temporary name an upload is written under, hidden, beside its final name."""
    head, tail = posixpath.split(final)
    return posixpath.join(head, f".{tail}.{uuid.uuid4().hex[:12]}.part")


def _fingerprint(key: paramiko.PKey) -> str:
    return f"{key.get_name()} {key.fingerprint}"


class NodeSession:
    """One SSH connection and SFTP channel to one node (used by one thread at a time)."""

    def __init__(self, node: Node, settings: SSHSettings, log):
        self.node = node
        self.settings = settings
        self.log = log
        self.client: paramiko.SSHClient | None = None
        self.sftp: paramiko.SFTPClient | None = None
        self._exec_ok: bool | None = None  # unknown until the first exec
        self._root_ok = False

    # -- connection ---------------------------------------------------------------------------
    def where(self) -> str:
        return f"node {self.node.name} ({self.node.address})"

    def connect(self) -> "NodeSession":
        node, s = self.node, self.settings
        client = paramiko.SSHClient()
        if s.known_hosts:
            known = Path(s.known_hosts).expanduser()
            if known.exists():
                # as "system" keys: paramiko never writes those back, so an AUTO_ADD run (several
                # threads) cannot rewrite the operator's known_hosts file under them
                client.load_system_host_keys(str(known))
            elif s.host_key_policy == "REJECT":
                raise FatalNodeError(f"{self.where()}: KNOWN_HOSTS file {known} does not exist, so the host key "
                                     "cannot be verified; create it (ssh-keyscan -p PORT HOST >> FILE) or set "
                                     "HOST_KEY_POLICY")
        policy = {"REJECT": paramiko.RejectPolicy, "WARN": paramiko.WarningPolicy,
                  "AUTO_ADD": paramiko.AutoAddPolicy}[s.host_key_policy]
        client.set_missing_host_key_policy(policy())
        pkey = self._load_key() if node.key_file else None
        try:
            client.connect(node.host, node.port, username=node.user, pkey=pkey,
                           timeout=s.timeout, banner_timeout=s.timeout, auth_timeout=s.timeout,
                           channel_timeout=s.timeout, look_for_keys=not node.key_file,
                           allow_agent=not node.key_file)
        except paramiko.BadHostKeyException as exc:
            client.close()
            raise FatalNodeError(
                f"{self.where()}: HOST KEY MISMATCH: the server offered {_fingerprint(exc.key)} but "
                f"KNOWN_HOSTS {s.known_hosts} has {_fingerprint(exc.expected_key)} for {node.host}; refusing "
                "to connect (the node was reinstalled, or someone is intercepting the connection)") from None
        except paramiko.AuthenticationException as exc:
            client.close()
            raise FatalNodeError(f"{self.where()}: authentication as {node.user} failed "
                                 f"(key file {node.key_file or 'agent/default keys'}): {exc}") from None
        except paramiko.SSHException as exc:
            client.close()
            if "not found in known_hosts" in str(exc):
                raise FatalNodeError(
                    f"{self.where()}: host key of {node.host} port {node.port} is not in KNOWN_HOSTS "
                    f"{s.known_hosts or '(none given)'}; refusing to connect. Add it "
                    f"(ssh-keyscan -p {node.port} {node.host} >> FILE) or set HOST_KEY_POLICY AUTO_ADD "
                    "on a trusted network") from None
            raise TransferError(f"{self.where()}: SSH connection failed: {exc}") from None
        except (OSError, EOFError) as exc:
            client.close()
            raise TransferError(f"{self.where()}: cannot connect: {exc}") from None
        try:
            sftp = client.open_sftp()
        except (paramiko.SSHException, OSError, EOFError) as exc:
            client.close()
            raise TransferError(f"{self.where()}: SFTP subsystem refused: {exc}") from None
        sftp.get_channel().settimeout(s.timeout)
        self.client, self.sftp = client, sftp
        return self

    def _load_key(self) -> paramiko.PKey:
        # loaded here rather than by connect(key_filename=): paramiko then tries every key type and
        # reports the last type's parse error instead of the refused login
        path = Path(self.node.key_file).expanduser()
        try:
            return paramiko.PKey.from_path(path)
        except paramiko.PasswordRequiredException:
            raise FatalNodeError(f"{self.where()}: key file {path} needs a passphrase; load it in ssh-agent and "
                                 "leave KEY_FILE empty") from None
        except (OSError, paramiko.SSHException, ValueError) as exc:
            raise FatalNodeError(f"{self.where()}: cannot read key file {path}: {exc}") from None

    def close(self) -> None:
        for thing in (self.sftp, self.client):
            try:
                if thing is not None:
                    thing.close()
            except Exception:  # noqa: BLE001 - closing a dead connection must not hide the real error
                pass
        self.client = self.sftp = None

    # -- remote queries -----------------------------------------------------------------------
    def exec(self, argv: list[str]) -> tuple[int, str, str]:
        """Run ``argv`` on the node (quoted, no shell expansion of our arguments)."""
        command = " ".join(shlex.quote(a) for a in argv)
        stdin, stdout, stderr = self.client.exec_command(command, timeout=self.settings.timeout)
        stdin.close()
        out = stdout.read().decode("utf-8", "replace")
        err = stderr.read().decode("utf-8", "replace")
        return stdout.channel.recv_exit_status(), out, err

    def stat(self, path: str) -> paramiko.SFTPAttributes | None:
        try:
            return self.sftp.stat(path)
        except FileNotFoundError:
            return None

    def free_bytes(self) -> int:
        """Free bytes for an unprivileged user below the node's destination root: the SFTP
        ``statvfs@openssh.com`` extension (no shell needed), else ``df -P -k`` on the node."""
        try:
            return self._statvfs_free(self.node.root)
        except (OSError, paramiko.SSHException) as exc:
            statvfs_error = str(exc) or type(exc).__name__
        try:
            code, out, err = self.exec(["df", "-P", "-k", "--", self.node.root])
        except (paramiko.SSHException, OSError) as exc:
            code, out, err = -1, "", str(exc) or type(exc).__name__
        lines = out.strip().splitlines()
        if code != 0 or len(lines) < 2:
            raise TransferError(f"{self.where()}: free disk of {self.node.root} unknown: SFTP statvfs failed "
                                f"({statvfs_error}) and 'df -P -k' failed (exit {code}): "
                                f"{err.strip() or out.strip()}")
        fields = lines[-1].split()
        try:
            return int(fields[3]) * 1024  # POSIX df -P: Filesystem 1024-blocks Used Available Capacity Mount
        except (IndexError, ValueError):
            raise TransferError(f"{self.where()}: cannot read the free space from df output {lines[-1]!r}") \
                from None

    def _statvfs_free(self, path: str) -> int:
        # paramiko's client has no statvfs call; the request and reply are those of OpenSSH's
        # PROTOCOL file: f_bsize f_frsize f_blocks f_bfree f_bavail ... as uint64
        from paramiko.sftp import CMD_EXTENDED, CMD_EXTENDED_REPLY

        kind, msg = self.sftp._request(CMD_EXTENDED, "statvfs@openssh.com", path)
        if kind != CMD_EXTENDED_REPLY:
            raise paramiko.SSHException(f"unexpected reply {kind} to statvfs@openssh.com")
        _bsize, frsize, _blocks, _bfree, bavail = (msg.get_int64() for _ in range(5))
        return bavail * frsize

    def sha256(self, path: str) -> str:
        """SHA-256 of a remote file: ``sha256sum`` on the node, else read back over SFTP."""
        method = self.settings.checksum_method
        if method in ("AUTO", "EXEC") and self._exec_ok is not False:
            try:
                code, out, err = self.exec(["sha256sum", "--", path])
            except TimeoutError:  # a slow disk, not a missing command: do not read it all back
                raise TransferError(f"{self.where()}: 'sha256sum {path}' took more than TIMEOUT "
                                    f"{self.settings.timeout} s") from None
            except (paramiko.SSHException, OSError) as exc:  # exec refused (internal-sftp account)
                code, out, err = -1, "", str(exc)
            m = re.match(r"^\\?([0-9a-fA-F]{64})\s", out)
            if code == 0 and m:
                self._exec_ok = True
                return m.group(1).lower()
            if method == "EXEC":
                raise TransferError(f"{self.where()}: 'sha256sum {path}' failed (exit {code}): "
                                    f"{err.strip() or out.strip()}")
            if self._exec_ok is None:
                self.log.info("%s: no remote sha256sum (%s); checksums are read back over SFTP",
                              self.where(), (err.strip() or f"exit {code}")[:200])
            self._exec_ok = False
        digest = hashlib.sha256()
        with self.sftp.open(path, "rb") as handle:
            handle.prefetch()
            while block := handle.read(CHUNK):
                digest.update(block)
        return digest.hexdigest()

    def makedirs(self, directory: str) -> None:
        """``mkdir -p`` below the node's root (the root itself must exist)."""
        root = self.node.root.rstrip("/") or "/"
        if not self._root_ok:
            attrs = self.stat(root)
            if attrs is None or not statmod.S_ISDIR(attrs.st_mode):
                raise TransferError(f"{self.where()}: destination root {root} is not a directory on the node")
            self._root_ok = True
        rel = posixpath.relpath(directory, root)
        current = root
        for part in ([] if rel == "." else rel.split("/")):
            current = posixpath.join(current, part)
            attrs = self.stat(current)
            if attrs is None:
                try:
                    self.sftp.mkdir(current)
                except OSError as exc:
                    if self.stat(current) is None:  # not a race with another thread: a real failure
                        raise TransferError(f"{self.where()}: cannot create directory {current}: {exc}") \
                            from None
            elif not statmod.S_ISDIR(attrs.st_mode):
                raise TransferError(f"{self.where()}: {current} exists and is not a directory")

    # -- transfers ----------------------------------------------------------------------------
    def put_atomic(self, local: Path, final: str, size: int, sha256: str, verify: bool,
                   tmp: str | None = None) -> None:
        """Upload ``local`` to ``final``: temporary name ``tmp``, size and checksum check, atomic rename."""
        self.makedirs(posixpath.dirname(final))
        tmp = tmp or part_name(final)
        try:
            with open(local, "rb") as src, self.sftp.open(tmp, "wb") as dst:
                dst.set_pipelined(True)
                while block := src.read(CHUNK):
                    dst.write(block)
            got = self.sftp.stat(tmp).st_size
            if got != size:
                raise TransferError(f"{self.where()}: {final}: uploaded {got} bytes, expected {size}")
            if verify:
                remote = self.sha256(tmp)
                if remote != sha256:
                    raise TransferError(f"{self.where()}: {final}: SHA-256 mismatch after upload: node has "
                                        f"{remote}, local file {local} has {sha256}")
            self.sftp.posix_rename(tmp, final)
        except BaseException:
            self.remove_quietly(tmp)
            raise

    def get_verified(self, remote: str, tmp_local: Path, verify: bool) -> tuple[int, str]:
        """Download ``remote`` into ``tmp_local``; return (bytes, sha256), checked against the node's."""
        attrs = self.sftp.stat(remote)
        digest = hashlib.sha256()
        n = 0
        with self.sftp.open(remote, "rb") as src, open(tmp_local, "wb") as dst:
            src.prefetch(attrs.st_size)
            while block := src.read(CHUNK):
                digest.update(block)
                dst.write(block)
                n += len(block)
        if n != attrs.st_size:
            raise TransferError(f"{self.where()}: {remote}: received {n} bytes, the node lists {attrs.st_size}")
        local = digest.hexdigest()
        if verify and self.settings.checksum_method != "REREAD":
            remote_sum = self.sha256(remote)
            if remote_sum != local:
                raise TransferError(f"{self.where()}: {remote}: SHA-256 mismatch after download: node has "
                                    f"{remote_sum}, received {local}")
        return n, local

    def remove_quietly(self, path: str) -> None:
        try:
            if self.sftp is not None:
                self.sftp.remove(path)
        except (OSError, paramiko.SSHException, EOFError, socket.error):
            pass  # the connection is gone: the .part file stays, never under the final name
