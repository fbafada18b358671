"""``terapix web serve`` without a browser (Flask's test client): configuration errors, signed sessions,
CSRF on the login form, no open redirect, roles, the instruction file a submission generates."""
from __future__ import annotations

import re

import pytest


@pytest.fixture(scope="module")
def survey(tmp_path_factory):
    from terapix_fw.web.testing import make_known_survey

    return make_known_survey(tmp_path_factory.mktemp("survey"))


@pytest.fixture(scope="module")
def app(survey, tmp_path_factory):
    from terapix_fw.web.auth import hash_password, load_config
    from terapix_fw.web.console import create_app

    folder = tmp_path_factory.mktemp("console")
    (folder / "c.toml").write_text(
        f'runs_dir = "runs"\n[users.ops]\nrole = "operator"\npassword = "{hash_password("ops-password")}"\n'
        f'[users.bob]\nrole = "pi"\nowner = "PI-Bob"\npassword = "{hash_password("bob-password")}"\n')
    return create_app(survey["url"], load_config(folder / "c.toml"))


def _token(client, path="/login"):
    return re.search(r'name="csrf_token" value="([^"]+)"', client.get(path).get_data(as_text=True)).group(1)


def _login(client, user, password):
    return client.post("/login", data={"username": user, "password": password, "csrf_token": _token(client)})


def test_configuration_errors_name_the_file_and_key(tmp_path):
    from terapix_fw.errors import ConfigError
    from terapix_fw.web.auth import hash_password, load_config

    bad = tmp_path / "plain.toml"
    bad.write_text('[users.eve]\nrole = "operator"\npassword = "secret"\n')
    with pytest.raises(ConfigError, match=r"plain.toml: \[users.eve\]: password: expected an Argon2 hash"):
        load_config(bad)
    bad.write_text(f'[users.eve]\nrole = "root"\npassword = "{hash_password("x" * 8)}"\n')
    with pytest.raises(ConfigError, match=r"\[users.eve\]: role 'root': expected one of operator, control, pi"):
        load_config(bad)
    bad.write_text("[users\n")
    with pytest.raises(ConfigError, match="plain.toml: not TOML"):
        load_config(bad)
    good = tmp_path / "good.toml"
    good.write_text(f'[users.ann]\nrole = "control"\npassword = "{hash_password("ann-password")}"\n')
    config = load_config(good)
    key = (tmp_path / "console.key")
    assert key.stat().st_mode & 0o077 == 0 and config.secret_key == key.read_bytes().strip()


def test_login_needs_csrf_and_never_redirects_off_site(app):
    client = app.test_client()
    refused = client.post("/login", data={"username": "ops", "password": "ops-password"})
    assert refused.status_code == 400 and "session" not in refused.headers.get("Set-Cookie", "")
    token = _token(client)
    resp = client.post("/login", data={"username": "ops", "password": "ops-password", "csrf_token": token,
                                       "next": "//evil.example/x"})
    assert resp.status_code == 302 and resp.headers["Location"] == "/"
    cookie = resp.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert client.get("/status.html").status_code == 200


def test_tampered_session_cookie_is_not_a_login(app):
    client = app.test_client()
    _login(client, "bob", "bob-password")
    cookie = client.get_cookie("session")
    assert cookie is not None
    value = cookie.value
    forged = value[:-2] + ("A" if value[-2] != "A" else "B") + value[-1]
    other = app.test_client()
    other.set_cookie("session", forged)
    assert other.get("/status.html").status_code == 302  # to the login page: the signature does not match


def test_roles(app):
    client = app.test_client()
    assert client.get("/status.html").headers["Location"].startswith("/login?next=")
    _login(client, "bob", "bob-password")
    assert client.get("/submit.html").status_code == 403  # a PI submits nothing
    assert client.get("/status.html").status_code == 403
    resp = client.post("/grade", data={"exposure": "700001p.fits", "grade": "A", "csrf_token": _token(client, "/")})
    assert resp.status_code == 403


def test_generated_instruction_file_escapes_and_validates(tmp_path):
    from terapix_fw.instructions import load_instructions
    from terapix_fw.web.console import instruction_xml

    xml = instruction_xml("t", {"object": 'a"<b>&', "filter": "r.MP9601", "exptime_min": "60"}, "skywatcher",
                          {"NSIDE": "1024"}, fanout="all")
    assert 'object="a&quot;&lt;b&gt;&amp;"' in xml
    path = tmp_path / "i.xml"
    path.write_text(xml)
    doc = load_instructions(path)
    assert doc.inputsets["selection"].queries == [{"object": 'a"<b>&', "filter": "r.MP9601", "exptime_min": "60"}]
    assert doc.steps[0].tool == "skywatcher"


def test_passwd_prints_a_hash_the_console_accepts(tmp_path, monkeypatch, capsys):
    import io

    from terapix_fw.cli import main
    from terapix_fw.web.auth import User, verify_password

    monkeypatch.setattr("sys.stdin", io.StringIO("a long passphrase\n"))
    assert main(["web", "passwd", "--stdin"]) == 0
    digest = capsys.readouterr().out.strip()
    assert digest.startswith("$argon2id$")
    assert verify_password(User("x", "operator", digest), "a long passphrase")
    assert not verify_password(User("x", "operator", digest), "a long passphrasE")
    monkeypatch.setattr("sys.stdin", io.StringIO("short\n"))
    assert main(["web", "passwd", "--stdin"]) == 1
    assert "at least 8 characters" in capsys.readouterr().err


def test_transfer_action_dispatches_to_a_node(survey, tmp_path):
    """An operator's transfer action: DataTransfer sends the selected exposures to a (loopback SFTP)
    node; the action is recorded with the operator's name and its result when the run ends."""
    import time

    import paramiko
    import sqlalchemy as sa

    from terapix_datatransfer.loopback import LoopbackNode
    from terapix_fw.db import connect
    from terapix_fw.web.auth import hash_password, load_config
    from terapix_fw.web.console import create_app

    key = paramiko.ECDSAKey.generate()
    key.write_private_key_file(str(tmp_path / "id_ecdsa"))
    (tmp_path / "node" / "data").mkdir(parents=True)
    node = LoopbackNode("n9", tmp_path / "node", key)
    try:
        (tmp_path / "known_hosts").write_text(node.known_hosts_line())
        (tmp_path / "c.toml").write_text(
            f'runs_dir = "runs"\n[users.ops]\nrole = "operator"\npassword = "{hash_password("ops-password")}"\n'
            f'[transfer]\nNODES = "n9=terapix@127.0.0.1:{node.port}:/data"\nKEY_FILE = "{tmp_path / "id_ecdsa"}"\n'
            f'KNOWN_HOSTS = "{tmp_path / "known_hosts"}"\nRETRY_DELAY = "0"\n')
        app = create_app(survey["url"], load_config(tmp_path / "c.toml"))
        client = app.test_client()
        _login(client, "ops", "ops-password")
        resp = client.post("/transfer", data={"filter": "r.MP9601", "runid": "05AQ01",
                                              "csrf_token": _token(client, "/submit.html")})
        assert resp.status_code == 302, resp.get_data(as_text=True)
        engine = connect(survey["url"])

        def result():
            with engine.connect() as conn:
                return conn.execute(sa.text("SELECT user, result FROM web_actions WHERE action = 'transfer'")).first()
        deadline = time.monotonic() + 120
        while result()[1] == "started":  # the waiter thread records the end of the run
            assert time.monotonic() < deadline, "the transfer run did not end in 120 s"
            time.sleep(0.1)
        assert tuple(result()) == ("ops", "done")
        sent = [p.name for p in (tmp_path / "node" / "data").rglob("*.fits")]
        assert sent == ["700001p.fits"]
    finally:
        node.close()


from terapix_testing.rdbix import _mariadb_session_database, db_url, mariadb_server  # noqa: E402,F401


def test_console_reads_and_writes_each_back_end(tmp_path, db_url):  # noqa: F811 - the fixture above
    """The status counts and a grade through the console, on SQLite and on MariaDB."""
    import sqlalchemy as sa

    from terapix_fw.db import connect
    from terapix_fw.web.auth import hash_password, load_config
    from terapix_fw.web.console import create_app
    from terapix_fw.web.testing import make_known_survey

    make_known_survey(tmp_path, db_url)
    (tmp_path / "c.toml").write_text(
        f'runs_dir = "runs"\n[users.ctl]\nrole = "control"\npassword = "{hash_password("ctl-password")}"\n')
    client = create_app(db_url, load_config(tmp_path / "c.toml")).test_client()
    _login(client, "ctl", "ctl-password")
    page = client.get("/status.html").get_data(as_text=True)
    summary = re.search(r'<table class="data counts" id="status-summary">(.*?)</table>', page, re.S).group(1)
    cells = dict(re.findall(r"<tr><td>([^<]+)</td><td class=\"num\">(\d+)</td>", summary))
    assert cells == {"Images available": "9", "Survey images": "6", "PI images": "3",
                     "Input quality assessment": "4", "Processed": "2", "Output quality assessment": "2",
                     "Delivered": "1"}
    resp = client.post("/grade", data={"exposure": "700006p.fits", "grade": "C", "comment": "ghost",
                                       "csrf_token": _token(client, "/"), "back": "/exposures.html"})
    assert resp.status_code == 302 and resp.headers["Location"] == "/exposures.html"
    with connect(db_url).connect() as conn:
        rows = conn.execute(sa.text("SELECT g.grade, g.author, g.comment FROM grades g JOIN exposures e "
                                    "ON e.id = g.exposure_id WHERE e.filename = '700006p.fits'")).all()
        actions = conn.execute(sa.text("SELECT " + ("`user`" if db_url.startswith("mysql") else '"user"')
                                       + ", action, target FROM web_actions WHERE action = 'grade'")).all()
    assert [tuple(r) for r in rows] == [("C", "ctl", "ghost")]
    assert [tuple(r) for r in actions] == [("ctl", "grade", "700006p.fits")]
