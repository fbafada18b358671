"""Benchmark of datatransfer against the OpenSSH ``sftp`` client (what DataTransfer's perl scripts drove).

Two loopback SSH/SFTP nodes (``terapix_datatransfer.loopback``, paramiko's server classes: no sshd is
installed here) receive N files of S MB, half each.  Measured in the same run, to the same servers:

* ``sftp -b``: one OpenSSH client per node, both nodes at once, plain ``put`` (no temporary name,
  no checksum): the reference;
* datatransfer ROUND_ROBIN with NTHREADS = 1 and NTHREADS = T, VERIFY N (atomic rename only) and
  VERIFY Y (size and SHA-256 checked on the node before the rename);
* a second datatransfer pass over files already there (SKIP_EXISTING: checksums only).

The servers are Python (paramiko), so absolute rates are those of this loopback, not of a cluster;
the ratios compare the clients over the same servers.

Usage::

    python benchmarks/bench_datatransfer.py [--files 8] [--size-mb 4] [--threads 4]
"""
from __future__ import annotations

import argparse
import logging
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import paramiko

from terapix_datatransfer.loopback import LoopbackNode
from terapix_fw.execute import UnitSpec, execute_unit


def run_sftp(nodes, key_file: Path, known_hosts: Path, files: list[Path]) -> float:
    """One OpenSSH sftp client per node, in parallel, each putting its half of the files."""
    procs = []
    t0 = time.perf_counter()
    for i, node in enumerate(nodes):
        batch = "".join(f"put {f} /sftp/{f.name}\n" for f in files[i::len(nodes)])
        procs.append(subprocess.Popen(
            ["sftp", "-q", "-b", "-", "-i", str(key_file), "-P", str(node.port), "-o", "BatchMode=yes",
             "-o", f"UserKnownHostsFile={known_hosts}", "-o", "StrictHostKeyChecking=yes",
             "-o", "IdentitiesOnly=yes", "terapix@127.0.0.1"],
            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True))
        procs[-1].stdin.write(batch)
        procs[-1].stdin.close()
    for p in procs:
        if p.wait() != 0:
            raise SystemExit(f"sftp failed: {p.stderr.read()}")
    return time.perf_counter() - t0


def run_datatransfer(work: Path, nodes, key_file, known_hosts, files, remote_dir, **kw) -> tuple[float, dict]:
    layer = [("NODES", ",".join(f"{n.name}=terapix@127.0.0.1:{n.port}:/data" for n in nodes), "bench"),
             ("KEY_FILE", str(key_file), "bench"), ("KNOWN_HOSTS", str(known_hosts), "bench"),
             ("REMOTE_DIR", remote_dir, "bench")] + [(k, str(v), "bench") for k, v in kw.items()]
    spec = UnitSpec(step="bench", unit=remote_dir, tool="datatransfer", config_layers=[layer],
                    inputs=[str(f) for f in files], outdir=str(work), log_path=str(work / f"{remote_dir}.log"))
    t0 = time.perf_counter()
    result = execute_unit(spec)
    elapsed = time.perf_counter() - t0
    if result.status != "done":
        raise SystemExit(f"datatransfer failed: {result.error}")
    status = {}
    for kind, d in result.records:
        if kind == "transfer":
            status[d["status"]] = status.get(d["status"], 0) + 1
    return elapsed, status


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--files", type=int, default=8)
    ap.add_argument("--size-mb", type=float, default=4.0)
    ap.add_argument("--threads", type=int, default=4)
    args = ap.parse_args()
    # the servers log every client hang-up as an error; this is the clients' benchmark
    server_log = logging.getLogger("terapix_datatransfer.loopback")
    server_log.addHandler(logging.NullHandler())
    server_log.propagate = False
    if shutil.which("sftp") is None:
        raise SystemExit("the OpenSSH sftp client is needed for the reference")
    tmp = Path(tempfile.mkdtemp(prefix="bench_datatransfer_"))
    nodes = []
    try:
        key = paramiko.ECDSAKey.generate()
        key_file = tmp / "id_ecdsa"
        key.write_private_key_file(str(key_file))
        for name in ("n1", "n2"):
            (tmp / name / "data").mkdir(parents=True)
            (tmp / name / "sftp").mkdir()
            nodes.append(LoopbackNode(name, tmp / name, key))
        known_hosts = tmp / "known_hosts"
        known_hosts.write_text("".join(n.known_hosts_line() for n in nodes))
        src = tmp / "src"
        src.mkdir()
        size = int(args.size_mb * 1e6)
        rng = np.random.default_rng(1)
        files = []
        for i in range(args.files):
            files.append(src / f"exp{i:03d}.fits.fz")
            files[-1].write_bytes(rng.integers(0, 256, size, dtype=np.uint8).tobytes())
        total = size * args.files / 1e6
        work = tmp / "work"
        print(f"{args.files} files x {args.size_mb} MB = {total:.0f} MB to 2 loopback paramiko SFTP nodes")

        ref = run_sftp(nodes, key_file, known_hosts, files)
        for f in files:  # the reference really delivered the bytes
            node = nodes[files.index(f) % 2]
            assert (node.root / "sftp" / f.name).stat().st_size == size
        print(f"{'OpenSSH sftp -b, one client per node':48s} {ref:7.2f} s  {total / ref:7.1f} MB/s  ratio 1.00")
        runs = [("datatransfer NTHREADS=1 VERIFY=N", "v1n", dict(NTHREADS=1, VERIFY="N")),
                (f"datatransfer NTHREADS={args.threads} VERIFY=N", "vtn", dict(NTHREADS=args.threads, VERIFY="N")),
                ("datatransfer NTHREADS=1 VERIFY=Y", "v1y", dict(NTHREADS=1, VERIFY="Y")),
                (f"datatransfer NTHREADS={args.threads} VERIFY=Y", "vty",
                 dict(NTHREADS=args.threads, VERIFY="Y"))]
        for label, remote_dir, kw in runs:
            elapsed, status = run_datatransfer(work, nodes, key_file, known_hosts, files, remote_dir, **kw)
            assert status == {"done": args.files}, status
            print(f"{label:48s} {elapsed:7.2f} s  {total / elapsed:7.1f} MB/s  ratio {elapsed / ref:.2f}")
        elapsed, status = run_datatransfer(work, nodes, key_file, known_hosts, files, "vty",
                                           NTHREADS=args.threads)
        assert status == {"skipped": args.files}, status
        print(f"{'re-run, all present (SKIP_EXISTING, checksums)':48s} {elapsed:7.2f} s  "
              f"{'':>7s}       ratio {elapsed / ref:.2f}")
        print("ratio = time / time of the OpenSSH sftp reference (lower is faster)")
    finally:
        for node in nodes:
            node.close()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
