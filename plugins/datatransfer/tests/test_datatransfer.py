"""datatransfer against real SSH/SFTP servers on 127.0.0.1 (see conftest.py): dispatch policies,
atomic verified uploads, resume, host-key checks, path confinement and the RDBix records."""
from __future__ import annotations

import hashlib

import numpy as np
import pytest

from terapix_fw.errors import ConfigError
from terapix_fw.execute import UnitSpec, execute_unit
from terapix_datatransfer import dispatch
from terapix_datatransfer.nodes import Node, parse_node_spec, read_nodes_file, remote_path


def _payload(seed: int, size: int) -> bytes:
    return np.random.default_rng(seed).integers(0, 256, size, dtype=np.uint8).tobytes()


def _files(tmp_path, sizes, suffix=".fits.fz"):
    src = tmp_path / "src"
    src.mkdir(exist_ok=True)
    out = []
    for i, size in enumerate(sizes):
        path = src / f"exp{i}{suffix}"
        path.write_bytes(_payload(i, size))
        out.append(path)
    return out


def _run(tmp_path, cluster, inputs, nodes=("n1", "n2"), **keywords):
    layer = [("NODES", ",".join(cluster.node_specs(nodes)), "test"), ("KEY_FILE", str(cluster.key_file), "test"),
             ("KNOWN_HOSTS", str(cluster.known_hosts), "test"), ("RETRY_DELAY", "0", "test"),
             ("TIMEOUT", "10", "test")]
    layer += [(k, str(v), "test") for k, v in keywords.items()]
    spec = UnitSpec(step="dispatch", unit="1", tool="datatransfer", config_layers=[layer],
                    inputs=[str(p) for p in inputs], outdir=str(tmp_path / "work"),
                    log_path=str(tmp_path / "logs" / "dispatch.log"), nthreads=2)
    return execute_unit(spec)


def _transfers(result):
    return {d["local"].rsplit("/", 1)[-1]: d for kind, d in result.records if kind == "transfer"}


def _parts(cluster):
    return [p for n in cluster.nodes.values() for p in n.root.rglob("*.part")]


def test_round_robin_puts_verified_files_and_records(tmp_path, cluster):
    files = _files(tmp_path, [3000, 5000, 7000, 4000])
    result = _run(tmp_path, cluster, files, REMOTE_DIR="megacam/05A", NTHREADS=3)
    assert result.status == "done", result.error
    for i, path in enumerate(files):  # input order, alternating nodes
        node = ("n1", "n2")[i % 2]
        stored = cluster.stored(node, f"megacam/05A/{path.name}")
        assert stored.read_bytes() == path.read_bytes()
        assert not cluster.stored(("n2", "n1")[i % 2], f"megacam/05A/{path.name}").exists()
    assert not _parts(cluster)
    rec = _transfers(result)
    assert {r["status"] for r in rec.values()} == {"done"}
    r0 = rec["exp0.fits.fz"]
    assert (r0["direction"], r0["node"], r0["path"], r0["bytes"]) == ("out", "n1", "/data/megacam/05A/exp0.fits.fz",
                                                                     3000)
    assert r0["sha256"] == hashlib.sha256(files[0].read_bytes()).hexdigest() and r0["verified"]
    assert r0["start"] <= r0["end"] and r0["host"] == "127.0.0.1"
    # the checksum was computed on the node (exec sha256sum), on the temporary name, before the rename
    assert any(c.startswith("sha256sum -- /data/megacam/05A/.exp0.fits.fz.") and c.endswith(".part")
               for c in cluster["n1"].commands)
    nodes = {d["name"]: d["free_disk"] for kind, d in result.records if kind == "node"}
    assert nodes == {"n1": cluster["n1"].free_bytes // 1024 * 1024, "n2": cluster["n2"].free_bytes // 1024 * 1024}
    storage = {d["filename"]: d["storage"][0] for kind, d in result.records if kind == "exposure"}
    assert storage["exp3.fits.fz"] == {"node": "n2", "path": "/data/megacam/05A/exp3.fits.fz", "size": 4000,
                                       "checksum": rec["exp3.fits.fz"]["sha256"], "compression": "fpack"}


def test_free_space_policy_unit():
    plan = dispatch.free_space({"a": 30, "b": 15, "c": 10, "huge": 70}, {"n1": 59, "n2": 24})
    assert plan.nodes == {"a": "n1", "b": "n1", "c": "n2"}
    assert "huge" in plan.refused and "no node has room for 70 bytes" in plan.refused["huge"]
    # MIN_FREE: the reserve is kept free on every node
    assert dispatch.free_space({"a": 30}, {"n1": 35, "n2": 31}, reserve=5).nodes == {"a": "n1"}
    reserved = dispatch.free_space({"a": 30}, {"n1": 35, "n2": 31}, reserve=6)
    assert "a" in reserved.refused and not reserved.nodes


def test_free_space_dispatch_over_ssh(tmp_path, cluster):
    cluster["n1"].free_bytes = 59 * 1024  # df reports whole kB
    cluster["n2"].free_bytes = 24 * 1024
    cluster["n1"].statvfs_enabled = False  # an SFTP server without statvfs@openssh.com: df is run
    files = _files(tmp_path, [30000, 15000, 10000, 70000])
    result = _run(tmp_path, cluster, files, DISPATCH="FREE_SPACE")
    assert result.status == "done", result.error
    placed = {name: r["node"] for name, r in _transfers(result).items()}
    assert placed == {"exp0.fits.fz": "n1", "exp1.fits.fz": "n1", "exp2.fits.fz": "n2"}
    assert not cluster.stored("n1", "exp3.fits.fz").exists() and not cluster.stored("n2", "exp3.fits.fz").exists()
    log = (tmp_path / "logs" / "dispatch.log").read_text()
    assert "exp3.fits.fz: not transferred: no node has room for 70000 bytes" in log
    assert any(c.startswith("df -P -k -- /data") for c in cluster["n1"].commands)
    assert not any(c.startswith("df") for c in cluster["n2"].commands)  # statvfs answered
    # MIN_FREE 0.051 MB = 51000 bytes kept free: 60416 - 51000 = 9416 bytes left at most, too few for 10000
    small = _files(tmp_path, [10000], suffix=".fits")
    result = _run(tmp_path, cluster, small, DISPATCH="FREE_SPACE", MIN_FREE="0.051")
    assert result.status == "failed" and "no node has room for 10000 bytes" in result.error
    assert "9416 bytes" in result.error
    assert _run(tmp_path, cluster, small, DISPATCH="FREE_SPACE", MIN_FREE="0.04").status == "done"


def test_interrupted_upload_leaves_no_final_file(tmp_path, cluster):
    (path,) = _files(tmp_path, [300_000])
    cluster["n1"].drop_after, cluster["n1"].drop_count = 40_000, 1
    result = _run(tmp_path, cluster, [path], nodes=("n1",), RETRIES=0)
    assert result.status == "failed"
    assert "node n1 (127.0.0.1)" in result.error and "exp0.fits.fz" in result.error
    assert not cluster.stored("n1", "exp0.fits.fz").exists()
    # what the node had received stays under the temporary name only
    (part,) = _parts(cluster)
    assert part.name.startswith(".exp0.fits.fz.") and 0 < part.stat().st_size < 300_000
    # cut again on the first attempt: the retry, on a new connection, completes and removes the .part
    cluster["n1"].drop_count = 1
    result = _run(tmp_path, cluster, [path], nodes=("n1",), RETRIES=2)
    assert result.status == "done", result.error
    rec = _transfers(result)["exp0.fits.fz"]
    assert rec["attempts"] == 2 and rec["status"] == "done"
    assert cluster.stored("n1", "exp0.fits.fz").read_bytes() == path.read_bytes()
    assert _parts(cluster) == [part]  # the first run's orphan is not this run's to know about
    assert cluster["n1"].logins >= 3


def test_checksum_mismatch_is_reported_and_retried(tmp_path, cluster):
    files = _files(tmp_path, [5000, 6000])
    cluster["n1"].corrupt_count = 10
    result = _run(tmp_path, cluster, files, RETRIES=1)
    assert result.status == "done", result.error  # n2 worked
    rec = _transfers(result)
    bad = rec["exp0.fits.fz"]
    assert bad["status"] == "failed" and bad["attempts"] == 2
    assert "SHA-256 mismatch after upload" in bad["error"] and "node n1" in bad["error"]
    assert "exp0.fits.fz" in bad["error"]
    assert not cluster.stored("n1", "exp0.fits.fz").exists() and not _parts(cluster)
    assert rec["exp1.fits.fz"]["status"] == "done"
    assert not any(d["filename"] == "exp0.fits.fz" for k, d in result.records if k == "exposure")
    # one corrupted write, then a clean one: the retry succeeds
    cluster["n1"].corrupt_count = 1
    result = _run(tmp_path, cluster, files[:1], nodes=("n1",), RETRIES=1)
    assert _transfers(result)["exp0.fits.fz"]["attempts"] == 2
    assert cluster.stored("n1", "exp0.fits.fz").read_bytes() == files[0].read_bytes()


def test_reread_checksum_without_a_shell(tmp_path, cluster):
    """An internal-sftp account: no exec, so the checksum is read back over SFTP and still catches
    a corrupted copy; FREE_SPACE measures such a node with statvfs, and fails without it."""
    cluster["n1"].exec_enabled = False
    cluster["n1"].corrupt_count = 1
    files = _files(tmp_path, [8000])
    result = _run(tmp_path, cluster, files, nodes=("n1",), RETRIES=0)
    assert result.status == "failed" and "SHA-256 mismatch" in result.error
    result = _run(tmp_path, cluster, files, nodes=("n1",), RETRIES=0)
    assert result.status == "done", result.error
    assert cluster.stored("n1", "exp0.fits.fz").read_bytes() == files[0].read_bytes()
    assert cluster["n1"].commands == []
    cluster["n1"].free_bytes = 5 * 1024  # statvfs says 5 kB: no room for 8000 bytes
    result = _run(tmp_path, cluster, files, nodes=("n1",), DISPATCH="FREE_SPACE", SKIP_EXISTING="N")
    assert result.status == "failed" and "no node has room for 8000 bytes" in result.error
    cluster["n1"].statvfs_enabled = False
    result = _run(tmp_path, cluster, files, nodes=("n1",), DISPATCH="FREE_SPACE")
    assert result.status == "failed" and "free disk of no node could be measured" in result.error
    log = (tmp_path / "logs" / "dispatch.log").read_text()
    assert "SFTP statvfs failed" in log and "node n1" in log
    result = _run(tmp_path, cluster, files, nodes=("n1",), CHECKSUM_METHOD="EXEC")
    assert result.status == "failed" and "sha256sum" in result.error


def test_skip_when_already_present_and_replace_when_different(tmp_path, cluster):
    files = _files(tmp_path, [4000, 4000])
    assert _run(tmp_path, cluster, files).status == "done"
    again = _run(tmp_path, cluster, files)
    assert {(r["status"], r["bytes"]) for r in _transfers(again).values()} == {("skipped", 0)}
    # a damaged copy of the same size on n2 is found by its checksum and replaced
    damaged = cluster.stored("n2", "exp1.fits.fz")
    damaged.write_bytes(b"x" * 4000)
    third = _transfers(_run(tmp_path, cluster, files))
    assert third["exp0.fits.fz"]["status"] == "skipped" and third["exp1.fits.fz"]["status"] == "done"
    assert damaged.read_bytes() == files[1].read_bytes()
    forced = _transfers(_run(tmp_path, cluster, files, SKIP_EXISTING="N"))
    assert {r["status"] for r in forced.values()} == {"done"}


def test_host_key_mismatch_is_refused(tmp_path, cluster):
    import paramiko

    impostor = paramiko.ECDSAKey.generate()
    cluster.known_hosts.write_text(cluster["n1"].known_hosts_line(impostor) + cluster["n2"].known_hosts_line())
    files = _files(tmp_path, [1000, 2000, 3000])
    result = _run(tmp_path, cluster, files)
    assert result.status == "done", result.error  # n2's files went through
    rec = _transfers(result)
    for name in ("exp0.fits.fz", "exp2.fits.fz"):
        err = rec[name]["error"]
        assert rec[name]["status"] == "failed" and rec[name]["attempts"] == 1  # never retried
        assert "node n1" in err and "127.0.0.1" in err and "HOST KEY MISMATCH" in err
        assert impostor.fingerprint in err and cluster["n1"].host_key.fingerprint in err
    assert rec["exp1.fits.fz"]["status"] == "done"
    assert cluster["n1"].logins == 0 and not list(cluster.stored("n1").iterdir())
    only_n1 = _run(tmp_path, cluster, files[:1], nodes=("n1",))
    assert only_n1.status == "failed" and "HOST KEY MISMATCH" in only_n1.error


def test_unknown_host_key_refused_unless_policy_says_so(tmp_path, cluster):
    cluster.known_hosts.write_text(cluster["n2"].known_hosts_line())
    files = _files(tmp_path, [1000])
    result = _run(tmp_path, cluster, files, nodes=("n1",))
    assert result.status == "failed"
    assert "not in KNOWN_HOSTS" in result.error and f"ssh-keyscan -p {cluster['n1'].port} 127.0.0.1" in result.error
    missing = _run(tmp_path, cluster, files, nodes=("n1",), KNOWN_HOSTS=str(tmp_path / "nope"))
    assert missing.status == "failed" and "does not exist" in missing.error
    result = _run(tmp_path, cluster, files, nodes=("n1",), HOST_KEY_POLICY="AUTO_ADD")
    assert result.status == "done", result.error
    assert cluster.known_hosts.read_text() == cluster["n2"].known_hosts_line()  # never written to


def test_path_confinement(tmp_path, cluster):
    node = Node("n1", "h", 22, "u", "", "/data")
    assert remote_path(node, "a/b", "c.fits") == "/data/a/b/c.fits"
    for bad in ("../etc/passwd", "/etc/passwd", "a/../../x", "", "a/\x00b"):
        with pytest.raises(PermissionError):
            remote_path(node, bad)
    files = _files(tmp_path, [100])
    for value in ("../outside", "/abs/dir"):
        result = _run(tmp_path, cluster, files, REMOTE_DIR=value)
        assert result.status == "failed" and "REMOTE_DIR" in result.error
    assert not (cluster["n1"].root / "outside").exists()
    # GET names come from outside as well
    result = _run(tmp_path, cluster, ["n1:../node_n2/data/x", "n1:/etc/passwd"], DIRECTION="GET")
    assert result.status == "failed" and "'..'" in result.error


def test_get_back_with_and_without_node(tmp_path, cluster):
    files = _files(tmp_path, [2500, 3500])
    assert _run(tmp_path, cluster, files, REMOTE_DIR="raw").status == "done"
    result = _run(tmp_path, cluster, ["n1:raw/exp0.fits.fz", "raw/exp1.fits.fz", "raw/missing.fits"],
                  DIRECTION="GET", LOCAL_DIR="back")
    assert result.status == "done", result.error
    back = tmp_path / "work" / "back" / "raw"
    assert (back / "exp0.fits.fz").read_bytes() == files[0].read_bytes()
    assert (back / "exp1.fits.fz").read_bytes() == files[1].read_bytes()  # found on n2
    recs = {d["path"]: d for kind, d in result.records if kind in ("transfer", "transfer_error")}
    assert recs["/data/raw/exp1.fits.fz"]["node"] == "n2" and recs["/data/raw/exp1.fits.fz"]["direction"] == "in"
    assert recs["raw/missing.fits"]["status"] == "failed" and "none of the nodes n1, n2" in \
        recs["raw/missing.fits"]["error"]
    assert sorted(p.kind for p in result.products) == ["download", "download"]
    assert not list(back.glob(".*"))
    again = _run(tmp_path, cluster, ["n1:raw/exp0.fits.fz"], DIRECTION="GET", LOCAL_DIR="back")
    assert _transfers(again)["exp0.fits.fz"]["status"] == "skipped"
    assert [p.path for p in again.products] == [str(back / "exp0.fits.fz")]  # still a product of the step


def test_by_key_dispatch(tmp_path, cluster):
    from astropy.io import fits

    src = tmp_path / "src"
    src.mkdir()
    paths = []
    for i, filt in enumerate(["u.MP9301", "r.MP9601", "u.MP9301", None]):
        hdu = fits.PrimaryHDU(np.zeros((4, 4), np.float32))
        if filt:
            hdu.header["FILTER"] = filt
        paths.append(src / f"img{i}.fits")
        hdu.writeto(paths[-1])
    result = _run(tmp_path, cluster, paths, DISPATCH="BY_KEY", DISPATCH_MAP="u.MP9301:n1,*:n2",
                  REMOTE_DIR="megacam/{FILTER}")
    assert result.status == "done", result.error
    placed = {name: r["node"] for name, r in _transfers(result).items()}
    assert placed == {"img0.fits": "n1", "img1.fits": "n2", "img2.fits": "n1"}
    assert cluster.stored("n1", "megacam/u.MP9301/img2.fits").read_bytes() == paths[2].read_bytes()
    assert cluster.stored("n2", "megacam/r.MP9601/img1.fits").exists()
    log = (tmp_path / "logs" / "dispatch.log").read_text()
    assert "no FILTER keyword in the header of" in log and "img3.fits" in log
    strict = _run(tmp_path, cluster, paths[1:2], DISPATCH="BY_KEY", DISPATCH_MAP="u.MP9301:n1")
    assert strict.status == "failed" and "FILTER = 'r.MP9601' is not in DISPATCH_MAP" in strict.error
    wrong = _run(tmp_path, cluster, paths, DISPATCH="BY_KEY", DISPATCH_MAP="u.MP9301:n9")
    assert wrong.status == "failed" and "DISPATCH_MAP" in wrong.error and "n9" in wrong.error


def test_nodes_file_and_node_specs(tmp_path):
    path = tmp_path / "cluster.nodes"
    path.write_text("# name host port user key root\nnode01 10.0.0.11 22 terapix ~/.ssh/id - /data/megacam\n")
    with pytest.raises(ConfigError) as err:
        read_nodes_file(path)
    assert f"{path}:2" in str(err.value) and "expected 6 fields" in str(err.value)
    path.write_text("node01 10.0.0.11 22 terapix - /data/megacam  # first\n\nnode02 n2.lan 2222 tx /k /scratch/\n")
    n1, n2 = read_nodes_file(path, key_file="/default/key")
    assert n1 == Node("node01", "10.0.0.11", 22, "terapix", "/default/key", "/data/megacam")
    assert (n2.port, n2.key_file, n2.root) == (2222, "/k", "/scratch")
    spec = parse_node_spec("a=u@[::1]:2200:/d", "/key")
    assert (spec.host, spec.port, spec.user, spec.root) == ("::1", 2200, "u", "/d")
    for bad in ("a=host", "a=host:22:relative", "a=h:/d/../e", "a=h:70000:/d"):
        with pytest.raises(ConfigError):
            parse_node_spec(bad)


def test_recorded_in_rdbix(tmp_path, cluster, recorded_dropin):
    """A drop-in run recorded in RDBix: transfers, node free disk and storage rows land in their tables."""
    import sqlite3

    from terapix_fw.db.engine import dispose_all
    from terapix_fw.dropin import run_tool_command

    files = _files(tmp_path, [1500, 2500])
    url = recorded_dropin
    argv = [str(p) for p in files] + ["-NODES", ",".join(cluster.node_specs()), "-KEY_FILE",
                                     str(cluster.key_file), "-KNOWN_HOSTS", str(cluster.known_hosts)]
    assert run_tool_command("datatransfer", argv) == 0
    db = sqlite3.connect(tmp_path / "rdbix.sqlite")
    transfers = db.execute("select direction, node, path, bytes, status from transfers order by path").fetchall()
    assert transfers == [("out", "n1", "/data/exp0.fits.fz", 1500, "done"),
                         ("out", "n2", "/data/exp1.fits.fz", 2500, "done")]
    nodes = dict(db.execute("select name, free_disk from nodes").fetchall())
    assert nodes["n1"] == cluster["n1"].free_bytes // 1024 * 1024
    storage = db.execute("select e.filename, s.node, s.path, s.size from storage s join exposures e "
                         "on e.id = s.exposure_id order by e.filename").fetchall()
    assert storage == [("exp0.fits.fz", "n1", "/data/exp0.fits.fz", 1500),
                       ("exp1.fits.fz", "n2", "/data/exp1.fits.fz", 2500)]
    # what the web pages show (DataTransfer's distribution and free disk per node)
    from terapix_fw.web import data

    try:
        page = data.transfers(url)
    finally:
        dispose_all()
    shown = {n["name"]: (n["files"], n["stored_bytes"], n["free_disk"]) for n in page["nodes"]}
    assert shown == {"n1": (1, 1500, nodes["n1"]), "n2": (1, 2500, nodes["n2"])}


def test_remote_dir_template_values_are_made_safe():
    headers = {"FILTER": "../../etc", "RUNID": "05A Q01", "DOTS": ".."}
    read = lambda path, key: headers.get(key)  # noqa: E731 - a fake header reader
    assert dispatch.expand_template("m/{FILTER}/{RUNID}", "x.fits", read) == "m/.._.._etc/05A_Q01"
    with pytest.raises(PermissionError, match="DOTS"):
        dispatch.expand_template("{DOTS}", "x.fits", read)
    with pytest.raises(PermissionError, match="no OBJECT keyword"):
        dispatch.expand_template("{OBJECT}", "x.fits", read)


def test_per_file_units_spread_and_stay_put(tmp_path, cluster):
    """fanout="file": each unit sees one file; ROUND_ROBIN then picks the node by a stable hash of
    the name, so the files spread over the nodes and a re-run sends each to the same node."""
    import zlib

    files = _files(tmp_path, [500] * 6)
    placed = {}
    for path in files:
        result = _run(tmp_path, cluster, [path])
        assert result.status == "done", result.error
        placed[path.name] = _transfers(result)[path.name]["node"]
    assert set(placed.values()) == {"n1", "n2"}
    assert placed == {p.name: ("n1", "n2")[zlib.crc32(p.name.encode()) % 2] for p in files}
    again = _transfers(_run(tmp_path, cluster, [files[0]]))[files[0].name]
    assert again["status"] == "skipped" and again["node"] == placed[files[0].name]


def test_config_lists_parameters_and_reads_back(tmp_path):
    from terapix_fw.config import parse_config_text
    from terapix_fw.plugins import get_tool

    cls = get_tool("datatransfer").cls
    text = cls().default_config_text()
    for keyword in ("NODES", "NODES_FILE", "KNOWN_HOSTS", "HOST_KEY_POLICY", "DISPATCH", "DISPATCH_MAP",
                    "NTHREADS", "RETRIES", "DIRECTION", "CHECKSUM_METHOD"):
        assert any(line.startswith(keyword + " ") for line in text.splitlines()), keyword
    text += "DISPATCH_MAP u.MP9301:n1,*:n2\nNODES n1=terapix@10.0.0.1:2222:/data\n"
    config = cls.parameter_set().resolve(parse_config_text(text, "default.datatransfer"))
    assert config["DISPATCH_MAP"] == ["u.MP9301:n1", "*:n2"] and config["HOST_KEY_POLICY"] == "REJECT"
    assert config["NODES"] == ["n1=terapix@10.0.0.1:2222:/data"] and cls.default_fanout == "all"


def test_instruction_file_step(tmp_path, cluster):
    """A step of an instruction file (default fan-out "all"), recorded by the runner."""
    import sqlite3
    import textwrap

    from terapix_fw.db.engine import dispose_all
    from terapix_fw.runner import run_instructions

    files = _files(tmp_path, [1200, 1300, 1400])
    nodes_file = tmp_path / "cluster.nodes"
    nodes_file.write_text("".join(f"{n} 127.0.0.1 {cluster[n].port} terapix - /data\n" for n in ("n1", "n2")))
    xml = tmp_path / "dispatch.xml"
    xml.write_text(textwrap.dedent(f"""\
        <?xml version="1.0"?>
        <instructions name="dispatch" version="1">
          <inputs><inputset id="raw"><files pattern="{tmp_path}/src/*.fits.fz"/></inputset></inputs>
          <steps>
            <step id="dispatch" tool="datatransfer">
              <config>
                <param name="NODES_FILE">{nodes_file}</param>
                <param name="KEY_FILE">{cluster.key_file}</param>
                <param name="KNOWN_HOSTS">{cluster.known_hosts}</param>
                <param name="REMOTE_DIR">raw</param>
              </config>
              <input set="raw"/>
            </step>
          </steps>
        </instructions>
        """))
    url = f"sqlite:///{tmp_path / 'rdbix.sqlite'}"
    try:
        counts = run_instructions(xml, tmp_path / "run", jobs=1, db_url=url, progress=False)
    finally:
        dispose_all()
    assert counts["done"] == 1 and counts["failed"] == 0, counts
    for i, path in enumerate(files):
        assert cluster.stored(("n1", "n2")[i % 2], f"raw/{path.name}").read_bytes() == path.read_bytes()
    db = sqlite3.connect(tmp_path / "rdbix.sqlite")
    rows = db.execute("select node, path, status from transfers order by path").fetchall()
    assert rows == [("n1", "/data/raw/exp0.fits.fz", "done"), ("n2", "/data/raw/exp1.fits.fz", "done"),
                    ("n1", "/data/raw/exp2.fits.fz", "done")]


def test_files_already_on_a_node_are_not_sent_to_another(tmp_path, cluster):
    """FREE_SPACE picks other nodes once free space changes; a re-run must not copy the files again."""
    cluster["n1"].free_bytes, cluster["n2"].free_bytes = 10 ** 6, 10 ** 5
    files = _files(tmp_path, [3000, 4000, 5000])
    first = _transfers(_run(tmp_path, cluster, files, DISPATCH="FREE_SPACE"))
    assert {r["node"] for r in first.values()} == {"n1"}
    cluster["n1"].free_bytes, cluster["n2"].free_bytes = 10 ** 5, 10 ** 6
    extra = _files(tmp_path, [3000, 4000, 5000, 6000])[3]
    second = _transfers(_run(tmp_path, cluster, files + [extra], DISPATCH="FREE_SPACE"))
    assert {n: (r["node"], r["status"]) for n, r in second.items()} == {
        "exp0.fits.fz": ("n1", "skipped"), "exp1.fits.fz": ("n1", "skipped"), "exp2.fits.fz": ("n1", "skipped"),
        "exp3.fits.fz": ("n2", "done")}
    assert sorted(p.name for p in cluster.stored("n2").iterdir()) == ["exp3.fits.fz"]
    # a same-size copy that differs is replaced where it is
    cluster.stored("n1", "exp1.fits.fz").write_bytes(b"0" * 4000)
    third = _transfers(_run(tmp_path, cluster, files, DISPATCH="FREE_SPACE"))
    assert (third["exp1.fits.fz"]["node"], third["exp1.fits.fz"]["status"]) == ("n1", "done")
    assert cluster.stored("n1", "exp1.fits.fz").read_bytes() == files[1].read_bytes()


def test_missing_destination_root_is_named(tmp_path, cluster):
    files = _files(tmp_path, [100])
    layer_nodes = f"n1=terapix@127.0.0.1:{cluster['n1'].port}:/nodata"
    spec = UnitSpec(step="dispatch", unit="1", tool="datatransfer",
                    config_layers=[[("NODES", layer_nodes, "t"), ("KEY_FILE", str(cluster.key_file), "t"),
                                    ("KNOWN_HOSTS", str(cluster.known_hosts), "t"), ("RETRIES", "1", "t"),
                                    ("RETRY_DELAY", "0", "t")]],
                    inputs=[str(files[0])], outdir=str(tmp_path / "work"), log_path=str(tmp_path / "x.log"))
    result = execute_unit(spec)
    assert result.status == "failed"
    assert "node n1" in result.error and "exp0.fits.fz" in result.error
    assert "destination root /nodata is not a directory on the node" in result.error


def test_refused_login_and_unreachable_node(tmp_path, cluster):
    import socket

    import paramiko

    files = _files(tmp_path, [100])
    other = tmp_path / "other_key"
    paramiko.ECDSAKey.generate().write_private_key_file(str(other))
    result = _run(tmp_path, cluster, files, nodes=("n1",), KEY_FILE=str(other), RETRIES=3)
    assert result.status == "failed" and "authentication as terapix failed" in result.error
    assert "node n1 (terapix@127.0.0.1:" in result.error and "exp0.fits.fz" in result.error
    assert _log_warnings(tmp_path).count("attempt") == 0  # a refused login is not retried
    (tmp_path / "garbage_key").write_text("not a key\n")
    result = _run(tmp_path, cluster, files, nodes=("n1",), KEY_FILE=str(tmp_path / "garbage_key"))
    assert result.status == "failed" and f"cannot read key file {tmp_path / 'garbage_key'}" in result.error
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    spec = UnitSpec(step="dispatch", unit="1", tool="datatransfer",
                    config_layers=[[("NODES", f"n9=terapix@127.0.0.1:{port}:/data", "t"),
                                    ("KEY_FILE", str(cluster.key_file), "t"), ("HOST_KEY_POLICY", "WARN", "t"),
                                    ("RETRIES", "1", "t"), ("RETRY_DELAY", "0", "t")]],
                    inputs=[str(files[0])], outdir=str(tmp_path / "work"), log_path=str(tmp_path / "n9.log"))
    result = execute_unit(spec)
    assert result.status == "failed" and "attempt 2 failed" in result.error and "cannot connect" in result.error
    assert f"node n9 (terapix@127.0.0.1:{port})" in result.error


def _log_warnings(tmp_path) -> str:
    return "\n".join(line for line in (tmp_path / "logs" / "dispatch.log").read_text().splitlines()
                     if "WARNING" in line)


def test_orphan_part_files_of_killed_runs_are_removed_when_old(tmp_path, cluster):
    import os
    import time

    files = _files(tmp_path, [700])
    data = cluster.stored("n1")
    old, young = data / ".exp0.fits.fz.0123456789ab.part", data / ".exp0.fits.fz.ba9876543210.part"
    other = data / ".unrelated.fits.0123456789ab.part"
    for p in (old, young, other):
        p.write_bytes(b"partial")
    two_days_ago = time.time() - 48 * 3600
    for p in (old, other):
        os.utime(p, (two_days_ago, two_days_ago))
    result = _run(tmp_path, cluster, files, nodes=("n1",))
    assert result.status == "done", result.error
    assert not old.exists()  # ours, two days old
    assert young.exists()  # maybe another run's upload in progress
    assert other.exists()  # not a file of this run
    assert cluster.stored("n1", "exp0.fits.fz").read_bytes() == files[0].read_bytes()
    os.utime(young, (two_days_ago, two_days_ago))
    _run(tmp_path, cluster, files, nodes=("n1",), PART_MAX_AGE=0)
    assert young.exists()  # 0 = never
