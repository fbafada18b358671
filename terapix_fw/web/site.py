"""Static web reports: pages registered through the ``web_pages`` hook, rendered with Jinja.

Every page, the core's included, comes from a ``web_pages(register)`` hook implementation::

    @hookimpl
    def web_pages(register):
        register("transfers", "snooppix_transfers.html", transfer_context, title="Transfers")

``register(name, template, context, *, title=None, each=False, order=100)``

* ``name``: the page's file name without ``.html`` (letters, digits, ``_`` and ``-``);
* ``template``: a template name, looked up in ``--templates`` first, then ``web/templates``; or a
  :class:`pathlib.Path` to a template file shipped by a plugin (its folder is searched last, so a
  site's own templates can override it).  Templates extend ``base.html`` and fill its blocks;
* ``context(db)``: returns the template's variables (``db`` is an SQLAlchemy Engine on RDBix); with
  ``each=True`` it returns ``(slug, variables)`` pairs instead, one page ``name/slug.html`` each (such
  pages are not in the navigation bar);
* ``title`` and ``order``: the navigation entry.

Autoescaping is on for every template: values from the database (exposure names, error messages,
headers) are untrusted.  Templates get the filters ``dt``, ``duration``, ``filesize``, ``num``,
``file_url``, ``slug`` and the function ``asset(path)``, which copies a local file (a failed unit's log, a
plot) into the site and returns its relative URL, or ``None`` if the file is not on this machine or is
refused (outside the asset roots, in a hidden folder, not a plot/log/text suffix: see :class:`_Assets`).
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import logging
import math
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from ..atomic import atomic_path, confine, write_text_atomic
from ..errors import TerapixError

__all__ = ["Page", "WebError", "collect_pages", "build_site", "make_environment", "default_web_dir", "slug"]

_NAME = re.compile(r"^[A-Za-z0-9_-]+$")
MAX_ASSET_BYTES = 20 << 20


class WebError(TerapixError):
    """A report that cannot be built: bad page registration, missing template, unreadable database."""


@dataclass
class Page:
    """A report page registered through the ``web_pages`` hook.

    Attributes
    ----------
    name : str
        Page name (file name of the page).
    template : str or Path
    context : callable
        ``context(db)`` -> the template's variables.
    """
    name: str
    template: str | Path
    context: Callable[[Any], Any]
    title: str
    each: bool = False
    order: int = 100
    plugin: str = ""


def default_web_dir() -> Path:
    """The folder of the default templates and static assets (see :func:`terapix_fw.resources.web_dir`)."""
    from ..resources import web_dir
    return web_dir()


def collect_pages(pm=None) -> list[Page]:
    """Every page registered by the ``web_pages`` hook, in navigation order.

    Parameters
    ----------
    pm : pluggy.PluginManager, optional
        The plugin manager (the installed plugins by default).

    Returns
    -------
    list of Page

    Raises
    ------
    WebError
        On a bad page name, a context that is not callable, or a name registered twice.
    """
    if pm is None:
        from ..plugins import get_plugin_manager
        pm = get_plugin_manager()
    pages: dict[str, Page] = {}

    def register(name: str, template, context, *, title: str | None = None, each: bool = False,
                 order: int = 100) -> None:
        if not isinstance(name, str) or not _NAME.match(name):
            raise WebError(f"web page name {name!r}: expected letters, digits, '_' or '-'")
        if not callable(context):
            raise WebError(f"web page {name}: context must be a callable taking the database")
        if name in pages:
            raise WebError(f"web page {name} is registered twice (template {pages[name].template} "
                           f"and {template})")
        pages[name] = Page(name, template, context, title or name.replace("_", " ").capitalize(),
                           each, order)

    pm.hook.web_pages(register=register)
    return sorted(pages.values(), key=lambda p: (p.order, p.title))


# ----------------------------------------------------------------------------------------------------
# Jinja environment and filters

def _dt_filter(value, fmt: str = "%Y-%m-%d %H:%M:%S") -> str:
    if value is None or value == "":
        return "-"
    if isinstance(value, (int, float)):
        value = _dt.datetime.fromtimestamp(value, _dt.timezone.utc)
    if isinstance(value, _dt.datetime):
        return value.strftime(fmt)
    return str(value)


def _seconds(value) -> float | None:
    if value is None:
        return None
    if isinstance(value, _dt.datetime):
        return value.timestamp()
    return float(value)


def _duration(start, end) -> str:
    a, b = _seconds(start), _seconds(end)
    if a is None or b is None:
        return "-"
    s = max(b - a, 0.0)
    if s < 60:
        return f"{s:.1f} s"
    if s < 3600:
        return f"{int(s // 60)} min {int(s % 60):02d} s"
    return f"{int(s // 3600)} h {int(s % 3600 // 60):02d} min"


def _filesize(value) -> str:
    if value is None:
        return "-"
    size = float(value)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(size) < 1000 or unit == "TB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000.0
    return str(value)


def _num(value, digits: int = 3) -> str:
    if value is None or value == "":
        return "-"
    try:
        x = float(value)
    except (TypeError, ValueError):
        return str(value)
    if math.isnan(x):
        return "-"
    return f"{x:.{digits}g}" if abs(x) < 1e6 else f"{x:.{digits}e}"


def slug(*parts) -> str:
    """A file-name-safe page slug from ``parts`` (joined by ``-``); templates link with ``|slug``.

    Characters other than letters, digits, ``.``, ``_`` and ``-`` become ``_``, so put a unique part
    (a database id) in when two names could reduce to the same slug.

    Parameters
    ----------
    *parts : Any
        Joined by ``-``.

    Returns
    -------
    str
    """
    text = "-".join(str(p) for p in parts)
    return re.sub(r"[^A-Za-z0-9._-]", "_", text).lstrip(".")[:200] or "_"


def _file_url(path) -> str | None:
    """``file://`` URL of an absolute local path, else None (never a URL of another scheme)."""
    if not path:
        return None
    p = Path(str(path))
    return p.as_uri() if p.is_absolute() else None


def _metric_label(name) -> str:
    from .survey import metric_label
    return metric_label(str(name))


def make_environment(template_dirs: list[Path]):
    """A Jinja environment searching ``template_dirs`` in order, autoescaping everything.

    Parameters
    ----------
    template_dirs : list of Path

    Returns
    -------
    jinja2.Environment
    """
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.ChoiceLoader([jinja2.FileSystemLoader(str(d)) for d in template_dirs]),
        autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters.update(dt=_dt_filter, duration=_duration, filesize=_filesize, num=_num, file_url=_file_url,
                       slug=lambda value, *more: slug(value, *more), basename=lambda p: Path(str(p)).name,
                       metric=_metric_label)
    env.globals["asset"] = lambda path: None  # replaced per page by build_site
    return env


#: What the site may publish from a work directory: plots, thumbnails, logs and small text products.
#: Anything else (a key, a password file, a FITS image) is never copied, whatever the database says.
PUBLISHABLE_SUFFIXES = (".png", ".jpg", ".jpeg", ".gif", ".webp", ".pdf", ".ps", ".log", ".txt", ".xml",
                        ".json", ".csv", ".head", ".ahead", ".out", ".err", ".html")

log = logging.getLogger("terapix.web")


class _Assets:
    """Copies local files into ``out/assets`` once each, under a name derived from their path.

    The paths come from the database, and a forged record must not publish, say, a key file: a file is
    copied only if it lies under one of ``roots`` (the declared work directories of the runs that are
    real terapix work directories, the drop-in log directory, the site's ``--asset-root`` folders), under
    no hidden folder of that root, and has a suffix of :data:`PUBLISHABLE_SUFFIXES`.  Every refusal is
    logged (once per path) with its reason.
    """

    def __init__(self, out: Path, roots: list[Path], hidden: list[str] | None = None):
        self.out = out
        self.roots = [r.resolve() for r in roots]
        self.hidden = hidden or []  # file stems of proprietary exposures: never in the public site
        self.copied: dict[str, str | None] = {}
        self.refused: dict[str, str] = {}

    def url(self, path, root: str) -> str | None:
        if not path:
            return None
        key = str(path)
        if key not in self.copied:
            self.copied[key] = self._copy(Path(key))
        rel = self.copied[key]
        return None if rel is None else root + rel

    def _refuse(self, src: Path, reason: str) -> None:
        self.refused[str(src)] = reason
        log.info("web: not publishing %s: %s", src, reason)

    def report(self) -> None:
        """One warning naming what was refused (every refusal is logged at INFO level)."""
        if self.refused:
            first = "; ".join(f"{p}: {r}" for p, r in list(self.refused.items())[:5])
            log.warning("web: %d file(s) named in RDBix not published (%s%s)", len(self.refused), first,
                        "; ..." if len(self.refused) > 5 else "")

    def _copy(self, src: Path) -> str | None:
        try:
            if not src.is_absolute() or not src.is_file():
                return None  # not on this machine (another node's file): shown as text, nothing to refuse
            real = src.resolve()
            size = real.stat().st_size
        except OSError:
            return None
        from .survey import is_hidden_file

        if is_hidden_file(src.name, self.hidden) or is_hidden_file(real.name, self.hidden):
            self._refuse(src, "a file of proprietary data before its release date")
            return None
        root = next((r for r in self.roots if r == real or r in real.parents), None)
        if root is None:
            self._refuse(src, "outside the runs' work directories and the site's asset roots")
            return None
        if any(part.startswith(".") for part in real.relative_to(root).parts):
            self._refuse(src, f"in a hidden folder of {root}")
            return None
        if real.suffix.lower() not in PUBLISHABLE_SUFFIXES:
            self._refuse(src, f"suffix {real.suffix or '(none)'!r} is not one the site publishes")
            return None
        if size > MAX_ASSET_BYTES:
            self._refuse(src, f"{size} bytes, more than the {MAX_ASSET_BYTES} a site asset may have")
            return None
        digest = hashlib.sha1(str(src).encode("utf-8", "surrogateescape")).hexdigest()[:12]
        name = re.sub(r"[^A-Za-z0-9._-]", "_", src.name)[-80:] or "file"
        rel = f"assets/{digest}-{name}"
        if name.endswith((".log", ".txt", ".out", ".err", ".html", ".xml")):
            rel += ".txt"  # served as text by any web server, never as a document that runs scripts
        with atomic_path(self.out / rel) as tmp:
            shutil.copyfile(real, tmp)
        return rel


# ----------------------------------------------------------------------------------------------------

def _open_db(db):
    from sqlalchemy.engine import Engine, make_url

    from ..db import connect, resolve_url

    if isinstance(db, Engine):
        return db
    url = resolve_url(db)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:") \
            and not Path(parsed.database).exists():
        raise WebError(f"no RDBix database at {parsed.database} (from --db / TERAPIX_DB_URL)")
    return connect(url)


#: Folders that are never an asset root, whatever a run declared as its work directory.
_SYSTEM_DIRS = ("/", "/bin", "/boot", "/dev", "/etc", "/lib", "/lib64", "/proc", "/root", "/run", "/sbin",
                "/sys", "/usr", "/var")


def _is_work_directory(path: Path) -> bool:
    """A folder the runner made its work directory: it holds the runner's ``.terapix/`` state folder."""
    try:
        return path.is_absolute() and path.is_dir() and (path / ".terapix").is_dir() \
            and str(path.resolve()) not in _SYSTEM_DIRS and str(path) not in _SYSTEM_DIRS
    except OSError:
        return False


def _asset_roots(engine) -> list[Path]:
    """Where files worth copying into the site live: the declared work directory of every run that is a
    real terapix work directory (see :func:`_is_work_directory`; a forged ``workdir=/etc`` is not one)
    and the drop-in log directory."""
    from sqlalchemy import select

    from ..db import schema
    from ..dropin import log_directory

    with engine.connect() as conn:
        workdirs = [row[0] for row in conn.execute(select(schema.runs.c.workdir).distinct()) if row[0]]
    roots = []
    for w in workdirs:
        if _is_work_directory(Path(w)):
            roots.append(Path(w))
        elif Path(w).is_dir():
            log.warning("web: run work directory %s holds no .terapix/ state folder (or is a system "
                        "folder): none of its files is published", w)
    return roots + [log_directory()]


def build_site(db, out: str | Path, *, templates: str | Path | None = None, title: str = "terapix-fw",
               pages: list[Page] | None = None, asset_roots: list[Path] | None = None,
               extra_asset_roots: list[Path] | None = None, refresh: int = 0) -> list[Path]:
    """Render every registered page from RDBix ``db`` into the folder ``out``; return the written pages.

    ``templates`` is a folder whose templates override the default ones (``web/templates``).  Each
    page is written atomically; static assets are copied to ``out/static``.  A page that cannot be
    built does not stop the others: :class:`WebError` is raised at the end, naming every such page.
    ``asset_roots`` are the folders whose files ``asset()`` may copy into the site (default: every
    run's work directory that holds the runner's ``.terapix/`` folder, and the drop-in log directory);
    ``extra_asset_roots`` are added to them (``--asset-root``).  ``refresh`` > 0 makes browsers reload the
    pages every ``refresh`` seconds (a control-room screen, with the site rebuilt by cron).

    Parameters
    ----------
    db : Engine, str or None
        RDBix: an Engine, a database URL, or None (``$TERAPIX_DB_URL``).
    out : str or Path
        Output folder.
    templates : str or Path, optional
    title : str
    pages : list of Page, optional
        The pages (every registered one by default).
    asset_roots : list of Path, optional
        Folders files may be copied from (the work directories by default).
    extra_asset_roots : list of Path, optional
        Added to ``asset_roots``.
    refresh : int
        Seconds between automatic reloads of the pages (0: none).

    Returns
    -------
    list of Path

    Raises
    ------
    WebError
        If a page cannot be built (the others are written).
    """
    from .. import __version__ as fw_version

    if templates is not None and not Path(templates).is_dir():
        raise WebError(f"--templates {templates}: not a folder of templates")
    engine = _open_db(db)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    web_dir = default_web_dir()
    pages = collect_pages() if pages is None else pages
    dirs = ([Path(templates)] if templates else []) + [web_dir / "templates"]
    dirs += list(dict.fromkeys(Path(p.template).parent for p in pages if isinstance(p.template, Path)))
    env = make_environment(dirs)
    roots = _asset_roots(engine) if asset_roots is None else [Path(r) for r in asset_roots]
    from .survey import PUBLIC, hidden_stems

    assets = _Assets(out, roots + [Path(r) for r in extra_asset_roots or []], hidden_stems(engine, PUBLIC))
    nav = [{"name": p.name, "title": p.title, "href": f"{p.name}.html"} for p in pages if not p.each]
    site = {"title": title, "nav": nav, "version": fw_version, "refresh": int(refresh),
            "generated": _dt.datetime.now(_dt.timezone.utc),
            "db": engine.url.render_as_string(hide_password=True), "console": False, "user": None}
    written: list[Path] = []
    current = {"root": ""}
    env.globals["asset"] = lambda path: assets.url(path, current["root"])

    def render(page: Page, rel: str, variables: dict, root: str) -> None:
        import jinja2

        name = page.template.name if isinstance(page.template, Path) else page.template
        for table_name, table in (variables.get("tables") or {}).items():
            write_table(page, table_name, table, root)
        try:
            current["root"] = root  # asset() of this page (imported macros keep the first globals they saw)
            template = env.get_template(name)
            html = template.render({**variables, "site": {**site, "root": root, "current": page.name},
                                    "page_title": page.title})
        except jinja2.TemplateNotFound as exc:
            raise WebError(f"web page {page.name}: template {exc.name!r} not found in "
                           f"{', '.join(str(d) for d in dirs)}") from None
        except jinja2.TemplateError as exc:
            raise WebError(f"web page {page.name} ({name}): {type(exc).__name__}: {exc}") from None
        target = confine(out, rel, f"web page {page.name}")
        write_text_atomic(target, html)
        written.append(target)

    def write_table(page: Page, name: str, table: dict, root: str) -> None:
        """``data/NAME.json`` and ``data/NAME.js`` (the same rows for a ``<script>``, which a page opened
        from file:// can load where it cannot fetch JSON) of a client-side table: ``columns`` and
        ``rows`` (dicts); the values of the ``thumb`` columns are local files, copied as assets."""
        import json

        if not _NAME.match(name):
            raise WebError(f"web page {page.name}: table name {name!r}: expected letters, digits, '_' or '-'")
        columns = table["columns"]
        keys = list(dict.fromkeys([c["key"] for c in columns] + list(table.get("extra", []))))
        files = {c["key"] for c in columns if c.get("type") == "thumb"}
        rows = [[assets.url(r.get(k), root) if k in files else r.get(k) for k in keys] for r in table["rows"]]
        text = json.dumps({"columns": columns, "keys": keys, "rows": rows}, separators=(",", ":"),
                          ensure_ascii=False, default=str)
        write_text_atomic(confine(out, f"data/{name}.json", f"table {name}"), text)
        script = text.replace("</", "<\\/")  # a JSON string may hold '</script>'
        write_text_atomic(confine(out, f"data/{name}.js", f"table {name}"),
                          f"window.TERAPIX_TABLES=window.TERAPIX_TABLES||{{}};window.TERAPIX_TABLES[{json.dumps(name)}]={script};\n")

    def data_error(page: Page, exc: Exception) -> str:
        return f"web page {page.name}: cannot read its data: {type(exc).__name__}: {exc}"

    errors: list[str] = []
    for page in pages:  # one broken page (a plugin's template, a query) must not stop the others
        try:
            result = page.context(engine)
            items = iter(result) if page.each else iter([("", result)])
        except Exception as exc:  # noqa: BLE001 - name the page whose data could not be read
            errors.append(data_error(page, exc))
            continue
        while True:  # per-item pages come from a generator that reads the database as it goes
            try:
                key, variables = next(items)
            except StopIteration:
                break
            except Exception as exc:  # noqa: BLE001
                errors.append(data_error(page, exc))
                break
            try:
                if page.each:
                    render(page, f"{page.name}/{slug(key)}.html", variables, "../")
                else:
                    render(page, f"{page.name}.html", variables, "")
            except WebError as exc:
                errors.append(str(exc))
                break
    static = web_dir / "static"
    if static.is_dir():
        for src in sorted(static.rglob("*")):
            if src.is_file():
                with atomic_path(out / "static" / src.relative_to(static)) as tmp:
                    shutil.copyfile(src, tmp)
    assets.report()
    if errors:
        raise WebError(f"{len(errors)} page(s) not built ({len(written)} written to {out}): " + "; ".join(errors))
    return written
