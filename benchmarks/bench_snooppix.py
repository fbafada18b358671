"""Benchmark of snooppix against wget, which the original Snooppix drove (one wget per link).

A local HTTP server on 127.0.0.1 serves N files behind an index page, with a per-request latency and a
per-connection bandwidth cap to mimic a wide-area link (the CADC -> TERAPIX transfers were limited per
connection, which is why Snooppix ran simultaneous wgets).  Measured in the same run:

* ``wget -r -l1 -nd -np -A PATTERN``: one wget crawling the index (sequential transfers);
* one ``wget`` process per link, NTHREADS at a time (what the Perl Snooppix daemon did);
* ``terapix`` snooppix with NTHREADS = 1 and NTHREADS = N.

Usage::

    python benchmarks/bench_snooppix.py [--files 16] [--size-mb 2] [--rate-mb 8] [--latency-ms 30] [--threads 4]
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


def make_handler(root: Path, rate: float, latency: float):
    class Handler(SimpleHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as real servers (wget reuses connections)

        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(root), **kwargs)

        def log_message(self, *args):
            pass

        def copyfile(self, source, outputfile):
            chunk = 64 << 10
            time.sleep(latency)
            start = time.perf_counter()
            sent = 0
            while block := source.read(chunk):
                outputfile.write(block)
                sent += len(block)
                ahead = sent / rate - (time.perf_counter() - start)  # per-connection bandwidth cap
                if ahead > 0:
                    time.sleep(ahead)

    return Handler


def run_wget_crawl(url: str, dest: Path) -> float:
    t0 = time.perf_counter()
    subprocess.run(["wget", "-q", "-r", "-l1", "-nd", "-np", "-A", "*.fits.fz", "-P", str(dest), url], check=True)
    return time.perf_counter() - t0


def run_wget_parallel(url: str, names: list[str], dest: Path, threads: int) -> float:
    t0 = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(lambda n: subprocess.run(["wget", "-q", "-c", "-P", str(dest), url + n], check=True), names))
    return time.perf_counter() - t0


def run_snooppix(url: str, dest: Path, threads: int, log: Path) -> float:
    from terapix_fw.execute import UnitSpec, execute_unit

    layer = [("URL", url, "bench"), ("DOWNLOAD_DIR", str(dest), "bench"), ("NTHREADS", str(threads), "bench")]
    spec = UnitSpec(step="bench", unit="1", tool="snooppix", config_layers=[layer], inputs=[], outdir=str(dest),
                    log_path=str(log), confine_outputs=False)
    t0 = time.perf_counter()
    result = execute_unit(spec)
    dt = time.perf_counter() - t0
    if result.status != "done":
        raise SystemExit(f"snooppix failed: {result.error}")
    return dt


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", type=int, default=16)
    ap.add_argument("--size-mb", type=float, default=2.0)
    ap.add_argument("--rate-mb", type=float, default=8.0, help="bandwidth cap per connection (MB/s)")
    ap.add_argument("--latency-ms", type=float, default=30.0, help="delay before each response body")
    ap.add_argument("--threads", type=int, default=4)
    args = ap.parse_args()
    if not shutil.which("wget"):
        raise SystemExit("wget is not installed: no reference to compare with")

    work = Path(tempfile.mkdtemp(prefix="bench_snooppix_"))
    try:
        root = work / "remote"
        root.mkdir()
        size = int(args.size_mb * 1e6)
        names = [f"exp{i:04d}.fits.fz" for i in range(args.files)]
        for n in names:
            (root / n).write_bytes(os.urandom(size))
        handler = make_handler(root, args.rate_mb * 1e6, args.latency_ms / 1000.0)
        server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
        url = f"http://127.0.0.1:{server.server_address[1]}/"
        total_mb = args.files * size / 1e6
        print(f"{args.files} files x {args.size_mb} MB = {total_mb:.0f} MB, {args.rate_mb} MB/s per connection, "
              f"{args.latency_ms:.0f} ms latency, {args.threads} threads")

        timings = {}
        timings["wget crawl (sequential)"] = run_wget_crawl(url, work / "w1")
        timings[f"wget x{args.threads} (Snooppix daemon)"] = run_wget_parallel(url, names, work / "w2", args.threads)
        timings["snooppix NTHREADS=1"] = run_snooppix(url, work / "s1", 1, work / "s1.log")
        timings[f"snooppix NTHREADS={args.threads}"] = run_snooppix(url, work / "s2", args.threads, work / "s2.log")
        for d in ("w1", "w2", "s1", "s2"):
            got = sorted(p.name for p in (work / d).glob("*.fits.fz"))
            if got != names:
                raise SystemExit(f"{d}: downloaded {len(got)} of {len(names)} files")
        ref_seq = timings["wget crawl (sequential)"]
        ref_par = timings[f"wget x{args.threads} (Snooppix daemon)"]
        for label, dt in timings.items():
            print(f"{label:<32} {dt:7.2f} s  {total_mb / dt:7.1f} MB/s  "
                  f"ratio to wget crawl {dt / ref_seq:5.2f}  to parallel wget {dt / ref_par:5.2f}")
        server.shutdown()
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
