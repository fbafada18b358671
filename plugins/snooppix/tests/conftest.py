"""A local HTTP server for snooppix tests: serves a temporary folder on 127.0.0.1, with Range support,
optional digest headers, connections dropped half-way, and a request log."""
from __future__ import annotations

import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest


class ArchiveServer:
    def __init__(self, root: Path):
        self.root = root
        # URL path of a directory -> HTML of its index page, or a callable(nth request) returning it
        self.index: dict[str, object] = {}
        self.digests: dict[str, str] = {}  # file name -> value of a Repr-Digest header
        self.truncate_once: set[str] = set()  # names whose first GET stops half-way
        self.range_requests: list[tuple[str, str]] = []
        self.gets: Counter[str] = Counter()
        self.basic_auth: str | None = None  # "user:password" required when set
        self.redirects: dict[str, str] = {}  # URL path -> Location of a 302 answer
        self.short_length: dict[str, int] = {}  # file name -> bytes fewer announced in Content-Length than sent
        self.lock = threading.Lock()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def use_tls(self, certfile: Path, keyfile: Path) -> None:
        """Serve HTTPS with this certificate (call before the server starts)."""
        import ssl

        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(certfile, keyfile)
        self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
        self.url = self.url.replace("http://", "https://")

    def put(self, name: str, data: bytes) -> bytes:
        (self.root / name).write_bytes(data)
        return data

    def _handler(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # keep the test output clean
                pass

            def do_GET(self):
                path = urlsplit(self.path).path
                if server.basic_auth is not None:
                    import base64
                    wanted = "Basic " + base64.b64encode(server.basic_auth.encode()).decode()
                    if self.headers.get("Authorization") != wanted:
                        self.send_response(401)
                        self.send_header("WWW-Authenticate", 'Basic realm="proprietary data"')
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                with server.lock:
                    server.gets[path] += 1
                    first = server.gets[path] == 1
                if path in server.redirects:
                    self.send_response(302)
                    self.send_header("Location", server.redirects[path])
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if path in server.index:
                    page = server.index[path]
                    body = (page(server.gets[path]) if callable(page) else page).encode()
                    self.send_response(200)
                    self.send_header("Content-Type", "text/html; charset=utf-8")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                    return
                if path + "/" in server.index:  # what http.server and Apache do for a directory
                    self.send_response(301)
                    self.send_header("Location", path + "/")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                name = unquote(path.rsplit("/", 1)[-1])
                file = server.root / name
                if not name or "/" in name or not file.is_file():
                    self.send_error(404)
                    return
                data = file.read_bytes()
                start = 0
                rng = self.headers.get("Range")
                if rng:
                    server.range_requests.append((name, rng))
                    start = int(rng.split("=")[1].split("-")[0])
                    if start >= len(data):
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(data)}")
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    self.send_response(200)
                body = data[start:]
                self.send_header("Content-Length", str(len(body) - server.short_length.get(name, 0)))
                if name in server.short_length:
                    self.close_connection = True
                if name in server.digests:
                    self.send_header("Repr-Digest", server.digests[name])
                self.end_headers()
                if first and name in server.truncate_once:
                    self.wfile.write(body[: len(body) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(body)

        return Handler


def self_signed_certificate(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 signed by itself (it is its own certificate authority)."""
    import datetime
    import ipaddress

    x509 = pytest.importorskip("cryptography.x509")
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "snooppix test archive")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    certfile, keyfile = folder / "archive.crt", folder / "archive.key"
    certfile.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    keyfile.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
    return certfile, keyfile


@pytest.fixture
def https_archive(tmp_path):
    root = tmp_path / "remote_tls"
    root.mkdir()
    server = ArchiveServer(root)
    server.certfile, keyfile = self_signed_certificate(tmp_path)
    server.use_tls(server.certfile, keyfile)
    server.thread.start()
    yield server
    server.httpd.shutdown()
    server.httpd.server_close()


@pytest.fixture
def archive(tmp_path):
    root = tmp_path / "remote"
    root.mkdir()
    server = ArchiveServer(root)
    server.thread.start()
    yield server
    server.httpd.shutdown()
    server.httpd.server_close()


class FtpArchive:
    """A local FTP server (pyftpdlib) on 127.0.0.1: anonymous read access and a user obs/secret."""

    def __init__(self, root: Path):
        import warnings

        with warnings.catch_warnings():  # pyftpdlib 2.x still imports asyncore/asynchat on Python 3.11
            warnings.simplefilter("ignore", DeprecationWarning)
            from pyftpdlib.authorizers import DummyAuthorizer
            from pyftpdlib.handlers import FTPHandler
            from pyftpdlib.servers import ThreadedFTPServer

        self.root = root
        authorizer = DummyAuthorizer()
        authorizer.add_anonymous(str(root))
        authorizer.add_user("obs", "secret", str(root), perm="elr")
        handler = type("Handler", (FTPHandler,), {"authorizer": authorizer, "banner": "test archive",
                                                  "auth_failed_timeout": 0.01})
        self.server = ThreadedFTPServer(("127.0.0.1", 0), handler)
        self.url = f"ftp://127.0.0.1:{self.server.address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever,
                                       kwargs={"timeout": 0.05, "handle_exit": False}, daemon=True)


@pytest.fixture
def ftp_archive(tmp_path):
    pytest.importorskip("pyftpdlib")  # listed in the test extra of plugins/snooppix/pyproject.toml
    import logging
    logging.getLogger("pyftpdlib").setLevel(logging.WARNING)
    root = tmp_path / "ftproot"
    root.mkdir()
    server = FtpArchive(root)
    server.thread.start()
    yield server
    server.server.close_all()
