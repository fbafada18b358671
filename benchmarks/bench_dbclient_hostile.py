"""The dbClient server under a hostile client, on loopback, writing MariaDB (issue 16).

While 8 honest client processes send 500 documents each (the recorder's way: spooled, sent in the
background), one hostile process
  * opens 1,000 connections that send half a request and then nothing (half-open),
  * sends 100 requests with ``Content-Length: -1`` and 100 with a huge length, each followed by a stream
    of bytes (unauthenticated memory exhaustion),
  * sends 100 signed "poisoned" documents (UTF-16 DOCTYPE with an external entity, a document over the
    row limit, a 3,000-character file name, a kind longer than its column, garbage bytes).
Printed: honest documents stored (must be 4,000, none duplicated), the hostile requests' answers, the
server's peak memory (VmHWM), how much longer the honest clients took than in a reference run without the
hostile client measured in the same invocation (the ratio), and whether the server is still up.

    python benchmarks/bench_dbclient_hostile.py [--clients 8] [--docs 500] [--half-open 1000]

Bounded: every wait has a limit (--limit seconds, default 900); loopback only.
"""
from __future__ import annotations

import argparse
import http.client
import json
import os
import resource
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

SECRET = "bench-hostile-secret"


def honest_clients(url: str, workdir: Path, prefix: str, n_clients: int, n_docs: int, limit: float) -> float:
    """Run the honest clients to completion; return their wall time (s)."""
    env = {**os.environ, "TERAPIX_DBCLIENT_SECRET": SECRET}
    start = time.perf_counter()
    procs = [subprocess.Popen([sys.executable, "-m", "terapix_testing.services", url, str(workdir / f"{prefix}{k}"),
                               f"{prefix}{k}", str(n_docs), "0", "async"], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for k in range(n_clients)]
    for p in procs:
        out, err = p.communicate(timeout=limit)
        if p.returncode != 0:
            print(f"honest client failed: {out.strip()} {err[-500:]}")
    return time.perf_counter() - start


class Hostile:
    def __init__(self, port: int, half_open: int, n_lengths: int, n_poison: int):
        self.port, self.half_open, self.n_lengths, self.n_poison = port, half_open, n_lengths, n_poison
        self.answers: dict[str, dict[str, int]] = {"length": {}, "poison": {}}
        self.socks: list[socket.socket] = []
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._lengths), threading.Thread(target=self._poison)]

    def start(self) -> None:
        for _ in range(self.half_open):  # held open until the end (or until the server closes them)
            try:
                s = socket.create_connection(("127.0.0.1", self.port), timeout=30)
                s.sendall(b"POST /documents HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n")
                self.socks.append(s)
            except OSError as exc:
                self.answers.setdefault("half-open refused", {}).setdefault(type(exc).__name__, 0)
                self.answers["half-open refused"][type(exc).__name__] += 1
        for t in self.threads:
            t.start()

    def _note(self, kind: str, what: str) -> None:
        self.answers[kind][what] = self.answers[kind].get(what, 0) + 1

    def _lengths(self) -> None:
        junk = b"<" * (1 << 20)
        for i in range(2 * self.n_lengths):
            length = "-1" if i % 2 == 0 else "99999999999999"
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=30) as s:
                    s.sendall(f"POST /documents HTTP/1.1\r\nHost: x\r\nContent-Length: {length}\r\n"
                              "X-Terapix-Signature: sha256=00\r\n\r\n".encode())
                    try:
                        for _ in range(16):  # up to 16 MB more, as long as the server reads
                            s.sendall(junk)
                    except OSError:
                        pass
                    status = s.recv(64).split(b"\r\n", 1)[0].decode(errors="replace")
                    self._note("length", status.split(" ", 2)[1] if status.count(" ") else f"closed ({status!r})")
            except OSError as exc:
                self._note("length", type(exc).__name__)

    def _poison(self) -> None:
        from terapix_fw.db.ops import Document
        from terapix_fw.dbclient.auth import HEADER, sign
        from terapix_fw.dbclient.xmldoc import MAX_DOCUMENT_ROWS, to_xml
        key = SECRET.encode()
        bodies = [
            ("<?xml version='1.0' encoding='UTF-16'?><!DOCTYPE document [<!ENTITY e SYSTEM 'file:///etc/passwd'>]>"
             "<document xmlns='urn:terapix-fw:dbclient:1' id='p'><node name='a'>&e;</node></document>"
             ).encode("utf-16"),
            to_xml(Document(id="rows").add("exposure", filename="r.fits",
                                           keywords={f"K{i}": "1" for i in range(MAX_DOCUMENT_ROWS + 1)})),
            to_xml(Document(id="long").add("exposure", filename="f" * 3000 + ".fits")),
            to_xml(Document(id="kind").add("record", kind="k" * 100, data={"a": "1"})),
            b"\xff\xfe<\x00d\x00",
        ]
        for i in range(self.n_poison):
            body = bodies[i % len(bodies)].replace(b"id='p'", f"id='p{i}'".encode())
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
                conn.request("POST", "/documents", body=body, headers={HEADER: sign(body, key)})
                resp = conn.getresponse()
                payload = resp.read()
                what = str(resp.status)
                if resp.status == 200:
                    what += " " + ",".join(r["status"] for r in json.loads(payload)["results"])
                self._note("poison", what)
                conn.close()
            except (OSError, http.client.HTTPException) as exc:
                self._note("poison", f"no answer: {type(exc).__name__}")

    def join(self, limit: float) -> None:
        for t in self.threads:
            t.join(limit)

    def close(self) -> int:
        """Close the half-open connections; return how many the server had already closed."""
        closed = 0
        for s in self.socks:
            s.setblocking(False)
            try:
                if s.recv(1) == b"":
                    closed += 1
            except BlockingIOError:
                pass
            except OSError:
                closed += 1
            s.close()
        return closed


def peak_memory_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as handle:
        for line in handle:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def health(port: int) -> dict | None:
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        conn.request("GET", "/health")
        resp = conn.getresponse()
        return json.loads(resp.read()) if resp.status == 200 else None
    except (OSError, http.client.HTTPException, ValueError):
        return None


def counts(url: str, prefix: str) -> tuple[int, int, int]:
    """(documents stored, step rows, distinct steps) of the honest clients with this prefix."""
    from sqlalchemy import func, select
    from terapix_fw.db import schema as S
    from terapix_fw.db.engine import connect
    with connect(url).connect() as conn:
        docs = conn.execute(select(func.count()).select_from(S.documents)
                            .where(S.documents.c.doc_id.like(f"{prefix}%"))).scalar()
        steps = conn.execute(select(func.count()).select_from(S.steps).where(S.steps.c.step.like(f"{prefix}%"))).scalar()
        distinct = conn.execute(select(func.count(func.distinct(S.steps.c.step)))
                                .where(S.steps.c.step.like(f"{prefix}%"))).scalar()
    return docs, steps, distinct


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--docs", type=int, default=500)
    parser.add_argument("--half-open", type=int, default=1000)
    parser.add_argument("--lengths", type=int, default=100, help="requests of each bad length")
    parser.add_argument("--poison", type=int, default=100)
    parser.add_argument("--limit", type=float, default=900.0, help="bound on every wait (s)")
    args = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, args.half_open + 512)), hard))

    from terapix_fw.db.engine import connect, dispose_all
    from terapix_testing.services import MYSQL_SERVER_URL, ServerProcess, create_mysql_database, drop_mysql_database, \
        start_mariadb
    reason = start_mariadb()
    if reason:
        print(f"MariaDB not available: {reason}")
        return 1
    url = create_mysql_database(MYSQL_SERVER_URL, prefix="terapix_bench_hostile")
    connect(url)
    dispose_all()
    total = args.clients * args.docs
    try:
        with tempfile.TemporaryDirectory(prefix="bench-hostile-") as tmp:
            work = Path(tmp)
            srv = ServerProcess(url, SECRET, work / "server")
            try:
                print(f"dbClient server pid {srv.pid} on port {srv.port}, MariaDB; {args.clients} honest clients x "
                      f"{args.docs} documents")
                ref = honest_clients(srv.url, work, "ref", args.clients, args.docs, args.limit)
                ref_docs, _, _ = counts(url, "ref")
                mem_before = peak_memory_mb(srv.pid)
                print(f"reference (no hostile client): {ref_docs} documents stored in {ref:.1f} s; "
                      f"server peak memory {mem_before:.0f} MB")

                hostile = Hostile(srv.port, args.half_open, args.lengths, args.poison)
                hostile.start()
                print(f"hostile: {len(hostile.socks)} half-open connections held; sending bad lengths and "
                      f"poisoned documents")
                loaded = honest_clients(srv.url, work, "hon", args.clients, args.docs, args.limit)
                hostile.join(args.limit)
                docs, steps, distinct = counts(url, "hon")
                closed = hostile.close()
                peak = peak_memory_mb(srv.pid)
                up = health(srv.port)
                # a second reference after the attack: the machine's load drifts, the mean of both is fairer
                ref2 = honest_clients(srv.url, work, "after", args.clients, args.docs, args.limit)
                print(f"reference after the attack: {counts(url, 'after')[0]} documents stored in {ref2:.1f} s")
                ref = (ref + ref2) / 2
                print(f"honest documents stored: {docs} of {total} ({steps - distinct} duplicated step rows)")
                print(f"honest clients' wall time: {loaded:.1f} s under attack vs {ref:.1f} s without (mean of 2) "
                      f"(ratio {loaded / ref:.2f}; delay {loaded - ref:+.1f} s)")
                print(f"bad Content-Length answers: {hostile.answers['length']}")
                print(f"poisoned document answers: {hostile.answers['poison']}")
                if "half-open refused" in hostile.answers:
                    print(f"half-open connections refused: {hostile.answers['half-open refused']}")
                print(f"half-open connections the server had closed by the end: {closed} of {len(hostile.socks)}")
                print(f"server peak memory (VmHWM): {peak:.0f} MB (before the attack: {mem_before:.0f} MB)")
                print(f"server still up: {'yes' if up else 'NO'}"
                      + (f" (applied {up['applied']}, refused {up['refused']}, rejected {up['rejected']})" if up else ""))
                ok = docs == total and steps == distinct and up is not None
            finally:
                srv.stop()
    finally:
        dispose_all()
        drop_mysql_database(url)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
