"""``terapix web serve``: the operations console, a Flask application reading RDBix live.

The console shows the pages of the static report (same templates, same data functions) rendered on
each request for the user who asks, and adds what needs a login:

* users and roles from a TOML file (:mod:`terapix_fw.web.auth`): **operator** (everything, proprietary
  data included), **control** (the release control team: grades, problem reports, submissions), **pi**
  (their own proprietary data before its release date), and the public (anyone not logged in);
* signed session cookies (Flask's, HttpOnly, SameSite=Lax) and a CSRF token on every form
  (Flask-WTF's ``CSRFProtect``: a POST without the session's token is refused with 400);
* grades of exposures and stacks, problem reports, instruction files generated from selection criteria
  and submitted to the runner (a ``terapix run`` process per submission), DataTransfer dispatches and
  downloads, each recorded in RDBix (``grades``, ``stack_grades``, ``problem_reports``, ``web_actions``)
  with the user's name;
* files served only from the product roots (the configuration's ``product_roots``, the runs' real work
  directories, the console's ``runs_dir``), never from a hidden folder, and a proprietary exposure's
  files only to its owner and the operators.

It runs behind waitress (``terapix web serve``), a production WSGI server in pure Python.
"""
from __future__ import annotations

import datetime as _dt
import json
import logging
import shutil
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

from ..errors import TerapixError

__all__ = ["create_app", "serve", "instruction_xml", "CRITERIA"]

log = logging.getLogger("terapix.web.console")

#: Selection criteria of the submission form -> attribute of the instruction file's ``<query>``.
CRITERIA = ("filter", "runid", "object", "survey", "grades", "date_min", "date_max", "exptime_min",
            "exptime_max", "seeing_max", "airmass_max", "ra", "dec", "radius")
_NUMERIC = {"exptime_min", "exptime_max", "seeing_max", "airmass_max", "ra", "dec", "radius"}
STAFF = ("operator", "control")


def _now() -> _dt.datetime:
    return _dt.datetime.now(_dt.timezone.utc)


def instruction_xml(name: str, criteria: dict[str, str], tool: str, config: dict[str, str], *,
                    description: str = "", fanout: str | None = None) -> str:
    """An instruction file that runs ``tool`` with ``config`` on the exposures RDBix selects with
    ``criteria`` (the ``<query>`` of an input set).  Built with lxml: values are escaped, never pasted.

    Parameters
    ----------
    name : str
        Instruction file name.
    criteria : dict of str to str
        ``<query>`` attributes.
    tool : str
    config : dict of str to str
        Keyword -> value.
    description : str
    fanout : str, optional

    Returns
    -------
    str
    """
    from lxml import etree

    root = etree.Element("instructions", name=name, version="1")
    if description:
        etree.SubElement(root, "description").text = description
    inputs = etree.SubElement(root, "inputs")
    iset = etree.SubElement(inputs, "inputset", id="selection")
    etree.SubElement(iset, "query", {k: str(v) for k, v in criteria.items() if v not in (None, "")})
    steps = etree.SubElement(root, "steps")
    attrs = {"id": "console", "tool": tool}
    if fanout:
        attrs["fanout"] = fanout
    step = etree.SubElement(steps, "step", attrs)
    if config:
        cfg = etree.SubElement(step, "config")
        for key, value in config.items():
            etree.SubElement(cfg, "param", name=key).text = str(value)
    etree.SubElement(step, "input", set="selection")
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True).decode("utf-8")


def _parse_config_text(text: str) -> dict[str, str]:
    """``KEYWORD VALUE`` or ``KEYWORD=VALUE`` lines (AstrOmatic style), ``#`` comments."""
    out: dict[str, str] = {}
    for n, line in enumerate(text.splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        key, sep, value = line.partition("=") if "=" in line else line.partition(" ")
        key, value = key.strip(), value.strip()
        if not key.replace("_", "").isalnum() or not key[0].isalpha():
            raise TerapixError(f"configuration line {n}: {key!r} is not a keyword name")
        out[key.upper()] = value
    return out


class _Runs:
    """Submitted runs: one ``terapix run`` process each; a thread waits for it and records the end."""

    def __init__(self, engine, record):
        self.engine = engine
        self.record = record
        self.procs: dict[int, subprocess.Popen] = {}
        self.lock = threading.Lock()

    def start(self, action_id: int, instructions: Path, workdir: Path, db_url: str) -> subprocess.Popen:
        workdir.mkdir(parents=True, exist_ok=True)
        logfile = open(workdir.parent / "console-run.log", "wb")  # noqa: SIM115 - closed by the waiter
        proc = subprocess.Popen([sys.executable, "-m", "terapix_fw.cli", "run", str(instructions),
                                 "--workdir", str(workdir), "--db", db_url],
                                stdout=logfile, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)
        with self.lock:
            self.procs[action_id] = proc
        threading.Thread(target=self._wait, args=(action_id, proc, instructions, logfile), daemon=True,
                         name=f"console-run-{action_id}").start()
        return proc

    def _wait(self, action_id: int, proc: subprocess.Popen, instructions: Path, logfile) -> None:
        from sqlalchemy import select, update

        from ..db import schema as S

        code = proc.wait()
        logfile.close()
        with self.engine.begin() as conn:
            run_id = conn.execute(select(S.runs.c.run_id).where(S.runs.c.instruction_file == str(instructions))
                                  .order_by(S.runs.c.start.desc())).scalar()
            conn.execute(update(S.web_actions).where(S.web_actions.c.id == action_id)
                         .values(result="done" if code == 0 else f"exit {code}", run_id=run_id))
        with self.lock:
            self.procs.pop(action_id, None)


def create_app(db, config, *, title: str = "terapix-fw console", templates: str | Path | None = None):
    """The console's Flask application on RDBix ``db`` with the :class:`~.auth.ConsoleConfig` ``config``.

    Parameters
    ----------
    db : Engine, str or None
        RDBix: an Engine, a database URL, or None (``$TERAPIX_DB_URL``).
    config : ConsoleConfig
    title : str
    templates : str or Path, optional
        Folder of templates overriding the default ones.

    Returns
    -------
    flask.Flask
    """
    from urllib.parse import quote

    from flask import Flask, Response, abort, redirect, request, send_file, session
    from flask_wtf.csrf import CSRFError, CSRFProtect, generate_csrf
    from sqlalchemy import insert, select

    from .. import __version__ as fw_version
    from ..atomic import write_text_atomic
    from ..db import Document, schema as S, write_document
    from . import data, survey
    from .auth import verify_password
    from .plugin import _index, _runs as runs_context, _status, _statistics
    from .site import (PUBLISHABLE_SUFFIXES, _asset_roots, _open_db, collect_pages, default_web_dir,
                       make_environment, slug)

    engine = _open_db(db)
    db_url = engine.url.render_as_string(hide_password=False)
    app = Flask("terapix_console", static_folder=None)
    app.config.update(SECRET_KEY=config.secret_key, SESSION_COOKIE_HTTPONLY=True,
                      SESSION_COOKIE_SAMESITE="Lax", WTF_CSRF_TIME_LIMIT=None,
                      MAX_CONTENT_LENGTH=1 << 20, PERMANENT_SESSION_LIFETIME=_dt.timedelta(hours=12))
    app.config["TERAPIX_DB"] = engine.url.render_as_string(hide_password=True)
    CSRFProtect(app)
    web_dir = default_web_dir()
    pages = collect_pages()
    dirs = ([Path(templates)] if templates else []) + [web_dir / "templates"]
    dirs += list(dict.fromkeys(Path(p.template).parent for p in pages if isinstance(p.template, Path)))
    env = make_environment(dirs)
    env.globals["csrf_token"] = generate_csrf
    static_dir = (web_dir / "static").resolve()
    env.globals["asset"] = lambda path: asset(path)  # set once: imported macros keep the first globals
    config.runs_dir.mkdir(parents=True, exist_ok=True)

    def roots() -> list[Path]:
        """The product roots, once per request (a page asks for each of its plots)."""
        from flask import g

        if "terapix_roots" not in g:
            g.terapix_roots = [r.resolve() for r in config.product_roots + _asset_roots(engine) + [config.runs_dir]]
        return g.terapix_roots

    def record(action: str, target: str | None, detail: dict | None = None, result: str = "ok",
               run_id: str | None = None) -> int:
        user = current_user()
        with engine.begin() as conn:
            return conn.execute(insert(S.web_actions).values(
                time=_now(), user=user.name if user else "-", role=user.role if user else "public",
                action=action, target=(target or "")[:255], detail=json.dumps(detail or {}, default=str),
                result=result, run_id=run_id)).inserted_primary_key[0]

    runs = _Runs(engine, record)
    app.extensions["terapix_runs"] = runs

    def current_user():
        name = session.get("user")
        return config.users.get(name) if name else None

    def viewer() -> survey.Viewer:
        user = current_user()
        return survey.Viewer(user.owner_name, user.role) if user else survey.PUBLIC

    def nav() -> list[dict]:
        entries = [{"name": p.name, "title": p.title, "href": f"{p.name}.html"} for p in pages if not p.each]
        user = current_user()
        if user and user.role in STAFF:
            entries += [{"name": "submit", "title": "Submit", "href": "submit.html"},
                        {"name": "actions", "title": "Actions", "href": "actions.html"}]
        return entries

    def servable(path: str | Path, *, download: bool = False) -> Path | None:
        """The resolved file if the console may serve it: under a root, in no hidden folder, a plot or
        text suffix unless downloaded, and not the file of proprietary data the viewer may not see."""
        try:
            p = Path(str(path))
            if not p.is_absolute():
                return None
            real = p.resolve()
            if not real.is_file():
                return None
        except (OSError, ValueError):
            return None
        root = next((r for r in roots() if r == real or r in real.parents), None)
        if root is None or any(part.startswith(".") for part in real.relative_to(root).parts):
            return None
        if not download and real.suffix.lower() not in PUBLISHABLE_SUFFIXES:
            return None
        if not _file_allowed(real.name):
            return None
        return real

    def _file_allowed(name: str) -> bool:
        """Not a file named after a proprietary exposure the viewer may not see (its stored copy, its
        plots, its catalogue)."""
        from flask import g

        if "terapix_hidden" not in g:
            g.terapix_hidden = survey.hidden_stems(engine, viewer())
        return not survey.is_hidden_file(name, g.terapix_hidden)

    def asset(path) -> str | None:
        if not path or servable(path) is None:
            return None
        return "/file?path=" + quote(str(path), safe="")

    def render(template: str, variables: dict[str, Any], current: str, page_title: str = "", status: int = 200):
        user = current_user()
        site = {"title": title, "nav": nav(), "version": fw_version, "refresh": 0, "generated": _now(),
                "db": engine.url.render_as_string(hide_password=True), "root": "/", "current": current,
                "console": True, "user": user}
        html = env.get_template(template).render({**variables, "site": site, "page_title": page_title or current})
        return Response(html, status=status, mimetype="text/html")

    def message(text: str, status: int, title: str = "Refused"):
        return render("console/message.html", {"message": text, "heading": title}, "message", title, status)

    def need(*roles: str):
        """None if the current user has one of ``roles``; else the response: log in, or 403."""
        user = current_user()
        if user is None:
            return redirect("/login?next=" + quote(request.full_path.rstrip("?"), safe=""))
        if user.role not in roles:
            return message(f"{user.name} ({user.role}) may not do this: it needs the role "
                           f"{' or '.join(roles)}.", 403)
        return None

    @app.after_request
    def headers(resp):
        resp.headers.setdefault("X-Content-Type-Options", "nosniff")
        resp.headers.setdefault("X-Frame-Options", "DENY")
        resp.headers.setdefault("Referrer-Policy", "same-origin")
        resp.headers.setdefault("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; "
                                "style-src 'self'; script-src 'self'; form-action 'self'; frame-ancestors 'none'")
        return resp

    @app.errorhandler(CSRFError)
    def csrf_error(exc):
        record("refused", request.path, {"reason": f"CSRF: {exc.description}"}, "refused")
        return message(f"The form was refused: {exc.description} Reload the page and try again.", 400)

    @app.errorhandler(404)
    def not_found(exc):
        return message("No such page or file.", 404, "Not found")

    # ---------------------------------------------------------------------------------------- login
    @app.route("/login", methods=["GET", "POST"])
    def login():
        nxt = request.values.get("next", "/")
        if not nxt.startswith("/") or nxt.startswith("//") or "\\" in nxt:
            nxt = "/"  # never an open redirect
        error = None
        if request.method == "POST":
            name = request.form.get("username", "")
            user = config.users.get(name)
            if verify_password(user, request.form.get("password", "")):
                session.clear()
                session["user"] = user.name
                session.permanent = True
                record("login", user.name)
                return redirect(nxt)
            error = "Wrong user name or password."
            log.warning("console: failed login for %r from %s", name, request.remote_addr)
        return render("console/login.html", {"error": error, "next": nxt}, "login", "Log in",
                      401 if error else 200)

    @app.post("/logout")
    def logout():
        session.clear()
        return redirect("/")

    # ---------------------------------------------------------------------------------------- pages
    @app.get("/")
    @app.get("/index.html")
    def index():
        return render("index.html", _index(engine), "index", "Overview")

    @app.get("/status.html")
    def status_page():
        if (refused := need(*STAFF)) is not None:
            return refused
        return render("status.html", _status(engine), "status", "Status")

    @app.get("/runs.html")
    def runs_page():
        return render("runs.html", runs_context(engine), "runs", "Runs")

    @app.get("/run/<name>.html")
    def run_page(name):
        try:
            return render("run.html", data.run_detail(engine, name), "run", "Run")
        except KeyError:
            abort(404)

    @app.get("/statistics.html")
    def statistics_page():
        return render("statistics.html", _statistics(engine), "statistics", "Statistics")

    @app.get("/products.html")
    def products_page():
        if (refused := need(*STAFF)) is not None:
            return refused
        return render("products.html", {"products": data.products(engine), "total": data.overview(engine)["products"]},
                      "products", "Products")

    @app.get("/releases.html")
    def releases_page():
        from .plugin import _releases
        return render("releases.html", _releases(engine), "releases", "Releases")

    @app.get("/<name>.html")
    def plugin_page(name):
        """A page a plugin registered through the ``web_pages`` hook (transfers, sky coverage...),
        rendered live from its context function; the staff only (plugins' pages are not filtered for
        proprietary data)."""
        page = next((p for p in pages if p.name == name and not p.each), None)
        if page is None:
            abort(404)
        if (refused := need(*STAFF)) is not None:
            return refused
        template = page.template.name if isinstance(page.template, Path) else page.template
        return render(template, page.context(engine), page.name, page.title)

    def _table():
        table = survey.exposure_table(engine, viewer())
        for r in table["rows"]:
            r["href"] = f"exposure/{slug(r['id'], r['filename'])}.html"
            r["thumb"] = asset(r["thumb"]) if r["thumb"] else None
        return table

    @app.get("/exposures.html")
    def exposures_page():
        table = _table()
        from ..db.query import find_images
        shown = {r["id"] for r in table["rows"]}
        summary_rows = [e for e in find_images(engine) if e["id"] in shown]
        return render("exposures.html", {"summary": data.filter_summary(summary_rows), "total": len(table["rows"]),
                                         "hidden": table["hidden"]}, "exposures", "Exposures")

    def _table_json() -> str:
        table = _table()
        keys = [c["key"] for c in table["columns"]] + ["id", "href", "grade_source"]
        return json.dumps({"columns": table["columns"], "keys": keys,
                           "rows": [[r.get(k) for k in keys] for r in table["rows"]]},
                          separators=(",", ":"), ensure_ascii=False, default=str)

    @app.get("/data/exposures.json")
    def exposures_json():
        return Response(_table_json(), mimetype="application/json")

    @app.get("/data/exposures.js")
    def exposures_js():
        text = _table_json().replace("</", "<\\/")
        return Response('window.TERAPIX_TABLES=window.TERAPIX_TABLES||{};window.TERAPIX_TABLES["exposures"]='
                        + text + ";\n", mimetype="text/javascript")

    @app.get("/data/exposures.csv")
    def exposures_csv():
        rows = _table()["rows"]
        return Response(survey.table_csv(rows), mimetype="text/csv",
                        headers={"Content-Disposition": "attachment; filename=exposures.csv"})

    def _exposure_context(exposure_id: int):
        rows = data.exposures(engine, limit=None, ids={exposure_id})["rows"]
        if not rows:
            abort(404)
        e = rows[0]
        table = survey.exposure_table(engine, survey.Viewer(role="operator"))
        status = next((r for r in table["rows"] if r["id"] == exposure_id), None)
        if status is None:
            abort(404)  # a stack's QualityFITS-out row: it has a stack page
        from .plugin import _stacks_of
        details = data.exposure_details(engine, [exposure_id])[exposure_id]
        with engine.connect() as conn:
            reports = [dict(r._mapping) for r in conn.execute(
                select(S.problem_reports).where(S.problem_reports.c.target_kind == "exposure",
                                                S.problem_reports.c.target == e["filename"])
                .order_by(S.problem_reports.c.id))]
        return e, {"exposure": e, "status": status, "plots": table["plots"].get(e["filename"], []),
                   "stacks": _stacks_of(engine).get(e["filename"], []), "reports": reports, **details}

    def _id_of(name: str) -> int:
        head = name.split("-", 1)[0]
        if not head.isdigit():
            abort(404)
        return int(head)

    @app.get("/exposure/<name>.html")
    def exposure_page(name):
        e, variables = _exposure_context(_id_of(name))
        if not viewer().may_see(e["owner"], e["release_date"]):
            user = current_user()
            if user is None:
                return need("operator", "pi")
            record("view", e["filename"], {"reason": "proprietary"}, "refused")
            return message(f"{e['filename']} is proprietary until {e['release_date']:%Y-%m-%d} (UTC): only its "
                           f"owner and the operators may see it.", 403)
        return render("exposure.html", variables, "exposure", f"Exposure {e['filename']}")

    @app.get("/stack/<name>.html")
    def stack_page(name):
        stack_id = _id_of(name)
        visible = {st["id"]: st for st in survey.stack_rows(engine, viewer())}
        if stack_id not in visible:
            with engine.connect() as conn:
                if conn.execute(select(S.stacks.c.id).where(S.stacks.c.id == stack_id)).first() is None:
                    abort(404)
            return need("operator") or message("This stack is proprietary until its release date.", 403)
        variables = {**survey.stack_details(engine, stack_id, survey.plots_by_stack(engine)),
                     "summary_row": visible[stack_id]}
        with engine.connect() as conn:
            variables["stack_grades"] = [dict(r._mapping) for r in conn.execute(
                select(S.stack_grades).where(S.stack_grades.c.stack_id == stack_id).order_by(S.stack_grades.c.id))]
        return render("stack.html", variables, "stack", f"Stack {variables['stack']['name']}")

    # ---------------------------------------------------------------------------------------- files
    @app.get("/static/<path:name>")
    def static_file(name):
        from ..atomic import confine
        try:
            path = confine(static_dir, name, "static file")
        except PermissionError:
            abort(404)
        if not path.is_file():
            abort(404)
        return send_file(path, mimetype="image/svg+xml" if path.suffix == ".svg" else None)

    @app.get("/file")
    def file():
        path = servable(request.args.get("path", ""))
        if path is None:
            record("file", request.args.get("path", "")[:255], {}, "refused")
            abort(404)
        return send_file(path, mimetype="text/plain" if path.suffix.lower() in (".log", ".txt", ".xml", ".html",
                                                                                   ".out", ".err", ".head", ".ahead")
                         else None)

    @app.get("/download")
    def download():
        if (refused := need("operator", "control", "pi")) is not None:
            return refused
        requested = request.args.get("path", "")
        path = servable(requested, download=True)
        if path is None:
            record("download", requested, {}, "refused")
            abort(404)
        record("download", str(path))
        return send_file(path, as_attachment=True)

    # ---------------------------------------------------------------------------------------- actions
    def _back(default: str = "/") -> str:
        target = request.form.get("back", default)
        return target if target.startswith("/") and not target.startswith("//") else default

    @app.post("/grade")
    def grade():
        if (refused := need(*STAFF)) is not None:
            return refused
        user = current_user()
        filename, value = request.form.get("exposure", ""), request.form.get("grade", "")
        comment = request.form.get("comment", "")[:2000]
        if value not in S.GRADES:
            return message(f"grade {value!r}: expected one of {', '.join(S.GRADES)}", 400)
        try:
            write_document(engine, Document().add("grade", exposure=filename, grade=value, author=user.name,
                                                  comment=comment or None, time=_now().timestamp()))
        except TerapixError as exc:
            return message(f"grade of {filename}: {exc}", 400)
        record("grade", filename, {"grade": value, "comment": comment})
        return redirect(_back())

    @app.post("/stack-grade")
    def stack_grade():
        if (refused := need(*STAFF)) is not None:
            return refused
        user = current_user()
        value, comment = request.form.get("grade", ""), request.form.get("comment", "")[:2000]
        try:
            stack_id = int(request.form.get("stack", ""))
        except ValueError:
            return message("stack: expected a stack id", 400)
        if value not in S.GRADES:
            return message(f"grade {value!r}: expected one of {', '.join(S.GRADES)}", 400)
        with engine.begin() as conn:
            name = conn.execute(select(S.stacks.c.name).where(S.stacks.c.id == stack_id)).scalar()
            if name is None:
                abort(404)
            conn.execute(insert(S.stack_grades).values(stack_id=stack_id, grade=value, author=user.name,
                                                       time=_now(), comment=comment or None))
        record("stack_grade", name, {"stack_id": stack_id, "grade": value, "comment": comment})
        return redirect(_back())

    @app.post("/problem")
    def problem():
        if (refused := need(*STAFF)) is not None:
            return refused
        user = current_user()
        kind, target = request.form.get("kind", ""), request.form.get("target", "")[:255]
        text = request.form.get("text", "").strip()[:10000]
        if kind not in ("exposure", "stack") or not target or not text:
            return message("problem report: expected kind (exposure or stack), target and a text", 400)
        with engine.begin() as conn:
            conn.execute(insert(S.problem_reports).values(target_kind=kind, target=target, author=user.name,
                                                          time=_now(), text=text, status="open"))
        record("problem_report", target, {"kind": kind, "text": text})
        return redirect(_back())

    def _tools() -> list[str]:
        from ..plugins import get_tools
        return sorted(get_tools())

    def _criteria_from_form() -> dict[str, str]:
        crit = {}
        for key in CRITERIA:
            value = request.form.get(key, "").strip()
            if not value:
                continue
            if key in _NUMERIC:
                try:
                    float(value)
                except ValueError:
                    raise TerapixError(f"{key} {value!r}: expected a number") from None
            crit[key] = value
        return crit

    @app.route("/submit.html", methods=["GET", "POST"])
    def submit():
        if (refused := need(*STAFF)) is not None:
            return refused
        user = current_user()
        form = {k: request.form.get(k, "") for k in (*CRITERIA, "tool", "config", "fanout")}
        variables = {"form": form, "tools": _tools(), "criteria": CRITERIA, "xml": None, "error": None,
                     "started": None}
        if request.method == "GET":
            return render("console/submit.html", variables, "submit", "Submit a run")
        try:
            criteria = _criteria_from_form()
            tool = form["tool"]
            if tool not in variables["tools"]:
                raise TerapixError(f"tool {tool!r}: expected one of {', '.join(variables['tools'])}")
            config_values = _parse_config_text(form["config"])
            fanout = form["fanout"] if form["fanout"] in ("file", "extension", "group", "all") else None
            stamp = _now().strftime("%Y%m%dT%H%M%S%f")
            name = f"console-{slug(user.name)}-{stamp}"
            xml = instruction_xml(name, criteria, tool, config_values, fanout=fanout,
                                  description=f"Generated from the web console by {user.name} on "
                                              f"{_now():%Y-%m-%d %H:%M:%S} UTC")
            folder = config.runs_dir / name
            folder.mkdir(parents=True)
            path = folder / "instructions.xml"
            write_text_atomic(path, xml)
            from ..instructions import load_instructions
            try:
                load_instructions(path)  # the schema and the tools' keywords: refused here, not in the run
            except TerapixError:
                shutil.rmtree(folder, ignore_errors=True)
                raise
        except TerapixError as exc:
            variables["error"] = str(exc)
            return render("console/submit.html", variables, "submit", "Submit a run", 400)
        variables["xml"] = xml
        if request.form.get("action") == "submit":
            action_id = record("submit", name, {"criteria": criteria, "tool": tool, "config": config_values,
                                                "instructions": str(path)}, "started")
            proc = runs.start(action_id, path, folder / "work", db_url)
            variables["started"] = {"name": name, "pid": proc.pid, "action": action_id}
        else:
            record("generate", name, {"criteria": criteria, "tool": tool, "config": config_values})
        return render("console/submit.html", variables, "submit", "Submit a run")

    @app.post("/transfer")
    def transfer():
        """DataTransfer dispatch of the exposures the criteria select, to the configured nodes."""
        if (refused := need("operator")) is not None:
            return refused
        user = current_user()
        if not ({"NODES", "NODES_FILE"} & set(config.transfer)):
            return message("no [transfer] NODES or NODES_FILE in the console configuration: DataTransfer has no "
                           "node to send to", 400)
        try:
            criteria = _criteria_from_form()
        except TerapixError as exc:
            return message(str(exc), 400)
        name = f"console-transfer-{slug(user.name)}-{_now():%Y%m%dT%H%M%S%f}"
        xml = instruction_xml(name, criteria, "datatransfer", dict(config.transfer),
                              description=f"DataTransfer dispatch from the web console by {user.name}")
        folder = config.runs_dir / name
        folder.mkdir(parents=True)
        write_text_atomic(folder / "instructions.xml", xml)
        from ..instructions import load_instructions
        try:
            load_instructions(folder / "instructions.xml")
        except TerapixError as exc:
            shutil.rmtree(folder, ignore_errors=True)
            return message(f"transfer: {exc}", 400)
        action_id = record("transfer", name, {"criteria": criteria}, "started")
        runs.start(action_id, folder / "instructions.xml", folder / "work", db_url)
        return redirect("/actions.html")

    @app.get("/actions.html")
    def actions():
        if (refused := need(*STAFF)) is not None:
            return refused
        with engine.connect() as conn:
            rows = [dict(r._mapping) for r in conn.execute(
                select(S.web_actions).order_by(S.web_actions.c.id.desc()).limit(500))]
            reports = [dict(r._mapping) for r in conn.execute(
                select(S.problem_reports).order_by(S.problem_reports.c.id.desc()).limit(500))]
        for r in rows:
            r["detail"] = data.decode(r["detail"], {})
        return render("console/actions.html", {"actions": rows, "reports": reports}, "actions", "Actions")

    return app


def serve(db, config_path: str | Path, *, host: str = "127.0.0.1", port: int = 8080, threads: int = 8,
          title: str = "terapix-fw console") -> None:
    """Run the console under waitress until interrupted.

    Parameters
    ----------
    db : Engine, str or None
        RDBix: an Engine, a database URL, or None (``$TERAPIX_DB_URL``).
    config_path : str or Path
        The console's configuration file.
    host : str
    port : int
    threads : int
    title : str
    """
    from waitress import serve as waitress_serve

    from .auth import load_config

    app = create_app(db, load_config(config_path), title=title)
    print(f"terapix web: console on http://{host}:{port}/ (RDBix {app.config['TERAPIX_DB']}); Ctrl-C stops it",
          flush=True)
    waitress_serve(app, host=host, port=port, threads=threads, ident="terapix-console")
