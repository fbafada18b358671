"""The persistent digest cache (terapix_fw.db.digests): a digest is reused only for the exact file version it
was computed from (path, device, inode, size, mtime, ctime), on SQLite and MariaDB, by concurrent writers,
and by the runner across runs in fresh work directories."""
from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from terapix_fw.db import digests as D

OLD_NS = 1_600_000_000 * 10**9  # an mtime long past (not racy)


def _write(path: Path, data: bytes, mtime_ns: int = OLD_NS) -> Path:
    path.write_bytes(data)
    os.utime(path, ns=(mtime_ns, mtime_ns))
    return path


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def hashed(monkeypatch):
    """The files the digest cache really read (its calls of hash_file)."""
    seen: list[str] = []
    real = D.hash_file

    def counting(path):
        seen.append(os.path.realpath(path))
        return real(path)

    monkeypatch.setattr(D, "hash_file", counting)
    return seen


def _cache(db_url) -> D.DigestCache:
    """A new process's view: an empty memory over the stored digests."""
    return D.DigestCache(D.DigestStore(db_url))


def _until_ctime_moves(path: Path, old: D.Stamp, change) -> None:
    """Apply ``change`` until the file's ctime differs from ``old``'s (two changes in one clock tick share
    a ctime: the case under test is a later change)."""
    change()
    while D.file_stamp(path).ctime_ns == old.ctime_ns:
        change()


def test_a_stored_digest_is_used_instead_of_reading_the_file(tmp_path, db_url, hashed):
    f = _write(tmp_path / "a.fits", os.urandom(300_000))
    first = _cache(db_url)
    assert first.digest(f) == _sha(f) and hashed == [str(f)]
    assert first.flush() == 1
    second = _cache(db_url)
    assert second.digest(f) == _sha(f)
    assert hashed == [str(f)]  # not read again
    assert len(second.from_store) == 1 and not second.computed
    # through a symbolic link too (the key is the resolved path)
    link = tmp_path / "link.fits"
    link.symlink_to(f)
    assert _cache(db_url).digest(link) == _sha(f) and hashed == [str(f)]


def test_same_size_and_restored_mtime_is_hashed_again(tmp_path, db_url, hashed):
    f = _write(tmp_path / "a.fits", b"A" * 100_000)
    cache = _cache(db_url)
    old = cache.stamped_digest(f)[1]
    cache.flush()

    def rewrite():  # same size, mtime put back: only ctime tells
        _write(f, b"B" * 100_000)
    _until_ctime_moves(f, old, rewrite)
    now = D.file_stamp(f)
    assert (now.size, now.mtime_ns, now.ino) == (old.size, old.mtime_ns, old.ino)
    assert _cache(db_url).digest(f) == hashlib.sha256(b"B" * 100_000).hexdigest()
    assert hashed == [str(f), str(f)]


def test_a_file_replaced_by_rename_is_hashed_again(tmp_path, db_url, hashed):
    f = _write(tmp_path / "a.fits", b"A" * 100_000)
    cache = _cache(db_url)
    cache.digest(f)
    cache.flush()
    new = _write(tmp_path / "new.fits", b"C" * 100_000)  # same size and mtime, another inode
    os.replace(new, f)
    assert _cache(db_url).digest(f) == hashlib.sha256(b"C" * 100_000).hexdigest()
    assert hashed == [str(f), str(f)]


def test_another_path_with_the_same_content_has_its_own_entry(tmp_path, db_url, hashed):
    data = os.urandom(50_000)
    a, b = _write(tmp_path / "a.fits", data), _write(tmp_path / "b.fits", data)
    cache = _cache(db_url)
    assert cache.digest(a) == cache.digest(b) == hashlib.sha256(data).hexdigest()
    assert hashed == [str(a), str(b)]
    cache.flush()
    again = _cache(db_url)
    assert again.digest(b) == again.digest(a) == hashlib.sha256(data).hexdigest()
    assert len(again.from_store) == 2 and len(hashed) == 2


def test_a_file_written_just_now_is_not_stored(tmp_path, db_url, hashed):
    # racy: a write in the same clock tick would leave its stamp unchanged, so it is hashed again next time
    f = tmp_path / "fresh.fits"
    f.write_bytes(b"x" * 1000)
    cache = _cache(db_url)
    assert cache.digest(f) == _sha(f)
    assert cache.flush() == 0
    assert _cache(db_url).digest(f) == _sha(f) and len(hashed) == 2


def test_a_host_does_not_trust_another_hosts_stamps(tmp_path, db_url):
    f = _write(tmp_path / "a.fits", b"a" * 1000)
    here = D.DigestCache(D.DigestStore(db_url, node="here"))
    here.digest(f)
    here.flush()
    assert D.DigestStore(db_url, node="there").lookup([D.file_stamp(f)]) == {}
    assert D.DigestStore(db_url, node="here").lookup([D.file_stamp(f)]) == {D.file_stamp(f): _sha(f)}


WRITER = textwrap.dedent("""
    import sys
    from pathlib import Path
    from terapix_fw.db.digests import DigestStore, file_stamp
    url, order, rounds = sys.argv[1], sys.argv[2], int(sys.argv[3])
    files = sorted(Path(sys.argv[4]).glob("f*.bin"))
    if order == "reversed":
        files.reverse()
    store = DigestStore(url)
    stamps = [file_stamp(f) for f in files]
    for r in range(rounds):
        # each round stores every file (the same rows as the other writer, in its own order)
        store.remember([(s, f"{r:064x}", s.mtime_ns + 10**10) for s in stamps])
    print("ok")
""")


def test_concurrent_writers_neither_corrupt_nor_deadlock(tmp_path, db_url):
    d = tmp_path / "files"
    d.mkdir()
    for k in range(300):
        _write(d / f"f{k:03d}.bin", k.to_bytes(4, "little"))
    D.DigestStore(db_url)  # the schema, before two processes race to create it
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, db_url, order, "20", str(d)], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for order in ("sorted", "reversed")]
    for p in procs:
        out, err = p.communicate(timeout=300)  # a deadlock would hang here
        assert p.returncode == 0 and out.strip() == "ok", err
    store = D.DigestStore(db_url)
    stamps = [D.file_stamp(f) for f in sorted(d.glob("f*.bin"))]
    found = store.lookup(stamps)
    assert set(found) == set(stamps) and set(found.values()) == {f"{19:064x}"}
    from sqlalchemy import func, select
    with store.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(store.table)).scalar() == 300


RUN = """\
<?xml version="1.0"?>
<instructions name="t" version="1">
  <inputs><inputset id="raw"><files pattern="raw/*.fits"/></inputset></inputs>
  <steps>
    <step id="scale" tool="scale" fanout="file">
      <config><param name="OUTPUT_NAME">{stem}.s.fits</param></config>
      <input set="raw"/>
    </step>
    <step id="sum" tool="stack" fanout="group" group-by="FILTER">
      <config><param name="OUTPUT_NAME">sum_{group}.fits</param></config>
      <input step="scale" kind="image"/>
    </step>
  </steps>
</instructions>
"""


def _said(work: Path) -> str:
    log = next((work / "logs").glob("run-*.log")).read_text()
    return [line.split("terapix.run: ", 1)[1] for line in log.splitlines() if "input digests:" in line][-1]


def test_runner_reuses_digests_across_work_directories(tmp_path, fits_files, demo_tools, hashed):
    from lxml import etree

    from terapix_fw.runner import run_instructions

    for f in fits_files:
        os.utime(f, ns=(OLD_NS, OLD_NS))  # delivered long ago (fresh files are racy: never stored)
    xml = tmp_path / "run.xml"
    xml.write_text(RUN)
    db = f"sqlite:///{tmp_path / 'survey.sqlite'}"
    s1 = run_instructions(xml, tmp_path / "w1", jobs=1, progress=False, db_url=db)
    assert s1["done"] == 3 + 2 and _said(tmp_path / "w1") == "input digests: 0 cached, 3 computed"
    # the sum step's inputs are the scale step's products: their digests come from the workers that wrote them
    assert sorted(hashed) == sorted(str(f) for f in fits_files)
    s2 = run_instructions(xml, tmp_path / "w2", jobs=1, progress=False, db_url=db)
    assert s2["done"] == 3 + 2 and _said(tmp_path / "w2") == "input digests: 3 cached, 0 computed"
    assert len(hashed) == 3
    # the history records the true digests of inputs and of the products read downstream
    for summary in (s1, s2):
        root = etree.parse(summary["history"]).getroot()
        for el in root.iter("input"):
            assert el.get("sha256") == _sha(Path(el.get("path")))
    # a raw file changed between runs is hashed again
    with open(fits_files[0], "r+b") as handle:
        handle.seek(2880 * 2 + 4)  # a pixel of the first image extension (after two header blocks)
        handle.write(b"\x42\x42\x42\x42")
    run_instructions(xml, tmp_path / "w3", jobs=1, progress=False, db_url=db)
    assert _said(tmp_path / "w3") == "input digests: 2 cached, 1 computed"
    assert hashed[-1] == str(fits_files[0])


SITE = """<?xml version="1.0" encoding="UTF-8"?>
<site name="digests">
  <storage root="storage" pattern="{filter}" transfer="move" uncompress="false"/>
  <quarantine dir="quarantine"/>
  <cameras unknown="refuse"><camera detector="small*" extensions="4"/></cameras>
  <rules><rule component="PI" owner="PI"/></rules>
</site>
"""


def test_ingestion_fills_the_cache_for_the_stored_file(tmp_path, db_url, hashed):
    from terapix_fw.db.recorder import reset_recorders
    from terapix_fw.ingest.session import IngestSession
    from terapix_fw.sim import simulate_exposure
    from terapix_fw.sim.focalplane import small_focal_plane

    incoming = tmp_path / "incoming"
    simulate_exposure(incoming, seed=3, name="700001p", expnum=700001, focal_plane=small_focal_plane(nccd=4, nx=64, ny=64),
                      density=0.3, star_density=3.0, nthreads=1, cosmic_rays=False, satellite=False,
                      write_refcat=False, write_calibration=False)
    src = incoming / "700001p.fits"
    os.utime(src, ns=(OLD_NS, OLD_NS))  # delivered a while ago
    content = _sha(src)
    reset_recorders()
    try:
        site = tmp_path / "site.xml"
        site.write_text(SITE)
        with IngestSession(site, tmp_path / "work", db_url, quality=False) as session:
            out = session.ingest(src)
    finally:
        reset_recorders()
    assert out.status == "registered" and not src.exists(), out.message  # moved into the storage tree
    hashed.clear()  # ingestion's own reading
    cache = _cache(db_url)
    assert cache.digest(out.stored) == content
    assert not hashed and len(cache.from_store) == 1


def test_through_dbclient_the_cache_is_the_nodes_own(tmp_path, monkeypatch, hashed):
    # dbClient is a write-only spool (nothing can be read back), and stamps are per host: a local file
    monkeypatch.setenv("TERAPIX_DBCLIENT_URL", "http://master.invalid:8765")
    monkeypatch.setenv("TERAPIX_HOME", str(tmp_path / "home"))
    store = D.DigestStore.for_run("sqlite:///" + str(tmp_path / "never.sqlite"), tmp_path)
    assert store.engine.url.database == str((tmp_path / "home" / "digests.sqlite").resolve())
    f = _write(tmp_path / "a.fits", b"z" * 5000)
    cache = D.DigestCache(store)
    cache.digest(f)
    cache.flush()
    again = D.DigestCache(D.DigestStore.for_run(None, tmp_path))
    assert again.digest(f) == _sha(f) and len(hashed) == 1
    assert not (tmp_path / "never.sqlite").exists()


def test_a_file_that_changes_while_it_is_read_is_read_again(tmp_path, monkeypatch):
    """A digest belongs to the stamp the file had before and after the whole read: appended to while the
    first read ends (a writer still at work), the file is read again, and its digest and stamp are those
    of what it holds now; a file that changes during every read gets no digest."""
    from terapix_fw import atomic

    path = _write(tmp_path / "raw.fits", b"x" * 100_000)
    real = atomic.sha256_file
    reads = []

    def read_then_append(p, *args):
        digest = real(p, *args)
        reads.append(digest)
        if len(reads) == 1:
            with open(p, "ab") as handle:
                handle.write(b"more")
        return digest

    monkeypatch.setattr(atomic, "sha256_file", read_then_append)
    digest, stamp, cacheable, _ = D.hash_file(path)
    assert len(reads) == 2
    assert digest == _sha(path) != reads[0]
    assert stamp == D.file_stamp(path) and stamp.size == 100_004
    assert cacheable is None  # just written: racy, not stored

    def always_append(p, *args):
        with open(p, "ab") as handle:
            handle.write(b"more")
        return real(p, *args)

    monkeypatch.setattr(atomic, "sha256_file", always_append)
    with pytest.raises(OSError, match="changed while it was being read"):
        D.hash_file(path)
