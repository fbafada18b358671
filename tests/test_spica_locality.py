"""Data locality: two local Dask workers declared as two nodes (worker resources node_a / node_b), each with
its own storage directory; a Spica job runs on the worker of the node that holds its inputs (RDBix storage
records), and a job whose node has no worker runs elsewhere with the fetch of its inputs recorded."""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
from astropy.io import fits
from sqlalchemy import insert, select

from terapix_fw.db import schema as S
from terapix_fw.db.engine import connect
from terapix_fw.spica.jobs import run_jobs

JOB = """<instructions name="{name}" version="T0001">
  <inputs><inputset id="stack"><files pattern="{path}"/></inputset></inputs>
  <steps>
    <step id="release_{name}" tool="spica_release" fanout="all" outdir="release/{name}">
      <config><param name="RELEASE_DATE">2005-06-01</param><param name="COMPRESSION">NONE</param></config>
      <input set="stack"/>
    </step>
  </steps>
</instructions>
"""


def _worker(address: str, node: str, tmp_path):
    return subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_worker", address, "--name", node,
                             "--resources", f"{node}=1", "--no-nanny", "--nthreads", "1",
                             "--local-directory", str(tmp_path / f"dask-{node}"), "--no-dashboard"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=os.environ.copy())


@pytest.fixture
def cluster(tmp_path):
    from dask.distributed import Client, LocalCluster
    cluster = LocalCluster(n_workers=0, processes=False, protocol="tcp", host="127.0.0.1", dashboard_address=None,
                           scheduler_port=0)
    procs = [_worker(cluster.scheduler_address, node, tmp_path) for node in ("node_a", "node_b")]
    try:
        with Client(cluster.scheduler_address) as client:
            client.wait_for_workers(2, timeout=60)
        yield cluster.scheduler_address
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(timeout=30)
        cluster.close()


def test_jobs_run_on_the_node_of_their_data(cluster, tmp_path):
    url = f"sqlite:///{tmp_path / 'rdbix.sqlite'}"
    work = tmp_path / "work"
    with connect(url).begin() as conn:
        for i, node in enumerate(["node_a", "node_b", "node_c"]):  # node_c has no worker
            disk = tmp_path / "disks" / node
            disk.mkdir(parents=True)
            path = disk / f"70000{i}p.fits"
            fits.PrimaryHDU(np.full((8, 8), i, np.float32)).writeto(path)
            eid = conn.execute(insert(S.exposures).values(filename=path.name)).inserted_primary_key[0]
            conn.execute(insert(S.nodes).values(name=node))
            conn.execute(insert(S.storage).values(exposure_id=eid, node=node, path=str(path), path_hash=str(i)))
            name = f"job_{node}"
            xml = tmp_path / f"{name}_spica.xml"
            xml.write_text(JOB.format(name=name, path=path))
            (tmp_path / f"{name}_stack.lst").write_text(f"{path}\n")
            conn.execute(insert(S.spica_jobs).values(
                name=name, version="T0001", mode="image", kind="image", node=node, priority=3 - i,
                astrometric_group=f"g{i}", instruction_file=str(xml), workdir=str(work), status="pending"))
    finished = run_jobs(url, "T0001", scheduler=cluster, parallel=3)
    assert {r["name"]: r["status"] for r in finished} == {"job_node_a": "done", "job_node_b": "done",
                                                          "job_node_c": "done"}
    nodes = {r["name"]: r["node"] for r in finished}
    assert nodes["job_node_a"] == "node_a" and nodes["job_node_b"] == "node_b"   # ran where the data is
    assert nodes["job_node_c"] in ("node_a", "node_b")                          # ran elsewhere...
    with connect(url).connect() as conn:
        transfers = conn.execute(select(S.transfers.c.node, S.transfers.c.path, S.transfers.c.direction)).all()
    assert [(t.node, os.path.basename(t.path), t.direction) for t in transfers] == [
        (nodes["job_node_c"], "700002p.fits", "in")]                          # ... with the fetch recorded
    for i, node in enumerate(["node_a", "node_b", "node_c"]):
        out = work / "release" / f"job_{node}" / f"70000{i}p.fits"
        assert fits.getheader(out)["REL_DATE"] == "2005-06-01"
