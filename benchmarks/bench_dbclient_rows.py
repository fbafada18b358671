"""How long the largest document the dbClient server accepts holds a writer: a document of
MAX_DOCUMENT_ROWS rows of each bulky kind (header keywords, product inputs, quality metrics, extensions),
applied in one transaction on SQLite and MariaDB.  Reference in the same run: the same kinds at a tenth
of the size, to show the cost is linear in rows (no per-row round trip left).

    python benchmarks/bench_dbclient_rows.py [--rows N] [--backends sqlite,mariadb]
"""
from __future__ import annotations

import argparse
import tempfile
import time


def documents(n: int):
    from terapix_fw.db.ops import Document
    return {
        "header keywords": Document(id="k").add("exposure", filename="k.fits",
                                                keywords={f"K{i:06d}": str(i) for i in range(n)}),
        "product inputs": Document(id="p").add("run_start", run_id="r").add("step_start", run_id="r", step="s")
        .add("unit", run_id="r", step="s", unit="u", status="done")
        .add("product", run_id="r", step="s", unit="u", path="/x/stack.fits", kind="stack", checksum="0" * 64,
             inputs=[f"/raw/{i:06d}.fits" for i in range(n)]),
        "quality metrics": Document(id="q").add("quality", exposure="q.fits",
                                                metrics=[{"ccd": i % 36, "name": f"M{i}", "value": 1.0} for i in range(n)]),
        "extensions": Document(id="x").add("exposure", filename="x.fits",
                                           extensions=[{"ccd": i, "extname": "c"} for i in range(n)]),
    }


def main() -> int:
    from terapix_fw.db.engine import connect, dispose_all
    from terapix_fw.db.store import apply_batch
    from terapix_testing.services import create_mysql_database, drop_mysql_database, start_mariadb
    from terapix_fw.dbclient.xmldoc import MAX_DOCUMENT_ROWS, document_rows, parse_documents, to_xml
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=MAX_DOCUMENT_ROWS - 10)
    parser.add_argument("--backends", default="sqlite,mariadb")
    args = parser.parse_args()
    for backend in args.backends.split(","):
        if backend == "mariadb" and start_mariadb():
            print("MariaDB not available")
            continue
        for n in (args.rows // 10, args.rows):
            url = f"sqlite:///{tempfile.mkdtemp()}/r.sqlite" if backend == "sqlite" else create_mysql_database()
            engine = connect(url)
            try:
                for name, doc in documents(n).items():
                    body = to_xml(doc)
                    t0 = time.perf_counter()
                    [parsed] = parse_documents(body)
                    t1 = time.perf_counter()
                    with engine.connect() as conn, conn.begin():
                        [res] = apply_batch(conn, [parsed])
                    t2 = time.perf_counter()
                    print(f"{backend:8s} {name:16s} {document_rows(parsed):6d} rows ({len(body) / 1e6:.1f} MB): "
                          f"parse {t1 - t0:.2f} s, writer held {t2 - t1:.2f} s ({res.status})")
            finally:
                dispose_all()
                if backend == "mariadb":
                    drop_mysql_database(url)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
