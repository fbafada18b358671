"""A small SSH/SFTP server on 127.0.0.1 for the datatransfer tests and benchmark, built on paramiko's
own server classes (``ServerInterface``, ``SFTPServerInterface``).

Each :class:`LoopbackNode` serves a local directory as ``/``, accepts one client public key, answers
``sha256sum`` and ``df -P -k`` exec requests (computed here, as a node's coreutils would) and the
``statvfs@openssh.com`` SFTP extension, and can be
told to cut an upload off half-way (``drop_after``/``drop_count``), to corrupt the bytes it stores
(``corrupt_count``) or to refuse exec (``exec_enabled = False``, an ``internal-sftp`` account).
It is no production server: one thread per connection, no limits, loopback only.
"""
from __future__ import annotations

import hashlib
import os
import posixpath
import shlex
import socket
import threading
from pathlib import Path

import paramiko
from paramiko.message import Message
from paramiko.sftp import CMD_EXTENDED, CMD_EXTENDED_REPLY

__all__ = ["LoopbackNode"]


class LoopbackNode:
    """One SSH server on 127.0.0.1 (a free port): ``/`` of the SFTP view is ``root`` on the local disk;
    user ``terapix`` logs in with ``client_key``."""

    __test__ = False  # not a pytest test class

    def __init__(self, name: str, root: Path, client_key: paramiko.PKey):
        self.name = name
        self.root = root
        self.client_key = client_key
        self.host_key = paramiko.ECDSAKey.generate()
        self.exec_enabled = True
        self.statvfs_enabled = True  # answer the statvfs@openssh.com SFTP extension
        self.free_bytes = 10 ** 9  # what df and statvfs report
        self.drop_after: int | None = None  # cut the connection once a .part file has this many bytes
        self.drop_count = 0  # how many uploads to cut off
        self.corrupt_count = 0  # how many uploads to store with a flipped byte
        self.commands: list[str] = []
        self.logins = 0
        self.lock = threading.Lock()
        self.transports: list[paramiko.Transport] = []
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def real(self, path: str) -> Path:
        rel = posixpath.normpath("/" + path).lstrip("/")
        out = (self.root / rel).resolve()
        if out != self.root.resolve() and self.root.resolve() not in out.parents:
            raise PermissionError(path)
        return out

    def known_hosts_line(self, key: paramiko.PKey | None = None) -> str:
        key = key or self.host_key
        return f"[127.0.0.1]:{self.port} {key.get_name()} {key.get_base64()}\n"

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            transport = paramiko.Transport(conn)
            # the server side's own log (clients hanging up count as "connection reset" errors)
            transport.set_log_channel(f"terapix_datatransfer.loopback.{self.name}")
            transport.add_server_key(self.host_key)
            transport.set_subsystem_handler("sftp", _SFTPServer, _RootedSFTP, node=self)
            with self.lock:
                self.transports.append(transport)
            try:
                transport.start_server(server=_Interface(self, transport))
            except (paramiko.SSHException, EOFError, OSError):
                pass

    def close(self) -> None:
        self.sock.close()
        with self.lock:
            for t in self.transports:
                t.close()


class _SFTPServer(paramiko.SFTPServer):
    """paramiko's SFTP server plus OpenSSH's ``statvfs@openssh.com`` extension."""

    def __init__(self, channel, name, server, sftp_si, *args, node: LoopbackNode, **kwargs):
        super().__init__(channel, name, server, sftp_si, *args, node=node, **kwargs)
        self.node = node

    def _process(self, t, request_number, msg):
        if t == CMD_EXTENDED and self.node.statvfs_enabled:
            start = msg.packet.tell()
            if msg.get_text() == "statvfs@openssh.com":
                msg.get_text()  # the path: one file system here
                reply = Message()
                reply.add_int(request_number)
                frsize = 1024
                blocks = 99999999
                bavail = self.node.free_bytes // frsize
                for value in (4096, frsize, blocks, bavail, bavail, 1000, 1000, 1000, 1, 0, 255):
                    reply.add_int64(value)
                self._send_packet(CMD_EXTENDED_REPLY, reply)
                return
            msg.packet.seek(start)
        super()._process(t, request_number, msg)


class _Interface(paramiko.ServerInterface):
    def __init__(self, node: LoopbackNode, transport: paramiko.Transport):
        self.node, self.transport = node, transport

    def get_allowed_auths(self, username):
        return "publickey"

    def check_auth_publickey(self, username, key):
        if username == "terapix" and key == self.node.client_key:
            with self.node.lock:
                self.node.logins += 1
            return paramiko.AUTH_SUCCESSFUL
        return paramiko.AUTH_FAILED

    def check_channel_request(self, kind, chanid):
        return paramiko.OPEN_SUCCEEDED if kind == "session" else paramiko.OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED

    def check_channel_exec_request(self, channel, command):
        if not self.node.exec_enabled:
            return False
        threading.Thread(target=self._exec, args=(channel, command.decode()), daemon=True).start()
        return True

    def _exec(self, channel, command: str) -> None:
        # answer once the client has closed its stdin (it does so after the exec request succeeded):
        # closing the channel earlier would race the server's reply to the request
        while channel.recv(1024):
            pass
        with self.node.lock:
            self.node.commands.append(command)
        argv = shlex.split(command)
        code, out, err = 127, "", f"{argv[0]}: command not found\n"
        try:
            if argv[0] == "sha256sum":
                path = argv[-1]
                digest = hashlib.sha256(self.node.real(path).read_bytes()).hexdigest()
                code, out, err = 0, f"{digest}  {path}\n", ""
            elif argv[0] == "df":
                kb = self.node.free_bytes // 1024
                code, err = 0, ""
                out = ("Filesystem     1024-blocks      Used Available Capacity Mounted on\n"
                       f"/dev/test         99999999         0 {kb:9d}       1% /\n")
        except OSError as exc:
            code, out, err = 1, "", f"{argv[0]}: {argv[-1]}: {exc.strerror}\n"
        channel.sendall(out.encode())
        channel.sendall_stderr(err.encode())
        channel.send_exit_status(code)
        channel.close()


class _Handle(paramiko.SFTPHandle):
    def __init__(self, flags, node: LoopbackNode, transport, part: bool):
        super().__init__(flags)
        self.node, self.transport, self.part = node, transport, part
        self.written = 0
        self.dead = False
        self.corrupt = False
        if part:
            with node.lock:
                if node.corrupt_count:
                    node.corrupt_count -= 1
                    self.corrupt = True

    def stat(self):
        try:
            return paramiko.SFTPAttributes.from_stat(os.fstat(self.readfile.fileno()))
        except OSError as exc:
            return _status(exc)

    def write(self, offset, data):
        if self.dead:  # requests already queued when the connection was cut
            return paramiko.SFTP_CONNECTION_LOST
        if self.part and self.node.drop_after is not None and self.node.drop_count:
            if self.written + len(data) > self.node.drop_after:
                with self.node.lock:
                    self.node.drop_count -= 1
                keep = max(self.node.drop_after - self.written, 0)
                super().write(offset, data[:keep])
                self.writefile.flush()
                self.dead = True
                self.transport.close()  # the node "crashes" half-way through the upload
                return paramiko.SFTP_CONNECTION_LOST
        if self.corrupt and offset == 0 and data:
            data = bytes([data[0] ^ 0xFF]) + data[1:]
        self.written += len(data)
        return super().write(offset, data)


def _status(exc: OSError) -> int:
    return paramiko.SFTPServer.convert_errno(exc.errno)


class _RootedSFTP(paramiko.SFTPServerInterface):
    def __init__(self, server: _Interface, *args, node: LoopbackNode, **kwargs):
        super().__init__(server, *args, **kwargs)
        self.node, self.transport = node, server.transport

    def canonicalize(self, path):
        return posixpath.normpath("/" + path)

    def _attrs(self, real: Path, lstat=False) -> paramiko.SFTPAttributes:
        st = os.lstat(real) if lstat else os.stat(real)
        attrs = paramiko.SFTPAttributes.from_stat(st)
        attrs.filename = real.name
        return attrs

    def list_folder(self, path):
        try:
            real = self.node.real(path)
            return [self._attrs(p) for p in real.iterdir()]
        except OSError as exc:
            return _status(exc)

    def stat(self, path):
        try:
            return self._attrs(self.node.real(path))
        except OSError as exc:
            return _status(exc)

    def lstat(self, path):
        try:
            return self._attrs(self.node.real(path), lstat=True)
        except OSError as exc:
            return _status(exc)

    def open(self, path, flags, attr):
        try:
            real = self.node.real(path)
            fd = os.open(real, flags | getattr(os, "O_BINARY", 0), 0o644)
        except OSError as exc:
            return _status(exc)
        if flags & os.O_WRONLY:
            mode = "ab" if flags & os.O_APPEND else "wb"
        elif flags & os.O_RDWR:
            mode = "a+b" if flags & os.O_APPEND else "r+b"
        else:
            mode = "rb"
        handle = _Handle(flags, self.node, self.transport, real.name.endswith(".part"))
        f = os.fdopen(fd, mode)
        handle.readfile = f
        handle.writefile = f
        return handle

    def remove(self, path):
        try:
            os.remove(self.node.real(path))
        except OSError as exc:
            return _status(exc)
        return paramiko.SFTP_OK

    def rename(self, oldpath, newpath):
        real_new = self.node.real(newpath)
        if real_new.exists():
            return paramiko.SFTP_FAILURE  # SFTPv3 rename refuses to replace, as OpenSSH's does
        return self.posix_rename(oldpath, newpath)

    def posix_rename(self, oldpath, newpath):
        try:
            os.replace(self.node.real(oldpath), self.node.real(newpath))
        except OSError as exc:
            return _status(exc)
        return paramiko.SFTP_OK

    def mkdir(self, path, attr):
        try:
            os.mkdir(self.node.real(path))
        except OSError as exc:
            return _status(exc)
        return paramiko.SFTP_OK

    def rmdir(self, path):
        try:
            os.rmdir(self.node.real(path))
        except OSError as exc:
            return _status(exc)
        return paramiko.SFTP_OK

    def chattr(self, path, attr):
        return paramiko.SFTP_OK
