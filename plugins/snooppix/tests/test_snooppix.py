"""snooppix against a local HTTP server on 127.0.0.1 (no network)."""
from __future__ import annotations

import base64
import hashlib
import re
import sqlite3

import numpy as np

from terapix_fw.execute import UnitSpec, execute_unit
from terapix_snooppix.links import parse_checksums, select_links
from terapix_snooppix.transfer import part_path


def sha256_digest_header(data: bytes) -> str:
    """An RFC 9530 ``Repr-Digest`` value."""
    return "sha-256=:" + base64.b64encode(hashlib.sha256(data).digest()).decode() + ":"


def _payload(seed: int, size: int) -> bytes:
    return np.random.default_rng(seed).integers(0, 256, size, dtype=np.uint8).tobytes()


def _index(*hrefs: str) -> str:
    rows = "\n".join(f'<tr><td><a href="{h}">{h}</a></td></tr>' for h in hrefs)
    return f"<html><body><h1>Index</h1><a href='?C=N;O=D'>Name</a><table>{rows}</table></body></html>"


def _run(tmp_path, url, **keywords):
    layer = [("URL", url, "test"), ("DOWNLOAD_DIR", "dl", "test"), ("RETRY_DELAY", "0", "test"),
             ("TIMEOUT", "10", "test")]
    layer += [(k, str(v), "test") for k, v in keywords.items()]
    spec = UnitSpec(step="snoop", unit="1", tool="snooppix", config_layers=[layer], inputs=[],
                    outdir=str(tmp_path / "work"), log_path=str(tmp_path / "logs" / "snoop.log"), nthreads=2)
    return execute_unit(spec)


def _transfers(result):
    return {d["name"]: d for kind, d in result.records if kind == "transfer"}


def test_downloads_matching_files_once(tmp_path, archive):
    files = {f"exp{i}.fits.fz": archive.put(f"exp{i}.fits.fz", _payload(i, 3000 + 1000 * i)) for i in range(4)}
    archive.put("notes.txt", b"not matched")
    archive.index["/data/"] = _index(*files, "notes.txt", "subdir/")
    result = _run(tmp_path, archive.url + "/data/", NTHREADS=3)
    assert result.status == "done", result.error
    dl = tmp_path / "work" / "dl"
    assert sorted(p.name for p in dl.iterdir()) == sorted([*files, "snooppix.sqlite", ".snooppix.sqlite.lock"])
    for name, data in files.items():
        assert (dl / name).read_bytes() == data
    transfers = _transfers(result)
    assert set(transfers) == set(files)
    for name, rec in transfers.items():
        assert rec["status"] == "done" and rec["direction"] == "in" and rec["node"]
        assert rec["bytes"] == len(files[name]) == rec["size"]
        assert rec["sha256"] == hashlib.sha256(files[name]).hexdigest()
        assert rec["end"] >= rec["start"]
    assert sorted(p.kind for p in result.products) == ["download"] * 4
    nodes = [d for kind, d in result.records if kind == "node"]
    assert len(nodes) == 1 and nodes[0]["name"] == transfers["exp0.fits.fz"]["node"] and nodes[0]["free_disk"] > 0
    with sqlite3.connect(dl / "snooppix.sqlite") as conn:
        assert {r[0] for r in conn.execute("SELECT name FROM downloads")} == set(files)

    # second pass: the ledger says everything is there; no file is requested again, even once removed
    (dl / "exp0.fits.fz").unlink()
    gets_before = dict(archive.gets)
    again = _run(tmp_path, archive.url + "/data/")
    assert again.status == "done", again.error
    assert _transfers(again) == {}
    assert {k: v for k, v in archive.gets.items() if k != "/data/"} == \
        {k: v for k, v in gets_before.items() if k != "/data/"}

    # a new file on the server is the only one fetched
    archive.put("exp9.fits.fz", _payload(9, 500))
    archive.index["/data/"] = _index(*files, "exp9.fits.fz")
    third = _run(tmp_path, archive.url + "/data/")
    assert set(_transfers(third)) == {"exp9.fits.fz"}


def test_malicious_links_are_confined(tmp_path, archive):
    good = archive.put("good.fits.fz", b"G" * 100)
    archive.put("evil.fits.fz", b"E" * 100)
    archive.index["/data/"] = _index(
        "good.fits.fz", "../evil.fits.fz", "%2e%2e/evil.fits.fz", "..%2Fevil.fits.fz", "%2Fetc%2Fevil.fits.fz",
        "sub%2F..%2F..%2Fevil.fits.fz", "..\\evil.fits.fz", ".hidden.fits.fz", "a%00b.fits.fz",
        "http://example.org/evil.fits.fz", "javascript:alert(1)//x.fits.fz", "file:///etc/evil.fits.fz",
        "data:text/plain,x.fits.fz", f"http://user:pw@{archive.url[7:]}/evil.fits.fz",
        "snooppix.sqlite", "snooppix.sqlite-journal")
    result = _run(tmp_path, archive.url + "/data/", PATTERN="*.fits.fz,*.sqlite*")
    assert result.status == "done", result.error
    assert set(_transfers(result)) == {"good.fits.fz"}
    # nothing was written anywhere but the download directory
    written = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file()
                     and not p.is_relative_to(archive.root))
    assert written == ["logs/snoop.log", "work/dl/.snooppix.sqlite.lock", "work/dl/good.fits.fz",
                       "work/dl/snooppix.sqlite"]
    assert (tmp_path / "work" / "dl" / "good.fits.fz").read_bytes() == good
    log = (tmp_path / "logs" / "snoop.log").read_text()
    assert log.count(" refused: ") == 15
    assert "is not the index's host" in log and "download record" in log and "scheme 'javascript'" in log


def test_select_links_rules():
    base = "http://archive.test:8080/megacam/"
    links, rejected = select_links(
        ["a.fits.fz", "/other/b.fits.fz", "http://archive.test:8080/c.fits.fz", "http://archive.test/d.fits.fz",
         "https://mirror.test/e.fits.fz", "f.fits.fz#frag", "g.fits.fz?sig=1", "a.fits.fz", "A.FITS.FZ"],
        base, ["*.fits.fz"], allowed_hosts=["mirror.test"])
    assert [(l.name, l.url) for l in links] == [
        ("a.fits.fz", base + "a.fits.fz"), ("b.fits.fz", "http://archive.test:8080/other/b.fits.fz"),
        ("c.fits.fz", "http://archive.test:8080/c.fits.fz"), ("e.fits.fz", "https://mirror.test/e.fits.fz"),
        ("f.fits.fz", base + "f.fits.fz"), ("g.fits.fz", base + "g.fits.fz?sig=1")]
    reasons = {r.href: r.reason for r in rejected}
    assert "not the index's host" in reasons["http://archive.test/d.fits.fz"]  # another port
    assert "second link" in reasons["a.fits.fz"]


def test_parse_checksums_formats():
    sha = hashlib.sha256(b"x").hexdigest()
    md5 = hashlib.md5(b"y").hexdigest()
    text = f"{sha}  a.fits.fz\n{md5} *dir/b.fits.fz\nSHA256 (c.fits.fz) = {sha.upper()}\nbogus line\n"
    assert parse_checksums(text) == {"a.fits.fz": ("sha256", sha), "b.fits.fz": ("md5", md5),
                                     "c.fits.fz": ("sha256", sha)}
    assert parse_checksums(md5 + "\n", default_name="z.fits") == {"z.fits": ("md5", md5)}


def test_resume_after_dropped_connection(tmp_path, archive):
    data = archive.put("big.fits.fz", _payload(1, 200_000))
    archive.truncate_once.add("big.fits.fz")
    archive.index["/data/"] = _index("big.fits.fz")
    result = _run(tmp_path, archive.url + "/data/", RETRIES=2)
    assert result.status == "done", result.error
    rec = _transfers(result)["big.fits.fz"]
    assert rec["attempts"] == 2 and rec["resumed_from"] == 100_000
    assert archive.range_requests == [("big.fits.fz", "bytes=100000-")]
    assert (tmp_path / "work" / "dl" / "big.fits.fz").read_bytes() == data
    assert not part_path(tmp_path / "work" / "dl" / "big.fits.fz").exists()


def test_resume_partial_file_of_an_earlier_run(tmp_path, archive):
    data = archive.put("r.fits.fz", _payload(2, 10_000))
    archive.digests["r.fits.fz"] = sha256_digest_header(data)
    archive.index["/data/"] = _index("r.fits.fz")
    dl = tmp_path / "work" / "dl"
    dl.mkdir(parents=True)
    part_path(dl / "r.fits.fz").write_bytes(data[:4000])
    result = _run(tmp_path, archive.url + "/data/")
    rec = _transfers(result)["r.fits.fz"]
    assert rec["status"] == "done" and rec["bytes"] == 6000 and rec["size"] == 10_000
    assert "sha256 (header)" in rec["verified"]
    assert (dl / "r.fits.fz").read_bytes() == data


def test_checksums_verified_and_mismatch_discarded(tmp_path, archive):
    ok = archive.put("ok.fits.fz", _payload(3, 5000))
    bad = archive.put("bad.fits.fz", _payload(4, 5000))
    archive.put("ok.fits.fz.md5", hashlib.md5(ok).hexdigest().encode() + b"\n")
    archive.put("SHA256SUMS", f"{hashlib.sha256(ok).hexdigest()}  ok.fits.fz\n"
                              f"{hashlib.sha256(b'other').hexdigest()}  bad.fits.fz\n".encode())
    archive.index["/data/"] = _index("ok.fits.fz", "ok.fits.fz.md5", "bad.fits.fz", "SHA256SUMS")
    result = _run(tmp_path, archive.url + "/data/", RETRIES=1)
    assert result.status == "done", result.error  # one file out of two made it
    transfers = _transfers(result)
    assert transfers["ok.fits.fz"]["status"] == "done"
    assert "md5 (published)" in transfers["ok.fits.fz"]["verified"]
    assert "sha256 (published)" in transfers["ok.fits.fz"]["verified"]
    assert transfers["bad.fits.fz"]["status"] == "failed"
    assert "sha256 checksum mismatch" in transfers["bad.fits.fz"]["error"]
    assert transfers["bad.fits.fz"]["attempts"] == 2
    dl = tmp_path / "work" / "dl"
    assert not (dl / "bad.fits.fz").exists() and not part_path(dl / "bad.fits.fz").exists()
    assert [p.path for p in result.products] == [str(dl / "ok.fits.fz")]
    # the failed file is not in the ledger: the next run tries it again
    with sqlite3.connect(dl / "snooppix.sqlite") as conn:
        assert [r[0] for r in conn.execute("SELECT name FROM downloads")] == ["ok.fits.fz"]
    assert bad  # served, but never accepted


def test_not_found_is_not_retried_and_all_failed_fails_the_unit(tmp_path, archive):
    archive.index["/data/"] = _index("gone.fits.fz")
    result = _run(tmp_path, archive.url + "/data/", RETRIES=3)
    assert result.status == "failed"
    assert "every transfer" in result.error and "HTTP 404" in result.error
    assert archive.gets["/data/gone.fits.fz"] == 1


def test_unreadable_index_names_the_url(tmp_path, archive):
    result = _run(tmp_path, archive.url + "/nothing/", RETRIES=0)
    assert result.status == "failed"
    assert "URL" in result.error and "/nothing/" in result.error and "404" in result.error


def test_dropin_command_line(tmp_path, archive, monkeypatch, capsys):
    from terapix_fw.dropin import run_tool_command

    data = archive.put("d.fits.fz", b"D" * 1234)
    archive.index["/data/"] = _index("d.fits.fz")
    monkeypatch.setenv("TERAPIX_HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    code = run_tool_command("snooppix", [archive.url + "/data/", "-DOWNLOAD_DIR", "incoming",
                                         "-NTHREADS", "2", "-PATTERN", "*.fz"])
    assert code == 0
    assert (tmp_path / "incoming" / "d.fits.fz").read_bytes() == data


def test_config_lists_parameters_and_reads_back(tmp_path):
    from terapix_fw.config import parse_config_text
    from terapix_fw.plugins import get_tool

    cls = get_tool("snooppix").cls
    text = cls().default_config_text()
    for keyword in ("URL", "PATTERN", "DOWNLOAD_DIR", "NTHREADS", "RETRIES", "TIMEOUT", "ALLOWED_HOSTS"):
        assert any(line.startswith(keyword + " ") for line in text.splitlines()), keyword
    config = cls.parameter_set().resolve(parse_config_text(text, "default.snooppix"))
    assert config["PATTERN"] == ["*.fits.fz"] and config["ALLOWED_HOSTS"] == [] and config["NTHREADS"] == 4


def test_bad_url_is_a_config_error(tmp_path):
    result = _run(tmp_path, "ftp://example.org/x/")
    assert result.status == "failed" and "URL" in result.error and "ftp://example.org/x/" in result.error


def test_recorded_run_on_the_transfers_web_page(tmp_path, archive, recorded_dropin):
    """A drop-in run recorded in RDBix (TERAPIX_DB_URL) shows on the page snooppix adds through the
    web_pages hook; a hostile but legal file name is escaped there."""
    from terapix_fw.dropin import run_tool_command
    from terapix_fw.web import build_site

    hostile = "<img src=x onerror=alert(1)>.fits.fz"
    archive.put(hostile, b"H" * 2048)
    archive.put("ok.fits.fz", b"K" * 4096)
    archive.index["/data/"] = _index("%3Cimg%20src%3Dx%20onerror%3Dalert(1)%3E.fits.fz", "ok.fits.fz",
                                     "missing.fits.fz")
    assert run_tool_command("snooppix", [archive.url + "/data/", "-DOWNLOAD_DIR", "in", "-RETRIES", "0"]) == 0
    assert (tmp_path / "in" / hostile).read_bytes() == b"H" * 2048
    build_site(recorded_dropin, tmp_path / "site")
    page = (tmp_path / "site" / "transfers.html").read_text()
    assert "<img" not in page and "&lt;img src=x onerror=alert(1)&gt;.fits.fz" in page
    assert "ok.fits.fz" in page and "4.1 kB" in page
    free = re.search(r"<tr><td>[^<]+</td><td class=\"num\">0</td><td class=\"num\">0 B</td>"
                     r"<td class=\"num\">([0-9.]+ [kMGT]?B)</td>", page)
    assert free, "the free disk of the download node is shown"
    assert "missing.fits.fz" in page and "HTTP 404" in page
    assert 'href="transfers.html">Transfers</a>' in (tmp_path / "site" / "index.html").read_text()
    # provenance: each download's parent is the index URL it came from, kept as a URL
    products = (tmp_path / "site" / "products.html").read_text()
    assert f'<span class="path">{archive.url}/data/</span>' in products and "http:/127" not in products


def test_ftp_directory_with_published_checksums_and_resume(tmp_path, ftp_archive):
    root = ftp_archive.root
    (root / "night1").mkdir()
    a = _payload(10, 70_000)
    b = _payload(11, 30_000)
    (root / "night1" / "a.fits.fz").write_bytes(a)
    (root / "night1" / "b.fits.fz").write_bytes(b)
    (root / "night1" / "a.fits.fz.md5").write_text(hashlib.md5(a).hexdigest() + "  a.fits.fz\n")
    (root / "night1" / "SHA256SUMS").write_text(f"{hashlib.sha256(b).hexdigest()}  b.fits.fz\n")
    (root / "night1" / ".hidden.fits.fz").write_bytes(b"h")
    (root / "night1" / "sub.fits.fz").mkdir()  # a directory whose name matches: not a file
    dl = tmp_path / "work" / "dl"
    dl.mkdir(parents=True)
    part_path(dl / "a.fits.fz").write_bytes(a[:25_000])  # left by an interrupted run

    result = _run(tmp_path, ftp_archive.url + "/night1")  # no trailing slash: it is a directory
    assert result.status == "done", result.error
    transfers = _transfers(result)
    assert set(transfers) == {"a.fits.fz", "b.fits.fz"}
    assert (dl / "a.fits.fz").read_bytes() == a and (dl / "b.fits.fz").read_bytes() == b
    assert transfers["a.fits.fz"]["resumed_from"] == 25_000 and transfers["a.fits.fz"]["bytes"] == 45_000
    assert transfers["a.fits.fz"]["verified"] == "size, md5 (published)"
    assert transfers["b.fits.fz"]["verified"] == "size, sha256 (published)"
    assert transfers["a.fits.fz"]["url"] == ftp_archive.url + "/night1/a.fits.fz"
    assert "'.hidden.fits.fz' refused" in (tmp_path / "logs" / "snoop.log").read_text()

    again = _run(tmp_path, ftp_archive.url + "/night1/")
    assert again.status == "done" and _transfers(again) == {}


def test_ftp_login_password_never_recorded(tmp_path, ftp_archive):
    data = _payload(12, 5000)
    (ftp_archive.root / "c.fits.fz").write_bytes(data)
    url = ftp_archive.url.replace("ftp://", "ftp://obs:secret@") + "/"
    result = _run(tmp_path, url)
    assert result.status == "done", result.error
    rec = _transfers(result)["c.fits.fz"]
    assert rec["url"] == ftp_archive.url.replace("ftp://", "ftp://obs@") + "/c.fits.fz"
    assert "secret" not in repr(result.records) and "secret" not in repr(result.products)
    with sqlite3.connect(tmp_path / "work" / "dl" / "snooppix.sqlite") as conn:
        assert "secret" not in repr(conn.execute("SELECT * FROM downloads").fetchall())
    assert "put FTP credentials in ~/.netrc" in (tmp_path / "logs" / "snoop.log").read_text()

    wrong = _run(tmp_path, ftp_archive.url.replace("ftp://", "ftp://obs:wrong@") + "/", RETRIES=0)
    assert wrong.status == "failed" and "wrong" not in wrong.error


def test_subdirectories_are_only_below_the_index():
    from terapix_snooppix.links import subdirectories

    base = "http://archive.test/megacam/05A/"
    hrefs = ["night1/", "night2/", "night1/", "../", "/", "/megacam/", "/megacam/05B/", "?C=N;O=D", "night3/?x=1",
             "http://archive.test/megacam/05A/night4/", "http://other.test/megacam/05A/night5/",
             "https://archive.test/megacam/05A/night6/", "a.fits.fz", "night7/../../", "%2e%2e/"]
    assert subdirectories(hrefs, base) == [base + "night1/", base + "night2/", base + "night4/"]


def test_recursive_scan_of_an_archive_tree(tmp_path, archive):
    for name in ("n1a.fits.fz", "n1b.fits.fz", "n2a.fits.fz", "deep.fits.fz", "top.fits.fz"):
        archive.put(name, name.encode() * 100)
    archive.index["/data/"] = _index("top.fits.fz", "night1/", "night2/", "../", "/", "?C=M;O=A")
    archive.index["/data/night1/"] = _index("n1a.fits.fz", "n1b.fits.fz", "../")
    archive.index["/data/night2/"] = _index("n2a.fits.fz", "deeper/", "/data/")
    archive.index["/data/night2/deeper/"] = _index("deep.fits.fz")
    result = _run(tmp_path, archive.url + "/data/", RECURSE_DEPTH=1)
    assert result.status == "done", result.error
    assert set(_transfers(result)) == {"top.fits.fz", "n1a.fits.fz", "n1b.fits.fz", "n2a.fits.fz"}
    assert archive.gets["/data/night2/deeper/"] == 0 and archive.gets["/"] == 0
    assert archive.gets["/data/"] == 1  # the link back to /data/ from night2 is not followed
    deeper = _run(tmp_path, archive.url + "/data/", RECURSE_DEPTH=2)
    assert set(_transfers(deeper)) == {"deep.fits.fz"}


def test_recursive_ftp_scan_and_duplicate_names(tmp_path, ftp_archive):
    root = ftp_archive.root
    (root / "n1").mkdir()
    (root / "n2").mkdir()
    (root / "n1" / "x.fits.fz").write_bytes(b"1" * 1000)
    (root / "n2" / "x.fits.fz").write_bytes(b"2" * 1000)  # same name in another night: refused
    (root / "n2" / "y.fits.fz").write_bytes(b"3" * 1000)
    result = _run(tmp_path, ftp_archive.url + "/", RECURSE_DEPTH=1)
    assert result.status == "done", result.error
    assert set(_transfers(result)) == {"x.fits.fz", "y.fits.fz"}
    assert (tmp_path / "work" / "dl" / "x.fits.fz").read_bytes() == b"1" * 1000
    assert "a file named 'x.fits.fz' is also in" in (tmp_path / "logs" / "snoop.log").read_text()


def test_watch_command_polls_the_archive(tmp_path, archive, monkeypatch):
    """``terapix snooppix --every 0 --count 3``: three recorded passes; a file that appears between
    passes is fetched by the next one, and nothing is fetched twice."""
    from terapix_fw.cli import main

    archive.put("a.fits.fz", b"a" * 300)
    archive.put("b.fits.fz", b"b" * 300)
    archive.index["/data/"] = lambda nth: _index("a.fits.fz", *(["b.fits.fz"] if nth >= 2 else []))
    monkeypatch.setenv("TERAPIX_HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    assert main(["snooppix", "--every", "0", "--count", "3", archive.url + "/data/", "-DOWNLOAD_DIR", "in"]) == 0
    assert archive.gets["/data/"] == 3
    assert archive.gets["/data/a.fits.fz"] == 1 and archive.gets["/data/b.fits.fz"] == 1
    assert (tmp_path / "in" / "b.fits.fz").read_bytes() == b"b" * 300
    assert len(list((tmp_path / "home" / "logs").glob("snooppix-*.log"))) >= 1


def test_https_with_the_archive_certificate_authority(tmp_path, https_archive):
    data = https_archive.put("s.fits.fz", _payload(20, 3000))
    https_archive.index["/data/"] = _index("s.fits.fz")
    # certificates are always verified: an archive signed by an unknown authority is refused...
    refused = _run(tmp_path, https_archive.url + "/data/", RETRIES=0)
    assert refused.status == "failed" and "CERTIFICATE_VERIFY_FAILED" in refused.error
    assert https_archive.gets["/data/"] == 0
    # ... and accepted with its authority in CA_FILE
    result = _run(tmp_path, https_archive.url + "/data/", CA_FILE=https_archive.certfile)
    assert result.status == "done", result.error
    assert (tmp_path / "work" / "dl" / "s.fits.fz").read_bytes() == data
    bad_ca = _run(tmp_path, https_archive.url + "/data/", CA_FILE=tmp_path / "missing.pem", RETRIES=0)
    assert bad_ca.status == "failed" and "CA_FILE" in bad_ca.error


def test_http_credentials_from_netrc(tmp_path, archive, monkeypatch):
    data = archive.put("p.fits.fz", _payload(21, 2000))
    archive.index["/data/"] = _index("p.fits.fz")
    archive.basic_auth = "cfhtls:s3cret"
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    denied = _run(tmp_path, archive.url + "/data/", RETRIES=0)
    assert denied.status == "failed" and "HTTP 401" in denied.error
    netrc = home / ".netrc"
    netrc.write_text("machine 127.0.0.1 login cfhtls password s3cret\n")
    netrc.chmod(0o600)  # netrc refuses a password file others can read
    result = _run(tmp_path, archive.url + "/data/")
    assert result.status == "done", result.error
    assert (tmp_path / "work" / "dl" / "p.fits.fz").read_bytes() == data
    assert "s3cret" not in repr(result.records)


def test_ftp_server_without_resume_restarts_from_zero(tmp_path, ftp_archive):
    data = _payload(13, 20_000)
    (ftp_archive.root / "r.fits.fz").write_bytes(data)
    handler = ftp_archive.server.handler

    def ftp_REST(self, line):  # an old server: REST not implemented
        self.respond("502 Command not implemented.")
    monkey = type("NoRest", (handler,), {"ftp_REST": ftp_REST})
    ftp_archive.server.handler = monkey
    dl = tmp_path / "work" / "dl"
    dl.mkdir(parents=True)
    part_path(dl / "r.fits.fz").write_bytes(data[:5000])
    result = _run(tmp_path, ftp_archive.url + "/", RETRIES=1)
    assert result.status == "done", result.error
    rec = _transfers(result)["r.fits.fz"]
    assert rec["attempts"] == 2 and rec["resumed_from"] == 0 and rec["bytes"] == 20_000
    assert (dl / "r.fits.fz").read_bytes() == data


def test_one_pass_at_a_time_per_download_directory(tmp_path, archive):
    """An overlapping pass (a slow cron job, a second daemon) is refused instead of writing into the same
    partial files."""
    import fcntl

    archive.put("l.fits.fz", b"l" * 100)
    archive.index["/data/"] = _index("l.fits.fz")
    dl = tmp_path / "work" / "dl"
    dl.mkdir(parents=True)
    with open(dl / ".snooppix.sqlite.lock", "a") as held:
        fcntl.flock(held.fileno(), fcntl.LOCK_EX)
        busy = _run(tmp_path, archive.url + "/data/")
    assert busy.status == "failed" and "another snooppix run is using" in busy.error
    assert archive.gets["/data/"] == 0
    assert _run(tmp_path, archive.url + "/data/").status == "done"  # the lock is free again


# -- hardening (issue 16, finding 8) ------------------------------------------------------------------

def _ledger_names(tmp_path) -> set[str]:
    with sqlite3.connect(tmp_path / "work" / "dl" / "snooppix.sqlite") as conn:
        return {row[0] for row in conn.execute("SELECT name FROM downloads")}


def test_long_link_name_downloads_and_every_file_reaches_the_ledger(tmp_path, archive):
    """A 248-byte link name is valid, but '.NAME.snooppix-part' would be 264 bytes: the partial file gets
    a hashed name, and a local failure on one file (here a directory in the way) fails that file only:
    the others of the pass are in the ledger, and the next pass does not fetch them again."""
    long_name = "x" * 240 + ".fits.fz"
    assert len(long_name.encode()) == 248
    files = {n: archive.put(n, _payload(i, 5000)) for i, n in enumerate([long_name, "a.fits.fz", "blocked.fits.fz"])}
    archive.index["/data/"] = _index(*files)
    (tmp_path / "work" / "dl" / "blocked.fits.fz").mkdir(parents=True)
    result = _run(tmp_path, archive.url + "/data/")
    transfers = _transfers(result)
    assert transfers[long_name]["status"] == "done" and transfers["a.fits.fz"]["status"] == "done"
    assert transfers["blocked.fits.fz"]["status"] == "failed"
    assert "cannot write" in transfers["blocked.fits.fz"]["error"]
    assert (tmp_path / "work" / "dl" / long_name).read_bytes() == files[long_name]
    assert len(part_path(tmp_path / long_name).name.encode()) <= 255
    assert _ledger_names(tmp_path) == {long_name, "a.fits.fz"}
    gets = dict(archive.gets)
    _run(tmp_path, archive.url + "/data/")
    assert archive.gets[f"/data/{long_name}"] == gets[f"/data/{long_name}"]  # not fetched again


def test_redirects_checked_against_allowed_hosts_at_every_hop(tmp_path, archive):
    port = archive.url.rsplit(":", 1)[1]
    data = archive.put("r.fits.fz", _payload(7, 4000))
    archive.index["/data/"] = _index("r.fits.fz")
    # the link is on the index's host, the redirect leads to another host name (same server)
    archive.redirects["/data/r.fits.fz"] = f"http://localhost:{port}/files/r.fits.fz"
    result = _run(tmp_path, archive.url + "/data/")
    rec = _transfers(result)["r.fits.fz"]
    assert rec["status"] == "failed" and "not in ALLOWED_HOSTS" in rec["error"]
    assert archive.gets["/files/r.fits.fz"] == 0 and not (tmp_path / "work" / "dl" / "r.fits.fz").exists()
    result = _run(tmp_path, archive.url + "/data/", ALLOWED_HOSTS="localhost")
    assert _transfers(result)["r.fits.fz"]["status"] == "done"
    assert (tmp_path / "work" / "dl" / "r.fits.fz").read_bytes() == data


def test_server_sending_more_than_announced_is_a_failed_download(tmp_path, archive):
    archive.put("long.fits.fz", _payload(8, 6000))
    good = archive.put("good.fits.fz", _payload(9, 6000))
    archive.short_length["long.fits.fz"] = 100  # announces 5900 bytes, sends 6000
    archive.index["/data/"] = _index("long.fits.fz", "good.fits.fz")
    result = _run(tmp_path, archive.url + "/data/", RETRIES=0)
    transfers = _transfers(result)
    assert transfers["long.fits.fz"]["status"] == "failed"
    assert "more than the 5900 bytes it announced" in transfers["long.fits.fz"]["error"]
    dl = tmp_path / "work" / "dl"
    assert not (dl / "long.fits.fz").exists() and not part_path(dl / "long.fits.fz").exists()
    assert (dl / "good.fits.fz").read_bytes() == good and _ledger_names(tmp_path) == {"good.fits.fz"}
