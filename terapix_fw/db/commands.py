"""``terapix db init|upgrade|status|query``, ``terapix grade`` and ``terapix dbclient serve|flush|status``."""
from __future__ import annotations

import argparse
import datetime as _dt
import json
import sys

__all__ = ["register"]


def _url(args) -> str:
    from .engine import resolve_url
    return resolve_url(args.db, args.workdir)


def _existing_url(args) -> str:
    """The URL of a database that must exist already (read-only commands and grades never create one)."""
    from .engine import open_existing
    url = _url(args)
    open_existing(url)
    return url


def _add_db_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--db", default=None, help="database URL (default: $TERAPIX_DB_URL or WORKDIR/rdbix.sqlite)")
    p.add_argument("--workdir", default=None, help="work directory holding rdbix.sqlite (default: .)")


def _cmd_init(args) -> int:
    from . import migrate
    migrate.init(_url(args))
    print(migrate.status(_url(args)))
    return 0


def _cmd_upgrade(args) -> int:
    from . import migrate
    migrate.upgrade(_url(args), args.revision)
    print(migrate.status(_url(args)))
    return 0


def _cmd_status(args) -> int:
    from . import migrate
    from .engine import missing_sqlite_file
    url = _url(args)
    missing = missing_sqlite_file(url)
    if missing:  # said, not created
        print(f"{missing}: no RDBix database there; current revision none (`terapix db init` creates one)")
        return 1
    st = migrate.status(url)
    print(st)
    return 0 if st.up_to_date else 1


def _default(value):
    if isinstance(value, _dt.datetime):
        return value.isoformat()
    return str(value)


IMAGE_COLUMNS = ("filename", "filter", "qrunid", "date_obs", "exptime", "airmass", "seeing", "survey_component",
                 "grade", "grade_source")


def _print_table(rows: list[dict], columns: tuple[str, ...], out=None) -> None:
    out = out or sys.stdout
    def fmt(v):
        if v is None:
            return "-"
        if isinstance(v, float):
            return f"{v:.6g}"
        if isinstance(v, _dt.datetime):
            return v.strftime("%Y-%m-%dT%H:%M:%S")
        return str(v)
    cells = [[fmt(r.get(c)) for c in columns] for r in rows]
    widths = [max([len(c)] + [len(row[i]) for row in cells]) for i, c in enumerate(columns)]
    out.write("  ".join(c.ljust(w) for c, w in zip(columns, widths)).rstrip() + "\n")
    for row in cells:
        out.write("  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip() + "\n")


def _cmd_query_images(args) -> int:
    from .query import find_images
    cone = tuple(args.cone) if args.cone else None
    rows = find_images(_existing_url(args), filter=args.filter, run_id=args.run_id, date_from=args.date_from,
                       date_to=args.date_to, exptime_min=args.exptime_min, exptime_max=args.exptime_max,
                       seeing_min=args.seeing_min, seeing_max=args.seeing_max, airmass_min=args.airmass_min,
                       airmass_max=args.airmass_max, grade=args.grade, survey=args.survey, cone=cone,
                       limit=args.limit)
    if args.json:
        json.dump(rows, sys.stdout, default=_default, indent=1)
        sys.stdout.write("\n")
    else:
        _print_table(rows, IMAGE_COLUMNS + (("distance",) if cone else ()))
        print(f"{len(rows)} exposure(s)", file=sys.stderr)
    return 0


def _cmd_query_provenance(args) -> int:
    from .query import provenance
    node = provenance(_existing_url(args), args.product)
    if args.json:
        json.dump(node.to_dict(), sys.stdout, default=_default, indent=1)
        sys.stdout.write("\n")
    else:
        print(node.format())
    return 0


def _cmd_query_grades(args) -> int:
    from .query import effective_grade, grade_history
    url = _existing_url(args)
    for row in grade_history(url, args.exposure):
        print(f"{row['time'].strftime('%Y-%m-%dT%H:%M:%S')}  {row['grade']}  {row['author']}  "
              f"{row['comment'] or ''}".rstrip())
    grade, source = effective_grade(url, args.exposure)
    print(f"effective grade: {grade or '-'} ({source or 'ungraded'})")
    return 0


def _cmd_grade(args) -> int:
    import os
    from ..model import _user
    from .ops import Document
    author = args.author or _user()
    from ..spica.grading import grade_stack, is_stack
    if not os.environ.get("TERAPIX_DBCLIENT_URL") or args.db:
        url = _existing_url(args)  # grading never creates a database
        if is_stack(url, args.exposure):  # a Spica release product: the control team's stack grade
            result = grade_stack(url, args.exposure, args.grade, author, args.comment)
            print(f"{args.exposure} ({result['version']}): grade {args.grade} by {author} recorded"
                  + (f"; supersedes {', '.join(result['superseded'])}" if result["superseded"] else ""))
            return 0
    doc = Document().add("grade", exposure=os.path.basename(args.exposure), grade=args.grade, author=author,
                         comment=args.comment, time=_dt.datetime.now(_dt.timezone.utc))
    client_url = os.environ.get("TERAPIX_DBCLIENT_URL")
    if client_url and not args.db:
        from ..dbclient.client import Client
        result = Client(client_url).submit(doc)
        print(f"{args.exposure}: grade {args.grade} by {author} {result.describe()}")
    else:
        from .engine import connect
        from .store import write_document
        write_document(connect(_existing_url(args)), doc)
        print(f"{args.exposure}: grade {args.grade} by {author} recorded")
    return 0


def _cmd_serve(args) -> int:
    from ..dbclient.server import serve_forever
    limits = {k: v for k, v in (("read_timeout", args.read_timeout), ("connection_limit", args.connection_limit),
                                ("threads", args.threads)) if v is not None}
    return serve_forever(db_url=_url(args), host=args.host, port=args.port, secret_file=args.secret_file,
                         port_file=args.port_file, log_file=args.log, writers=args.writers, **limits)


def _cmd_flush(args) -> int:
    from ..dbclient.client import Client
    client = Client(args.url, spool_dir=args.spool, secret_file=args.secret_file)
    result = client.flush()
    print(result.describe())
    return 0 if result.remaining == 0 else 1


def _cmd_spool(args) -> int:
    from ..dbclient.client import Client
    client = Client(args.url, spool_dir=args.spool, secret_file=args.secret_file, require_url=False)
    pending = client.pending()
    rejected = client.rejected()
    print(f"spool {client.spool_dir}: {len(pending)} document(s) waiting, {len(rejected)} rejected")
    for path in rejected:
        print(f"  rejected: {path.name}: {path.with_suffix('.reason').read_text(errors='replace').strip()}"
              if path.with_suffix(".reason").exists() else f"  rejected: {path.name}")
    return 0


def _cmd_kinds(args) -> int:
    from .ops import OPS, RECORD_KINDS

    def describe(f):
        mark = "*" if f.required else ""
        if f.type == "rows":
            return f"{f.name}{mark}[{', '.join(r.name + ('*' if r.required else '') for r in f.row)}]"
        if f.choices:
            return f"{f.name}{mark}({'|'.join(f.choices)})"
        suffix = {"map": "{}", "list": "[]"}.get(f.type, f":{f.type}" if f.type != "str" else "")
        return f"{f.name}{mark}{suffix}"

    names = RECORD_KINDS if not args.all else tuple(OPS)
    for name in names:
        spec = OPS[name]
        print(f"{name}: {spec.doc}\n    " + ", ".join(describe(f) for f in spec.fields))
    print("(* required; {} key/value mapping; [] list; run_id and step are filled in for ctx.record)")
    return 0


def register(subparsers) -> None:
    """Add ``terapix db`` (init, upgrade, downgrade, status, query...).

    Parameters
    ----------
    subparsers : argparse._SubParsersAction
        The ``terapix`` sub-parser collection.
    """
    db = subparsers.add_parser("db", help="RDBix database: init, upgrade, status, query")
    dbsub = db.add_subparsers(dest="db_command", metavar="ACTION")
    dbsub.required = True
    p = dbsub.add_parser("init", help="create the schema in an empty database (runs every migration)")
    _add_db_options(p)
    p.set_defaults(func=_cmd_init)
    p = dbsub.add_parser("upgrade", help="migrate the schema to the latest (or a given) revision")
    _add_db_options(p)
    p.add_argument("--revision", default="head", help="target revision (default: head)")
    p.set_defaults(func=_cmd_upgrade)
    p = dbsub.add_parser("status", help="current and head schema revisions (exit 1 if not up to date)")
    _add_db_options(p)
    p.set_defaults(func=_cmd_status)

    p = dbsub.add_parser("kinds", help="the record kinds tools may send with ctx.record(), and their fields")
    p.add_argument("--all", action="store_true", help="every dbClient instruction, not only record kinds")
    p.set_defaults(func=_cmd_kinds)

    q = dbsub.add_parser("query", help="select images, show provenance or grades")
    qsub = q.add_subparsers(dest="query_command", metavar="WHAT")
    qsub.required = True
    p = qsub.add_parser("images", help="exposures matching every criterion given")
    _add_db_options(p)
    p.add_argument("--filter", help="filter name(s), comma-separated")
    p.add_argument("--run-id", help="QRUNID or RUNID")
    p.add_argument("--date-from", help="DATE-OBS lower bound (ISO-8601)")
    p.add_argument("--date-to", help="DATE-OBS upper bound (ISO-8601)")
    for name in ("exptime", "seeing", "airmass"):
        p.add_argument(f"--{name}-min", type=float)
        p.add_argument(f"--{name}-max", type=float)
    p.add_argument("--grade", help="effective grade(s), comma-separated (A,B,C,D)")
    p.add_argument("--survey", help="survey component(s): D, W, Pre-W, VW, PI")
    p.add_argument("--cone", nargs=3, type=float, metavar=("RA", "DEC", "RADIUS"), help="degrees")
    p.add_argument("--limit", type=int)
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=_cmd_query_images)
    p = qsub.add_parser("provenance", help="what a product was made from, by which tool and configuration")
    _add_db_options(p)
    p.add_argument("product", help="product path")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_cmd_query_provenance)
    p = qsub.add_parser("grades", help="grade history and effective grade of an exposure")
    _add_db_options(p)
    p.add_argument("exposure")
    p.set_defaults(func=_cmd_query_grades)

    p = subparsers.add_parser("grade", help="grade an exposure A|B|C|D (history kept; overrides the suggestion)")
    p.add_argument("exposure", help="exposure file name")
    p.add_argument("grade", choices=["A", "B", "C", "D"])
    p.add_argument("--comment", default=None)
    p.add_argument("--author", default=None, help="default: the current user")
    _add_db_options(p)
    p.set_defaults(func=_cmd_grade)

    dc = subparsers.add_parser("dbclient", help="dbClient server (master node) and client spool")
    dcsub = dc.add_subparsers(dest="dbclient_command", metavar="ACTION")
    dcsub.required = True
    p = dcsub.add_parser("serve", help="accept dbClient documents over HTTP and write them to RDBix")
    _add_db_options(p)
    p.add_argument("--port", type=int, required=True, help="TCP port (0: any free port, see --port-file)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0 for every interface)")
    p.add_argument("--secret-file", default=None, help="shared secret file (default: $TERAPIX_DBCLIENT_SECRET)")
    p.add_argument("--port-file", default=None, help="write the listening port to this file once ready")
    p.add_argument("--log", default=None, help="also log to this file")
    p.add_argument("--writers", type=int, default=None,
                   help="database writer threads (default: 1 for SQLite, 4 for MySQL/MariaDB)")
    p.add_argument("--read-timeout", type=float, default=None,
                   help="seconds a connection may stay silent before it is closed (default 30)")
    p.add_argument("--connection-limit", type=int, default=None, help="open connections at most (default 4096)")
    p.add_argument("--threads", type=int, default=None, help="request threads (default 16)")
    p.set_defaults(func=_cmd_serve)
    p = dcsub.add_parser("flush", help="send every spooled document to the server, in order")
    p.add_argument("--url", default=None, help="server URL (default: $TERAPIX_DBCLIENT_URL)")
    p.add_argument("--spool", default=None, help="spool directory (default: $TERAPIX_DBCLIENT_SPOOL or "
                                                 "$TERAPIX_HOME/dbclient-spool)")
    p.add_argument("--secret-file", default=None)
    p.set_defaults(func=_cmd_flush)
    p = dcsub.add_parser("spool", aliases=["status"],
                         help="list the documents waiting in (or rejected from) the spool, with the reasons")
    p.add_argument("--url", default=None)
    p.add_argument("--spool", default=None)
    p.add_argument("--secret-file", default=None)
    p.set_defaults(func=_cmd_spool)
