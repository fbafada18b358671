"""Throughput of RDBix through the dbClient server: documents/s into SQLite and MariaDB with 1, 4 and 8
client processes, each document recording one processing step (step_start with its configuration).

Reference measured in the same run: the same documents written directly (embedded mode, one
transaction per document) by one process, so the figures show what the server's batching buys.
The target of the issue is >= 1000 step records/s into MariaDB with 8 clients on a 2-core machine.

    python benchmarks/bench_rdbix.py [--docs 500] [--clients 1,4,8] [--backends sqlite,mariadb]
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SECRET = "bench-secret"


def make_step_documents(prefix: str, n: int):
    from terapix_fw.db.ops import Document
    docs = []
    for i in range(n):
        docs.append(Document(id=f"{prefix}-{i:07d}", node=prefix).add(
            "step_start", run_id="bench-run", step=f"{prefix}-sex-{i:07d}", tool="sextractor",
            tool_version="2.28.0", start=time.time(),
            config={"DETECT_THRESH": "1.5", "ANALYSIS_THRESH": "1.5", "CATALOG_NAME": f"{prefix}-{i}.cat",
                    "PHOT_APERTURES": "5,10,20", "SEEING_FWHM": "0.8"}))
    return docs


def client_process(url: str, spool: str, prefix: str, n: int, mode: str = "live") -> None:
    """One node.  ``live``: build n documents, then submit them one by one as the recorder does (each
    spooled durably - fsync, rename, fsync of the directory - and sent by the background sender in
    batches), and wait until all are acknowledged.  ``replay``: the n documents are already spooled
    (as after an outage) and are replayed with ``flush``: this measures the server alone."""
    from terapix_fw.dbclient.client import Client
    client = Client(url, spool_dir=spool, secret=SECRET)
    docs = make_step_documents(prefix, n)
    if mode == "replay":
        for doc in docs:
            client.spool(doc)
    print("ready", flush=True)
    sys.stdin.readline()  # start together
    start = time.perf_counter()
    if mode == "live":
        for doc in docs:
            client.submit(doc, wait=False)
    spooled = time.perf_counter() - start
    result = client.drain()
    assert result.remaining == 0, result.describe()
    print(f"done {spooled:.3f} {time.perf_counter() - start:.3f}", flush=True)


def run_clients(url: str, n_clients: int, n_docs: int, workdir: Path, mode: str = "live") -> float:
    procs = [subprocess.Popen([sys.executable, __file__, "--client", url,
                               str(workdir / f"spool-{mode}-{n_clients}-{k}"), f"{mode}{n_clients}x{k}", str(n_docs),
                               mode], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
             for k in range(n_clients)]
    for p in procs:
        assert p.stdout.readline().strip() == "ready"
    start = time.perf_counter()
    for p in procs:
        p.stdin.write("go\n")
        p.stdin.flush()
    phases = []
    for p in procs:
        line = p.stdout.readline().split()
        assert line[0] == "done", line
        phases.append((float(line[1]), float(line[2])))
        p.wait()
    elapsed = time.perf_counter() - start
    if os.environ.get("BENCH_VERBOSE"):
        print(f"  per client: spooling {max(a for a, _ in phases):.2f} s, all acknowledged {max(b for _, b in phases):.2f} s")
    return elapsed


def count_steps(url: str) -> int:
    from sqlalchemy import func, select
    from terapix_fw.db import schema as S
    from terapix_fw.db.engine import connect
    with connect(url).connect() as conn:
        return conn.execute(select(func.count()).select_from(S.steps)).scalar()


def direct_rate(url: str, n_docs: int) -> float:
    from terapix_fw.db.engine import connect
    from terapix_fw.db.store import write_document
    engine = connect(url)
    docs = make_step_documents("direct", n_docs)
    start = time.perf_counter()
    for doc in docs:
        write_document(engine, doc)
    return n_docs / (time.perf_counter() - start)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=500, help="documents per client")
    parser.add_argument("--clients", default="1,4,8")
    parser.add_argument("--backends", default="sqlite,mariadb")
    args = parser.parse_args()
    os.environ["TERAPIX_DBCLIENT_SECRET"] = SECRET
    from terapix_testing.services import ServerProcess, create_mysql_database, drop_mysql_database, start_mariadb
    clients = [int(c) for c in args.clients.split(",")]
    print(f"bench_rdbix: {args.docs} step documents per client, clients {clients}, {os.cpu_count()} cores, "
          f"load average {os.getloadavg()[0]:.1f} at start")
    print("live: documents submitted as the recorder does (spooled with fsync, sent in the background);\n"
          "replay: the same number already spooled, replayed by `flush` (the server's own capacity)")
    print(f"{'backend':<8} {'mode':<22} {'docs':>7} {'seconds':>8} {'docs/s':>9} {'vs direct':>9}")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for backend in args.backends.split(","):
            if backend == "mariadb":
                reason = start_mariadb()
                if reason:
                    print(f"mariadb: skipped ({reason})")
                    continue
                url = create_mysql_database(prefix="terapix_bench")
            else:
                url = f"sqlite:///{tmp / 'bench.sqlite'}"
            try:
                ref = direct_rate(url, min(args.docs, 500))
                print(f"{backend:<8} {'direct, 1 process':<22} {min(args.docs, 500):>7} {'':>8} {ref:>9.0f} {1.0:>9.2f}")
                server = ServerProcess(url, SECRET, tmp / f"server-{backend}")
                try:
                    for mode in ("live", "replay"):
                        for n in clients:
                            before = count_steps(url)
                            seconds = run_clients(server.url, n, args.docs, tmp, mode)
                            added = count_steps(url) - before
                            assert added == n * args.docs, f"expected {n * args.docs} new steps, found {added}"
                            rate = added / seconds
                            label = f"{'server' if mode == 'live' else 'replay'}, {n} client(s)"
                            print(f"{backend:<8} {label:<22} {added:>7} {seconds:>8.2f} {rate:>9.0f} "
                                  f"{rate / ref:>9.2f}   (load {os.getloadavg()[0]:.1f})")
                            if backend == "mariadb" and n == 8:
                                verdict = "met" if rate >= 1000 else "NOT met"
                                print(f"target >= 1000 step records/s into MariaDB with 8 clients ({mode}): "
                                      f"{verdict} ({rate:.0f})")
                finally:
                    server.stop()
            finally:
                from terapix_fw.db.engine import dispose_all
                dispose_all()
                if backend == "mariadb":
                    drop_mysql_database(url)
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--client":
        client_process(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]), sys.argv[6])
        sys.exit(0)
    sys.exit(main())
