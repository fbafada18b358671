"""Hook implementations of the web reports: ``terapix web build`` and the core's own pages.

The core pages (front page, runs, one page per run, exposures, one page per exposure, statistics,
products, releases) are registered through the
same ``web_pages`` hook as any plugin's pages.
"""
from __future__ import annotations

from ..hookspecs import hookimpl


def _index(db):
    from . import data
    return {"overview": data.overview(db), "runs": data.runs(db, limit=10), "failures": data.recent_failures(db)}


def _runs(db):
    from . import data
    return {"runs": data.runs(db)}


def _run_pages(db):
    from . import data
    for run in data.runs(db, limit=None):
        yield run["run_id"], data.run_detail(db, run["run_id"])


def _exposures(db):
    from . import data, survey
    from .site import slug
    table = survey.exposure_table(db)
    for r in table["rows"]:
        r["href"] = f"exposure/{slug(r['id'], r['filename'])}.html"
    # the summary of the same rows (the public exposures: data.find_public's definition)
    return {"summary": data.filter_summary(table["rows"]), "total": len(table["rows"]), "hidden": table["hidden"],
            "tables": {"exposures": {"columns": table["columns"], "rows": table["rows"],
                                     "extra": ["id", "href", "grade_source"]}}}


def _exposure_pages(db):
    from . import data, survey
    from .site import slug
    table = survey.exposure_table(db)
    public = {r["id"]: r for r in table["rows"]}
    rows = [r for r in data.exposures(db, limit=None)["rows"] if r["id"] in public]  # proprietary: console only
    stacks = _stacks_of(db)
    for start in range(0, len(rows), 200):  # details (all header keywords) a chunk at a time
        chunk = rows[start:start + 200]
        details = data.exposure_details(db, [e["id"] for e in chunk])
        for e in chunk:
            yield slug(e["id"], e["filename"]), {"exposure": e, "status": public[e["id"]],
                                                 "plots": table["plots"].get(e["filename"], []),
                                                 "stacks": stacks.get(e["filename"], []), **details[e["id"]]}


def _stacks_of(db) -> dict[str, list[dict]]:
    """Exposure file name -> the stacks whose stack list holds it (name, version, page slug)."""
    from sqlalchemy import select

    from ..db import connect, schema as S
    from .site import slug
    out: dict[str, list[dict]] = {}
    with connect(db).connect() as conn:
        for name, sid, sname, version in conn.execute(
                select(S.stack_images.c.filename, S.stacks.c.id, S.stacks.c.name, S.stacks.c.version)
                .join(S.stacks, S.stacks.c.id == S.stack_images.c.stack_id).where(S.stack_images.c.list == "stack")):
            out.setdefault(name, []).append({"name": sname, "version": version, "slug": slug(sid, sname)})
    return out


def _stack_pages(db):
    from . import survey
    from .site import slug
    plots = survey.plots_by_stack(db)
    for st in survey.stack_rows(db):
        yield slug(st["id"], st["name"]), {**survey.stack_details(db, st["id"], plots), "summary_row": st}


def _status(db):
    from . import survey
    return survey.status(db)


def _statistics(db):
    from . import charts, data
    rows = data.find_public(db)
    summary = data.filter_summary(rows)
    return {"summary": summary, "total": len(rows), "programmes": data.programme_time(rows),
            "charts": [(title, charts.png_data_uri(png)) for title, png in (
                ("Image quality history", charts.seeing_history(rows)),
                ("Observing time per month and filter", charts.exptime_per_month(rows)),
                ("Grades per filter", charts.grades_per_filter(summary))) if png is not None]}


def _products(db):
    from pathlib import PurePath

    from . import data, survey
    hidden = survey.hidden_stems(db, survey.PUBLIC)  # proprietary data's products: console only
    rows = [p for p in data.products(db) if not survey.is_hidden_file(PurePath(p["path"]).name, hidden)]
    for p in rows:
        p["parents"] = [q for q in p["parents"] if not survey.is_hidden_file(PurePath(q["path"]).name, hidden)]
    return {"products": rows, "total": data.overview(db)["products"]}


def _releases(db):
    from . import data, survey
    from .site import slug
    out = data.releases(db)
    public = {st["id"] for st in survey.stack_rows(db)}  # a proprietary stack has no public page
    scamp = survey.scamp_xml_by_run(db)
    for st in [st for rel in out["releases"] for st in rel["stacks"]] + out["unreleased"]:
        st["slug"] = slug(st["id"], st["name"]) if st["id"] in public else None
        st["astrometry"] = survey.astrometry_summary(scamp.get(st["run_id"]))
    return out


@hookimpl
def web_pages(register):
    """Implements :func:`terapix_fw.hookspecs.web_pages`: the core report pages (overview, runs, exposures, products, releases...)."""
    register("index", "index.html", _index, title="Overview", order=0)
    register("runs", "runs.html", _runs, title="Runs", order=10)
    register("run", "run.html", _run_pages, each=True, order=11)
    register("exposures", "exposures.html", _exposures, title="Exposures", order=20)
    register("exposure", "exposure.html", _exposure_pages, each=True, order=21)
    register("status", "status.html", _status, title="Status", order=5)
    register("statistics", "statistics.html", _statistics, title="Statistics", order=25)
    register("stack", "stack.html", _stack_pages, each=True, order=36)
    register("products", "products.html", _products, title="Products", order=30)
    register("releases", "releases.html", _releases, title="Releases", order=35)


def _cmd_build(args) -> int:
    from .site import build_site
    written = build_site(args.db, args.out, templates=args.templates, title=args.title, refresh=args.refresh,
                         extra_asset_roots=args.asset_root)
    print(f"terapix web: {len(written)} page(s) written to {args.out}")
    return 0


def _cmd_serve(args) -> int:
    from .console import serve
    serve(args.db, args.config, host=args.host, port=args.port, threads=args.threads, title=args.title)
    return 0


def _cmd_passwd(args) -> int:
    import getpass
    import sys

    from .auth import hash_password
    password = sys.stdin.readline().rstrip("\n") if args.stdin else getpass.getpass("password: ")
    if len(password) < 8:
        print("terapix web passwd: a password needs at least 8 characters", file=sys.stderr)
        return 1
    print(hash_password(password))
    return 0


@hookimpl
def register_commands(subparsers):
    """Implements :func:`terapix_fw.hookspecs.register_commands`: add ``terapix web`` (build, serve, console)."""
    p = subparsers.add_parser("web", help="static web reports from RDBix")
    sub = p.add_subparsers(dest="web_command", metavar="ACTION")
    sub.required = True
    b = sub.add_parser("build", help="render the report pages (run status, exposures, products, plugins')")
    b.add_argument("--db", default=None, help="database URL (default: $TERAPIX_DB_URL or ./rdbix.sqlite)")
    b.add_argument("--out", required=True, help="folder the pages are written to")
    b.add_argument("--templates", default=None, help="folder of templates overriding the default ones")
    b.add_argument("--title", default="terapix-fw", help="site title")
    b.add_argument("--refresh", type=int, default=0, metavar="SECONDS",
                   help="browsers reload the pages every SECONDS (rebuild the site from cron)")
    b.add_argument("--asset-root", action="append", default=[], metavar="DIR",
                   help="a folder whose plots and logs may be copied into the site, besides the runs' "
                        "work directories (repeatable)")
    b.set_defaults(func=_cmd_build)
    s = sub.add_parser("serve", help="the operations console (Flask under waitress) reading RDBix live")
    s.add_argument("--db", default=None, help="database URL (default: $TERAPIX_DB_URL or ./rdbix.sqlite)")
    s.add_argument("--config", required=True, help="console configuration (TOML: users, roles, product roots)")
    s.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    s.add_argument("--port", type=int, default=8080)
    s.add_argument("--threads", type=int, default=8, help="waitress worker threads")
    s.add_argument("--title", default="terapix-fw console")
    s.set_defaults(func=_cmd_serve)
    pw = sub.add_parser("passwd", help="print the Argon2id hash of a password for the console configuration")
    pw.add_argument("--stdin", action="store_true", help="read the password from standard input")
    pw.set_defaults(func=_cmd_passwd)
