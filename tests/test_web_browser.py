"""The public report and the operations console in a real browser (Debian's headless Chromium driven by
Selenium), on the known survey of :mod:`terapix_fw.web.testing` whose every count is computed by hand.

The static site is copied to another directory and served over HTTP under a sub-path, so that every
link must be relative.  The console runs under waitress on a free local port.  Screenshots of the main
pages are taken (PNG): into ``$TERAPIX_SCREENSHOTS`` when set (``TERAPIX_SCREENSHOTS=web/screenshots``
refreshes the reviewer's copies in the repository), else into a temporary folder, so that running the
suite never rewrites tracked files.
"""
from __future__ import annotations

import csv
import datetime as dt
import http.client
import io
import os
import shutil
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
SHOTS = Path(os.environ.get("TERAPIX_SCREENSHOTS") or Path(tempfile.gettempdir()) / f"terapix-screenshots-{os.getpid()}")

if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
    if os.environ.get("CI") == "true":
        raise RuntimeError("browser tests need Debian's chromium and chromium-driver (scripts/setup.sh installs them)")
    pytest.skip("chromium / chromedriver not installed", allow_module_level=True)

PASSWORDS = {"ops": "operator-pw-1", "ctl": "control-pw-1", "bob": "bob-pi-pw-1", "carol": "carol-pi-pw-1"}


def _until(predicate, timeout=30.0, what="condition"):
    """Wait for ``predicate()`` to be truthy (the event), failing with ``what`` after ``timeout``."""
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException

    deadline = time.monotonic() + timeout
    while True:
        try:
            value = predicate()
        except (NoSuchElementException, StaleElementReferenceException):
            value = None  # the page is being replaced by the next one (a redirect after a form)
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


@pytest.fixture(scope="module")
def survey(tmp_path_factory):
    from terapix_fw.web.testing import make_known_survey

    return make_known_survey(tmp_path_factory.mktemp("survey"))


@pytest.fixture(scope="module")
def static_site(survey, tmp_path_factory):
    """The report built, then moved to another directory and served over HTTP under /report/."""
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    from terapix_fw.db.engine import dispose_all
    from terapix_fw.web import build_site

    built = tmp_path_factory.mktemp("built") / "site"
    build_site(survey["url"], built)
    dispose_all()
    docroot = tmp_path_factory.mktemp("elsewhere")
    shutil.copytree(built, docroot / "report")
    shutil.rmtree(built)  # nothing may point back to where it was built

    class Quiet(SimpleHTTPRequestHandler):
        def __init__(self, *a, **kw):
            super().__init__(*a, directory=str(docroot), **kw)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield {"base": f"http://127.0.0.1:{server.server_address[1]}/report/", "dir": docroot / "report"}
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def console(survey, tmp_path_factory):
    from waitress.server import create_server

    from terapix_fw.web.auth import hash_password, load_config
    from terapix_fw.web.console import create_app

    folder = tmp_path_factory.mktemp("console")
    roles = {"ops": ("operator", ""), "ctl": ("control", ""), "bob": ("pi", "PI-Bob"), "carol": ("pi", "PI-Carol")}
    lines = ['runs_dir = "runs"', f'product_roots = ["{survey["raw"]}"]', ""]
    for name, (role, owner) in roles.items():
        lines += [f"[users.{name}]", f'role = "{role}"', f'password = "{hash_password(PASSWORDS[name])}"']
        if owner:
            lines.append(f'owner = "{owner}"')
    (folder / "console.toml").write_text("\n".join(lines) + "\n")
    app = create_app(survey["url"], load_config(folder / "console.toml"))
    server = create_server(app, host="127.0.0.1", port=0, threads=4)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    yield {"base": f"http://127.0.0.1:{server.effective_port}", "app": app, "folder": folder}
    server.close()


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    downloads = tmp_path_factory.mktemp("downloads")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--window-size=1400,900", f"--user-data-dir={tmp_path_factory.mktemp('profile')}"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})  # console errors (CSP, scripts)
    options.add_experimental_option("prefs", {"download.default_directory": str(downloads),
                                              "download.prompt_for_download": False})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    driver.execute_cdp_cmd("Page.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)})
    driver.downloads = downloads
    yield driver
    driver.quit()


def _shot(driver, name):
    SHOTS.mkdir(parents=True, exist_ok=True)
    height = driver.execute_script("return Math.min(document.documentElement.scrollHeight, 3000)")
    driver.set_window_size(1400, max(900, height))
    driver.save_screenshot(str(SHOTS / f"{name}.png"))
    driver.set_window_size(1400, 900)


def _db_rows(survey, sql, **params):
    import sqlalchemy as sa

    from terapix_fw.db import connect
    with connect(survey["url"]).connect() as conn:
        return [tuple(r) for r in conn.execute(sa.text(sql), params)]


def _table_names(driver):
    _until(lambda: driver.execute_script("return document.querySelector('p.table-info') !== null"),
           what="the image table")
    return {td.text for td in driver.find_elements("css selector", "table.datatable tbody tr td:nth-child(2)")}


def _login(driver, base, user, password=None, next_path=None):
    driver.get(base + "/login" + (f"?next={urllib.parse.quote(next_path)}" if next_path else ""))
    driver.find_element("name", "username").send_keys(user)
    driver.find_element("name", "password").send_keys(password or PASSWORDS[user])
    driver.find_element("css selector", "#login-form button").click()


def _logout(driver, base):
    driver.get(base + "/")
    buttons = driver.find_elements("css selector", "nav form button")
    if buttons:
        buttons[0].click()
        _until(lambda: driver.find_elements("css selector", "nav a.user"), what="logged out")


# ---------------------------------------------------------------------------------------------------

PUBLIC = {"700001p.fits", "700002p.fits", "700003p.fits", "700004p.fits", "700005p.fits", "700006p.fits",
          "800003p.fits"}  # 800001p (Bob's) and 800002p (Carol's) are proprietary until 2099


def test_search_and_filters_narrow_the_image_table(browser, static_site):
    d = browser
    d.get(static_site["base"] + "exposures.html")
    assert _table_names(d) == PUBLIC
    # the table fits a 1400 px window: no horizontal scrolling of the page or of the table
    assert d.execute_script("return document.documentElement.scrollWidth") <= 1400
    assert d.execute_script("const w = document.querySelector('#exposures-table .table-wrap');"
                            "return w.scrollWidth <= w.clientWidth")
    _shot(d, "exposures")

    def narrow(**fields):
        d.find_element("css selector", "#exposure-filters button[type=reset]").click()
        for name, value in fields.items():
            el = d.find_element("name", name)
            if el.tag_name == "select":
                from selenium.webdriver.support.ui import Select
                Select(el).select_by_value(value)
            elif el.get_attribute("type") == "date":
                d.execute_script("arguments[0].value = arguments[1]; arguments[0].dispatchEvent(new Event('input', {bubbles: true}))", el, value)
            else:
                el.send_keys(value)
        return _table_names(d)

    assert narrow(filter="r.MP9601") == {"700001p.fits", "700003p.fits", "700005p.fits"}
    assert narrow(filter="r.MP9601", runid="05AQ01") == {"700001p.fits"}
    # a cone of 0.05 deg around (36.5, -4.5): 700002 is 0.028 deg away, 700003 0.022 deg
    assert narrow(ra="36.5", dec="-4.5", radius="0.05") == {"700001p.fits", "700002p.fits", "700003p.fits"}
    assert narrow(ra="36.5", dec="-4.5", radius="0.025") == {"700001p.fits", "700003p.fits"}
    assert narrow(exptime_min="500") == {"700001p.fits", "700003p.fits"}
    assert narrow(date_from="2005-04-01", date_to="2005-04-30") == {"700003p.fits", "700004p.fits"}
    assert narrow(processed="Y") == {"700001p.fits", "700003p.fits"}
    assert narrow(delivered="Y") == {"700001p.fits"}
    assert narrow(q="W1") == {"700004p.fits", "700005p.fits", "700006p.fits"}
    assert narrow(object="pi") == {"800003p.fits"}
    assert narrow(grade="B") == {"700002p.fits", "700003p.fits"}  # 700003's grade is the suggested B


def test_csv_export_equals_the_database_rows(browser, static_site, survey):
    from selenium.webdriver.support.ui import Select

    d = browser
    d.get(static_site["base"] + "exposures.html")
    _table_names(d)
    Select(d.find_element("name", "filter")).select_by_value("r.MP9601")
    for old in d.downloads.glob("*"):
        old.unlink()
    d.find_element("id", "exposures-table-csv").click()
    target = d.downloads / "exposures.csv"
    _until(lambda: target.is_file() and target.stat().st_size > 0, what="the CSV download")
    rows = list(csv.DictReader(io.StringIO(target.read_text(encoding="utf-8"))))
    expected = _db_rows(survey, "SELECT filename, object, qrunid, filter, exptime, date_obs, ra, dec FROM exposures "
                        "WHERE filter = :f AND (release_date IS NULL OR release_date < :now) AND filename != :stack "
                        "ORDER BY filename",  # the stack's QualityFITS-out row is not an exposure
                        f="r.MP9601", stack=survey["stack_path"].name, now=dt.datetime.now(dt.timezone.utc).replace(tzinfo=None))
    got = sorted((r["Image"], r["Object"], r["Run id"], r["Filter"], float(r["Exp. time (s)"]),
                  r["Observed (UTC)"], float(r["RA (deg)"]), float(r["Dec (deg)"])) for r in rows)
    want = [(f, o, q, flt, e, (dte if isinstance(dte, str) else dte.strftime("%Y-%m-%d %H:%M:%S"))
             .replace(" ", "T")[:19] + "Z", ra, dec) for f, o, q, flt, e, dte, ra, dec in expected]
    assert got == sorted(want)
    assert {r["Input QA"] for r in rows if r["Image"] == "700001p.fits"} == {"Y"}


def _links_and_images(driver):
    return driver.execute_script("""
        const out = {links: [], images: [], broken: []};
        for (const a of document.querySelectorAll('a[href]')) out.links.push(a.href);
        for (const el of document.querySelectorAll('link[href]')) out.links.push(el.href);
        for (const el of document.querySelectorAll('script[src]')) out.links.push(el.src);
        for (const img of document.querySelectorAll('img')) {
            out.images.push(img.currentSrc || img.src);
            if (!img.complete || img.naturalWidth === 0) out.broken.push(img.src);
        }
        return out;""")


def _status(url):
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code


def test_every_link_and_image_resolves_over_http(browser, static_site):
    d = browser
    base = static_site["base"]
    d.get_log("browser")
    pages = sorted(str(p.relative_to(static_site["dir"])) for p in static_site["dir"].rglob("*.html"))
    assert {"index.html", "exposures.html", "status.html", "releases.html"} <= set(pages)
    assert any(p.startswith("exposure/") for p in pages) and any(p.startswith("stack/") for p in pages)
    checked: dict[str, int] = {}
    nimages = 0
    for page in pages:
        d.get(base + page)
        if page == "exposures.html":
            _table_names(d)
            d.execute_script("for (const img of document.images) img.loading = 'eager'")
        _until(lambda: d.execute_script("return Array.from(document.images).every(i => i.complete)"),
               what=f"the images of {page}")
        found = _links_and_images(d)
        assert not found["broken"], f"{page}: broken images {found['broken']}"
        errors = [e["message"] for e in d.get_log("browser") if e["level"] == "SEVERE"]
        assert not errors, (page, errors)
        nimages += len(found["images"])
        for url in found["links"] + [u for u in found["images"] if not u.startswith("data:")]:
            assert not url.startswith("file:"), f"{page}: {url}"
            url = url.split("#", 1)[0]
            if url not in checked:
                checked[url] = _status(url)
            assert checked[url] == 200, f"{page}: {url} answers {checked[url]}"
    assert nimages >= 12  # the QualityFITS plots of the public exposures, thumbnails, statistics charts
    # the QualityFITS plots are on their exposure's page
    d.get(base + next(p for p in pages if "700001p" in p))
    alts = {img.get_attribute("alt") for img in d.find_elements("css selector", ".plots img")}
    assert {"700001p_m_med.png", "700001p_fwhm_histo.png", "700001p_rhmag.png"} <= alts
    _shot(d, "exposure")
    for name in ("index", "status", "releases", "statistics", "coverage", "run/qf1"):
        d.get(base + f"{name}.html")
        _shot(d, name.replace("/qf1", ""))
    d.get(base + "releases.html")
    assert "0.021 0.019 / 0.153 0.148" in d.find_element("css selector", "td.astrometry").text  # SCAMP's figures
    d.get(base + next(p for p in pages if p.startswith("stack/") and "CFHTLS_D_r" in p))
    scamp = d.find_element("css selector", "table.scamp").text
    assert "AstromSigma_Reference (arcsec) 0.153 0.148" in scamp
    assert "fgroups_1.png" in {i.get_attribute("alt") for i in d.find_elements("css selector", ".plots img")}
    assert "50 % completeness (mag)" in d.find_element("tag name", "main").text  # QualityFITS-out, labelled
    _shot(d, "stack")
    # nothing of the proprietary exposures reached the public site
    text = " ".join(p.read_text(errors="replace") for p in static_site["dir"].rglob("*") if p.suffix in (".html", ".js", ".json"))
    assert "800001p" not in text and "800002p" not in text


def _cells(driver, table_id):
    rows = driver.find_elements("css selector", f"#{table_id} tbody tr")
    return {r.find_elements("tag name", "td")[0].text: int(r.find_elements("tag name", "td")[1].text) for r in rows}


def test_status_page_counts(browser, console):
    d = browser
    base = console["base"]
    d.get(base + "/status.html")
    assert "/login" in d.current_url  # operators' page: a login first
    _login(d, base, "ops", next_path="/status.html")
    _until(lambda: d.find_elements("id", "status-summary"), what="the status page")
    assert _cells(d, "status-summary") == {
        "Images available": 9, "Survey images": 6, "PI images": 3, "Input quality assessment": 4,
        "Processed": 2, "Output quality assessment": 2, "Delivered": 1}
    assert _cells(d, "status-filter") == {"g.MP9401": 2, "i.MP9701": 2, "r.MP9601": 4, "z.MP9801": 1}
    assert _cells(d, "status-node") == {"n1": 5, "n2": 4}
    assert _cells(d, "status-grade") == {"A": 1, "B": 3, "C": 1, "not graded": 4}
    assert _cells(d, "status-run-id") == {"04BQ97": 1, "05AQ01": 2, "05AQ02": 2, "05BQ01": 2, "05BQ98": 1,
                                           "05BQ99": 1}
    assert _cells(d, "status-survey-component") == {"D": 3, "PI": 3, "W": 3}
    percent = d.find_element("css selector", "#status-summary tbody tr:nth-child(5) td:nth-child(3)").text
    assert percent == "22 %"  # 2 of 9 processed
    pending = [r.find_elements("tag name", "td")[0].text for r in d.find_elements("css selector", "#stacks-pending tbody tr")]
    assert pending == ["CFHTLS_W_g_021800-070000"]
    _shot(d, "console-status")
    # every entry of the console's navigation answers for an operator
    d.get_log("browser")  # what came before
    for href in [a.get_attribute("href") for a in d.find_elements("css selector", "nav a")]:
        d.get(href)
        assert not d.find_elements("id", "message"), href
        assert d.find_elements("css selector", "main h1"), href
        if href.endswith("/exposures.html"):
            _table_names(d)
        errors = [e["message"] for e in d.get_log("browser") if e["level"] == "SEVERE"]
        assert not errors, (href, errors)  # no script error, nothing the Content-Security-Policy blocked
    _logout(d, base)


def test_pi_page_needs_the_owners_login(browser, console, survey):
    d = browser
    base = console["base"]
    (exp_id,) = _db_rows(survey, "SELECT id FROM exposures WHERE filename = '800001p.fits'")[0]
    page = f"/exposure/{exp_id}-800001p.fits.html"
    d.get(base + page)
    assert "/login" in d.current_url and "800001p" not in d.find_element("tag name", "main").text
    _login(d, base, "bob", "not-his-password", next_path=page)
    assert "Wrong user name or password" in _until(lambda: d.find_element("id", "login-error").text,
                                                   what="the login error")
    _login(d, base, "carol", next_path=page)  # another PI
    _until(lambda: d.find_elements("id", "message"), what="the refusal")
    assert "proprietary" in d.find_element("id", "message").text
    assert "bob" not in d.page_source.lower() or "PI-Bob" not in d.page_source
    _logout(d, base)
    _login(d, base, "bob", next_path=page)
    _until(lambda: "800001p.fits" in d.find_element("tag name", "h1").text, what="Bob's exposure page")
    assert d.find_elements("css selector", ".plots img")  # his plots, served to him
    d.execute_script("for (const img of document.images) img.loading = 'eager'")
    _until(lambda: d.execute_script("return Array.from(document.images).every(i => i.complete)"), what="his plots")
    assert all(d.execute_script("return Array.from(document.images).map(i => i.naturalWidth > 0)"))
    _shot(d, "console-pi-exposure")
    # the table shows Bob his own proprietary exposure, not Carol's
    d.get(base + "/exposures.html")
    assert _table_names(d) == PUBLIC | {"800001p.fits"}
    _logout(d, base)


def test_grade_given_in_the_browser_is_in_rdbix(browser, console, survey):
    from selenium.webdriver.support.ui import Select

    d = browser
    base = console["base"]
    _login(d, base, "ctl")
    _until(lambda: d.find_elements("css selector", "nav span.user"), what="login")
    (exp_id,) = _db_rows(survey, "SELECT id FROM exposures WHERE filename = '700005p.fits'")[0]
    d.get(base + f"/exposure/{exp_id}-700005p.fits.html")
    Select(d.find_element("css selector", "#grade-form select[name=grade]")).select_by_value("D")
    d.find_element("css selector", "#grade-form input[name=comment]").send_keys("satellite track <b>x</b>")
    d.find_element("css selector", "#grade-form button").click()
    _until(lambda: "satellite track <b>x</b>" in d.find_element("css selector", "table.grades").text,
           what="the grade in the history")
    rows = _db_rows(survey, "SELECT g.grade, g.author, g.comment FROM grades g JOIN exposures e ON e.id = g.exposure_id "
                    "WHERE e.filename = '700005p.fits' ORDER BY g.id")
    assert rows[-1] == ("D", "ctl", "satellite track <b>x</b>")
    actions = _db_rows(survey, "SELECT user, role, action, target FROM web_actions WHERE action = 'grade'")
    assert ("ctl", "control", "grade", "700005p.fits") in actions
    d.find_element("css selector", "#problem-form textarea").send_keys("halo in CCD 12")
    d.find_element("css selector", "#problem-form button").click()
    _until(lambda: _db_rows(survey, "SELECT author, text FROM problem_reports"), what="the problem report")
    assert _db_rows(survey, "SELECT author, target, text FROM problem_reports") == [("ctl", "700005p.fits", "halo in CCD 12")]
    _shot(d, "console-grade")
    # a stack grade too
    (stack_id,) = _db_rows(survey, "SELECT id FROM stacks WHERE name = 'CFHTLS_D_r_022559-042939'")[0]
    d.get(base + f"/stack/{stack_id}-CFHTLS_D_r_022559-042939.html")
    Select(d.find_element("css selector", "#stack-grade-form select[name=grade]")).select_by_value("A")
    d.find_element("css selector", "#stack-grade-form button").click()
    _until(lambda: _db_rows(survey, "SELECT grade, author FROM stack_grades"), what="the stack grade")
    assert _db_rows(survey, "SELECT grade, author FROM stack_grades") == [("A", "ctl")]
    _logout(d, base)


def test_a_submitted_run_executes(browser, console, survey):
    from selenium.webdriver.support.ui import Select

    d = browser
    base = console["base"]
    _login(d, base, "ops")
    _until(lambda: d.find_elements("css selector", "nav span.user"), what="login")
    d.get(base + "/submit.html")
    d.find_element("css selector", "#submit-form input[name=filter]").send_keys("r.MP9601")
    d.find_element("css selector", "#submit-form input[name=runid]").send_keys("05AQ01")
    Select(d.find_element("css selector", "#submit-form select[name=tool]")).select_by_value("skywatcher")
    Select(d.find_element("css selector", "#submit-form select[name=fanout]")).select_by_value("all")
    d.find_element("css selector", "#submit-form textarea").send_keys("NSIDE 1024\nCHECKPLOT_RES 600")
    d.find_element("css selector", "#submit-form button[value=generate]").click()
    xml = _until(lambda: d.find_element("id", "instructions").text, what="the instruction file")
    assert '<query filter="r.MP9601" runid="05AQ01"/>' in xml and '<param name="NSIDE">1024</param>' in xml
    d.find_element("css selector", "#submit-form button[value=submit]").click()
    assert "started" in _until(lambda: d.find_element("id", "submit-started").text, what="the submission")
    result = _until(lambda: [r for r in _db_rows(survey, "SELECT result, run_id, user FROM web_actions WHERE action = 'submit'")
                             if r[0] != "started"], timeout=120, what="the submitted run to end")
    assert result[0][0] == "done" and result[0][2] == "ops", result
    run = _db_rows(survey, "SELECT status, instruction_file FROM runs WHERE run_id = :r", r=result[0][1])
    assert run and run[0][0] == "done" and run[0][1].endswith("instructions.xml")
    units = _db_rows(survey, "SELECT u.status, u.inputs FROM units u JOIN steps s ON s.id = u.step_pk WHERE s.run_id = :r",
                     r=result[0][1])
    assert units and all(s == "done" for s, _ in units) and "700001p.fits" in units[0][1]
    d.get(base + "/actions.html")
    assert "submit" in d.find_element("id", "web-actions").text
    _shot(d, "console-actions")
    _logout(d, base)


def test_forged_form_without_csrf_token_is_refused(browser, console, static_site, survey):
    d = browser
    base = console["base"]
    _login(d, base, "ctl")
    _until(lambda: d.find_elements("css selector", "nav span.user"), what="login")
    before = _db_rows(survey, "SELECT count(*) FROM grades")[0][0]
    # a page of another site (the static report's server) posts a grade form to the console
    forged = static_site["dir"] / "forged.html"
    forged.write_text(f'<form id=f method=post action="{base}/grade"><input name=exposure value="700006p.fits">'
                      '<input name=grade value="D"></form><script>document.getElementById("f").submit()</script>')
    d.get(static_site["base"] + "forged.html")
    _until(lambda: d.current_url.startswith(base), what="the forged post")
    assert "refused" in _until(lambda: d.find_element("id", "message").text.lower(), what="the refusal")
    # the same from the console's own origin, without the token
    d.get(base + "/")
    code = d.execute_script("""return fetch('/grade', {method: 'POST', body: new URLSearchParams(
        {exposure: '700006p.fits', grade: 'D'})}).then(r => r.status)""")
    assert code == 400
    assert _db_rows(survey, "SELECT count(*) FROM grades")[0][0] == before
    assert _db_rows(survey, "SELECT count(*) FROM web_actions WHERE result = 'refused' AND target = '/grade'")[0][0] == 2
    _logout(d, base)


def _raw_get(base, path, cookie=None):
    """GET ``path`` exactly as written (no client-side normalisation of ``..``)."""
    host, port = base.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    conn.request("GET", path, headers={"Cookie": cookie} if cookie else {})
    resp = conn.getresponse()
    body = resp.read()
    conn.close()
    return resp.status, body


def test_path_traversal_is_refused(browser, console, survey):
    d = browser
    base = console["base"]
    _login(d, base, "ops")
    _until(lambda: d.find_elements("css selector", "nav span.user"), what="login")
    cookie = "; ".join(f"{c['name']}={c['value']}" for c in d.get_cookies())
    work = survey["workdir"]
    attempts = ["/static/../../../../etc/passwd", "/static/..%2f..%2f..%2f..%2fetc%2fpasswd",
                "/static/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
                "/file?path=/etc/passwd", f"/file?path={work}/../../../../../etc/passwd",
                f"/file?path={urllib.parse.quote(str(work))}%2F..%2F..%2F..%2F..%2F..%2Fetc%2Fpasswd",
                f"/file?path={work}/.terapix/state", "/file?path=../../etc/passwd",
                "/download?path=/etc/passwd", f"/download?path={work}/../../../../../../etc/passwd",
                "/exposure/..%2F..%2Fetc%2Fpasswd.html", "/run/..%2F..%2Fetc%2Fpasswd.html"]
    passwd = Path("/etc/passwd").read_bytes()[:30]
    for path in attempts:
        status, body = _raw_get(base, path, cookie)
        assert status in (400, 404), (path, status)
        assert passwd not in body, path
    # what is inside a root is served: a plot of the work directory, a raw file to download
    plot = survey["plots"]["700001p.fits"][0]
    assert _raw_get(base, "/file?path=" + urllib.parse.quote(plot, safe=""), cookie)[0] == 200
    raw = survey["raw"] / "700001p.fits"
    status, body = _raw_get(base, "/download?path=" + urllib.parse.quote(str(raw), safe=""), cookie)
    assert status == 200 and body == raw.read_bytes()
    assert ("ops", "download") in _db_rows(survey, "SELECT user, action FROM web_actions WHERE result = 'ok'")
    _logout(d, base)
