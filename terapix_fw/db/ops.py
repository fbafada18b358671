"""The RDBix instruction set: what can be recorded, with which fields, and how it is applied.

One list of instructions serves both paths of the seeds' design: the recorder builds a
:class:`Document` of instructions from the lifecycle hooks and either applies it directly (embedded
default) or sends it as an XML dbClient document (``terapix_fw.dbclient``) to the server, which parses it
back into the same :class:`Document` and applies it with the same :func:`apply_document`.  The XML
schema ``schemas/dbclient.xsd`` is generated from :data:`OPS` (see ``terapix_fw.dbclient.xsd``).

Instructions (``op``: fields; * = required)::

    run_start      run_id*, name, version, instruction_file, workdir, mode, executor, host, user, start,
                   parameters{}
    run_end        run_id*, end, status, summary{}
    step_start     run_id*, step*, tool, tool_version, distribution, fanout, priority, depends[], config{},
                   non_defaults{}, config_file, start
    step_end       run_id*, step*, status*, end, summary{}
    unit           run_id*, step*, unit*, key, inputs[], extension, group, attempt, status, host, start, end,
                   error, log_path, config{}
    product        run_id*, step*, unit*, path*, kind, checksum, size, inputs[] (provenance parents), meta{}
    exposure       filename*, object, filter, qrunid, runid, ra, dec, exptime, airmass, seeing, mjd_obs,
                   date_obs, photometric, survey_component, owner, release_date, arrival_date, skyprobe,
                   checksum (refused if the exposure is registered with another checksum),
                   keywords[extension, keyword*, value, comment], extensions[ccd*, extname, naxis1, naxis2,
                   ra, dec, ra1, dec1 ... ra4, dec4 (footprint corners)],
                   storage[node*, path*, size, checksum, compression]
    quality        exposure or stack (one of them)*, suggested_grade, run_id, time, metrics[ccd, name*, value]:
                   an exposure's ccd-0 metrics fwhm_arcsec, back_adu, nstars, ellipticity also fill its
                   seeing, background, nstars, ellipticity columns; a stack's go to stack_metrics
    quarantine     filename*, reason*, origin, path, node, checksum, time, run_id: a file ingestion refused
    grade          exposure*, grade*, author*, comment, time
    catalog        path*, exposure, nsources, run_id, sources[number, ra*, dec*, mag, magerr, flags]
    stack          name*, version, path, ra, dec, filter, survey_component, release_date, release,
                   release_version, run_id, images[], astrometry[]
    release        name*, version, release_date, survey_component, description, stacks[]
    transfer       direction* (in|out), node*, path, bytes, status, start, end
    node           name*, free_disk, time
    record         kind*, run_id, step, unit, time, data (JSON text): any other record, kept verbatim

``{}`` fields are string-to-string mappings, ``[]`` lists of strings, ``[a, b]`` lists of rows.
The record kinds a tool may send with ``ctx.record(kind, **data)`` are exposure, quality, grade,
catalog, stack, release, transfer, node and quarantine, with the fields above (``run_id`` and ``step`` are filled
in).  A record of another kind, or with fields beyond the above, is also kept whole in ``records``
(instruction ``record``), so that nothing a tool reports is lost.
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import json
import math
import numbers
import uuid
from dataclasses import dataclass, field
from pathlib import PurePath
from typing import Any, Callable

from sqlalchemy import and_, bindparam, delete, insert, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from ..errors import TerapixError
from . import schema as S
from .types import to_datetime

__all__ = ["Field", "OpSpec", "OPS", "RECORD_KINDS", "Document", "RecordError", "normalize",
           "apply_document", "path_hash", "new_document_id", "forget_ids"]

SCALAR_TYPES = ("str", "int", "float", "bool", "time")


class RecordError(TerapixError, ValueError):
    """An instruction that cannot be recorded (unknown op or field, wrong type, unknown exposure) or a
    query that cannot be answered; the message names the field or value."""


@dataclass(frozen=True)
class Field:
    """One field of an RDBix instruction.

    Attributes
    ----------
    name : str
    type : str
        ``str``, ``int``, ``float``, ``bool``, ``time``, ``map`` (str -> str), ``list`` (of str) or ``rows``.
    required : bool
    row : tuple of Field
        The fields of each row, for ``rows``.
    choices : tuple of str
        Allowed values, if restricted.
    from_mapping : tuple of (str, str) or None
        For ``rows``: a mapping given instead becomes rows with these (key field, value field).
    doc : str
    """
    name: str
    type: str = "str"  # str int float bool time | map (str->str) | list (str) | rows
    required: bool = False
    row: tuple["Field", ...] = ()
    choices: tuple[str, ...] = ()
    #: for rows: a mapping given instead of rows becomes rows with these (key field, value field)
    from_mapping: tuple[str, str] | None = None
    doc: str = ""


@dataclass(frozen=True)
class OpSpec:
    """An RDBix instruction: its fields and the function that applies it.

    Attributes
    ----------
    name : str
    fields : tuple of Field
    apply : callable
        ``apply(connection, data)``.
    doc : str
    """
    name: str
    fields: tuple[Field, ...]
    apply: Callable[[Connection, dict], None]
    doc: str = ""

    def field(self, name: str) -> Field | None:
        """The field called ``name``, or None.

        Parameters
        ----------
        name : str

        Returns
        -------
        Field or None
        """
        for f in self.fields:
            if f.name == name:
                return f
        return None


@dataclass
class Document:
    """A list of instructions applied atomically and at most once (keyed by ``id``)."""

    instructions: list[tuple[str, dict]] = field(default_factory=list)
    id: str = field(default_factory=lambda: new_document_id())
    node: str = ""
    created: _dt.datetime = field(default_factory=lambda: _dt.datetime.now(_dt.timezone.utc))

    def add(self, op: str, **data: Any) -> "Document":
        """Append an instruction, its fields checked (see :func:`normalize`).

        Parameters
        ----------
        op : str
            Instruction name.
        **data : Any
            Its fields.

        Returns
        -------
        Document
            ``self``, so that calls chain.
        """
        self.instructions.append((op, normalize(op, data)))
        return self


def new_document_id() -> str:
    """A new, unique document id (a random UUID, hexadecimal).

    Returns
    -------
    str
    """
    return uuid.uuid4().hex


def path_hash(path: str) -> str:
    """The SHA-1 of a path: the indexed key of path columns (a fixed length for paths of any length).

    Parameters
    ----------
    path : str

    Returns
    -------
    str
    """
    return hashlib.sha1(str(path).encode("utf-8", "surrogateescape")).hexdigest()


# ----------------------------------------------------------------------------------------------------
# Normalisation: the same checks whether an instruction comes from a hook, a tool or an XML document.

def _coerce_scalar(ftype: str, value: Any, where: str):
    if value is None:
        return None
    try:
        if ftype == "str":
            return str(value)
        if ftype == "int":
            if isinstance(value, numbers.Integral):  # bool, int, numpy integers
                return int(value)
            if isinstance(value, str):
                return int(value.strip())
            number = float(value)  # floats and numpy floats: only whole values are integers
            if not number.is_integer():
                raise ValueError
            return int(number)
        if ftype == "float":
            out = float(value)
            return None if math.isnan(out) else out
        if ftype == "bool":
            if isinstance(value, str):
                low = value.strip().lower()
                if low in ("1", "true", "t", "yes", "y"):
                    return True
                if low in ("0", "false", "f", "no", "n"):
                    return False
                raise ValueError
            return bool(value)
        if ftype == "time":
            return to_datetime(value)
    except (TypeError, ValueError) as exc:
        detail = f" ({exc})" if str(exc) else ""
        raise RecordError(f"{where}: {value!r} is not a valid {ftype}{detail}") from None
    raise AssertionError(ftype)


def normalize(op: str, data: dict) -> dict:
    """Check ``data`` against the fields of ``op`` and coerce every value to its declared type.

    Parameters
    ----------
    op : str
        Instruction name.
    data : dict
        Its fields.

    Returns
    -------
    dict
        The coerced fields.

    Raises
    ------
    RecordError
        On an unknown instruction or field, a missing required field, or a value of the wrong type.
    """
    spec = OPS.get(op)
    if spec is None:
        raise RecordError(f"unknown instruction {op!r} (expected one of {', '.join(OPS)})")
    out: dict[str, Any] = {}
    for key, value in data.items():
        fspec = spec.field(key)
        if fspec is None:
            raise RecordError(f"{op}: unknown field {key!r} (expected one of "
                              f"{', '.join(f.name for f in spec.fields)})")
        where = f"{op}.{key}"
        if fspec.type in SCALAR_TYPES:
            value = _coerce_scalar(fspec.type, value, where)
            if value is not None and fspec.choices and value not in fspec.choices:
                raise RecordError(f"{where}: {value!r} is not one of {', '.join(fspec.choices)}")
        elif fspec.type == "map":
            if value is None:
                value = {}
            if not isinstance(value, dict):
                raise RecordError(f"{where}: expected a mapping, got {type(value).__name__}")
            value = {str(k): ("" if v is None else str(v)) for k, v in value.items()}
        elif fspec.type == "list":
            if value is None:
                value = []
            if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
                raise RecordError(f"{where}: expected a list of strings, got {value!r}")
            value = [str(v) for v in value]
        elif fspec.type == "rows":
            if value is None:
                value = []
            if isinstance(value, dict) and fspec.from_mapping:
                kname, vname = fspec.from_mapping
                value = [{kname: k, vname: v} for k, v in value.items()]
            rows = []
            for i, row in enumerate(value):
                if not isinstance(row, dict):
                    raise RecordError(f"{where}[{i}]: expected a mapping of "
                                      f"{', '.join(f.name for f in fspec.row)}, got {row!r}")
                clean = {}
                for rk, rv in row.items():
                    rf = next((f for f in fspec.row if f.name == rk), None)
                    if rf is None:
                        raise RecordError(f"{where}[{i}]: unknown field {rk!r} (expected one of "
                                          f"{', '.join(f.name for f in fspec.row)})")
                    clean[rk] = _coerce_scalar(rf.type, rv, f"{where}[{i}].{rk}")
                for rf in fspec.row:
                    if rf.required and clean.get(rf.name) is None:
                        raise RecordError(f"{where}[{i}]: missing required field {rf.name!r}")
                rows.append(clean)
            value = rows
        out[key] = value
    for fspec in spec.fields:
        if fspec.required and (out.get(fspec.name) is None or out.get(fspec.name) == ""):
            raise RecordError(f"{op}: missing required field {fspec.name!r}")
    return out


# ----------------------------------------------------------------------------------------------------
# Helpers used by the apply functions.  Upserts are select-then-write: the dbClient server has a single
# writer, and SQLite writers are serialised by BEGIN IMMEDIATE; direct MySQL writers retry a document
# that lost a race (see apply_document_retrying).

def _now() -> _dt.datetime:
    return _dt.datetime.now(_dt.timezone.utc)


def _given(data: dict, *names: str) -> dict:
    return {n: data[n] for n in names if data.get(n) is not None}


def _json(value) -> str | None:
    return None if value is None else json.dumps(value, sort_keys=True)


_statements: dict[tuple, Any] = {}


def _select_by(table, keys: tuple[str, ...], pk: str):
    """SELECT pk FROM table WHERE key1 = :k_key1 AND ...; built once per shape (building SQLAlchemy
    constructs costs more than executing them on a local database)."""
    cache_key = ("select", table.name, keys, pk)
    stmt = _statements.get(cache_key)
    if stmt is None:
        stmt = select(table.c[pk]).where(and_(*[table.c[k] == bindparam(f"k_{k}") for k in keys]))
        _statements[cache_key] = stmt
    return stmt


def _update_by(table, names: tuple[str, ...], pk: str):
    cache_key = ("update", table.name, names, pk)
    stmt = _statements.get(cache_key)
    if stmt is None:
        stmt = (update(table).where(table.c[pk] == bindparam("k_pk"))
                .values({n: bindparam(f"v_{n}") for n in names}))
        _statements[cache_key] = stmt
    return stmt


def _ids(conn: Connection) -> dict:
    """Primary keys of rows this connection knows to exist (runs, steps, units), so that every instruction
    does not look its parents up again.  Cleared whenever a transaction or savepoint is rolled back
    (see terapix_fw.db.store); rows are never deleted, so committed ids stay valid."""
    return conn.info.setdefault("rdbix_ids", {})


def forget_ids(conn: Connection) -> None:
    """Forget the row ids cached on a connection (after a rollback they may be gone).

    Parameters
    ----------
    conn : sqlalchemy.engine.Connection
    """
    conn.info.pop("rdbix_ids", None)


def _upsert(conn: Connection, table, key: dict, values: dict, pk: str = "id", new_likely: bool = False):
    """Insert the row with ``key`` and ``values``, or update ``values`` of the existing one; its pk.

    ``new_likely``: try the INSERT first (one round trip instead of two in the usual case).  Either way
    a unique-key conflict on INSERT means another writer created the row meanwhile: it is then read
    back and updated (a failed statement does not abort the transaction on SQLite or InnoDB, and under
    READ COMMITTED the conflicting row is visible once its writer has committed)."""
    params = {f"k_{k}": v for k, v in key.items()}
    if not new_likely:
        found = conn.execute(_select_by(table, tuple(key), pk), params).first()
        if found is not None:
            if values:
                conn.execute(_update_by(table, tuple(values), pk),
                             {"k_pk": found[0], **{f"v_{n}": v for n, v in values.items()}})
            return found[0]
    try:
        result = conn.execute(insert(table), {**key, **values})
        return key[pk] if pk in key else result.inserted_primary_key[0]
    except IntegrityError as exc:
        found = conn.execute(_select_by(table, tuple(key), pk), params).first()
        if found is None:
            raise exc  # not a duplicate: a real constraint violation
        if values:
            conn.execute(_update_by(table, tuple(values), pk),
                         {"k_pk": found[0], **{f"v_{n}": v for n, v in values.items()}})
        return found[0]


def _insert_missing(conn: Connection, table, key: dict, row: dict, pk: str = "id"):
    """The pk of the row with ``key``, inserting ``row`` if there is none (never updating)."""
    params = {f"k_{k}": v for k, v in key.items()}
    found = conn.execute(_select_by(table, tuple(key), pk), params).first()
    if found is not None:
        return found[0]
    try:
        result = conn.execute(insert(table), {**key, **row})
        return key[pk] if pk in key else result.inserted_primary_key[0]
    except IntegrityError as exc:  # created meanwhile by another writer
        found = conn.execute(_select_by(table, tuple(key), pk), params).first()
        if found is None:
            raise exc
        return found[0]


def _ensure_run(conn: Connection, run_id: str) -> None:
    ids = _ids(conn)
    if ("run", run_id) in ids:
        return
    # a step reported before (or without) its run: keep it, the run row is completed later
    _insert_missing(conn, S.runs, {"run_id": run_id}, {"status": "unknown"}, pk="run_id")
    ids[("run", run_id)] = run_id


def _step_pk(conn: Connection, run_id: str, step: str, values: dict | None = None) -> int:
    ids = _ids(conn)
    pk = ids.get(("step", run_id, step))
    if pk is None or values:
        _ensure_run(conn, run_id)
        pk = _upsert(conn, S.steps, {"run_id": run_id, "step": step}, values or {}, new_likely=bool(values))
        ids[("step", run_id, step)] = pk
    return pk


def _ensure_step(conn: Connection, run_id: str, step: str) -> int:
    return _step_pk(conn, run_id, step)


def _unit_pk(conn: Connection, step_pk: int, unit: str, values: dict | None = None) -> int:
    ids = _ids(conn)
    pk = ids.get(("unit", step_pk, unit))
    if pk is None or values:
        pk = _upsert(conn, S.units, {"step_pk": step_pk, "unit": unit}, values or {}, new_likely=bool(values))
        ids[("unit", step_pk, unit)] = pk
    return pk


def _ensure_unit(conn: Connection, run_id: str, step: str, unit: str) -> int:
    return _unit_pk(conn, _ensure_step(conn, run_id, step), unit)


def _exposure_id(conn: Connection, filename: str, create: bool) -> int | None:
    name = PurePath(filename).name
    if not create:
        return _find_exposure_id(conn, name, filename)
    return _insert_missing(conn, S.exposures, {"filename": name}, {})


#: what an operator may leave off an exposure's file name (``700003p`` finds ``700003p.fits``)
_LENIENT_SUFFIXES = (".fits", ".fits.fz", ".fits.gz", ".fz", ".fit")


def _find_exposure_id(conn: Connection, name: str, given: str) -> int:
    """The id of exposure ``name``, matched leniently: exactly, then with a FITS suffix added; an unknown
    name is an error suggesting the closest registered names."""
    import difflib

    by_name = _select_by(S.exposures, ("filename",), "id")
    for candidate in (name,) + tuple(name + suffix for suffix in _LENIENT_SUFFIXES):
        found = conn.execute(by_name, {"k_filename": candidate}).first()
        if found is not None:
            return found[0]
    prefix = name.split(".")[0][:3].replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    nearby = conn.execute(select(S.exposures.c.filename)
                          .where(S.exposures.c.filename.like(f"{prefix}%", escape="\\")).limit(5000)).scalars().all()
    by_stem = {filename.split(".")[0]: filename for filename in nearby}  # compare names as typed: no suffix
    close = [by_stem[stem] for stem in difflib.get_close_matches(name.split(".")[0], list(by_stem), n=3,
                                                                  cutoff=0.6)]
    hint = f"; did you mean {', '.join(close)}?" if close else " (no registered exposure has a similar name)"
    raise RecordError(f"unknown exposure {given!r}{hint}")


def _healpix(ra, dec):
    """NESTED HEALPix pixels at HEALPIX_NSIDE of (arrays of) positions in degrees."""
    import healpy
    import numpy as np
    return healpy.ang2pix(S.HEALPIX_NSIDE, np.asarray(ra, float), np.asarray(dec, float), nest=True,
                          lonlat=True)


def _ensure_node(conn: Connection, name: str) -> None:
    _insert_missing(conn, S.nodes, {"name": name}, {})


# ----------------------------------------------------------------------------------------------------
# Apply functions, one per instruction.

def _run_start(conn, d):
    values = _given(d, "name", "version", "instruction_file", "workdir", "mode", "executor", "host",
                    "user", "start")
    values["status"] = "running"
    if "parameters" in d:
        values["parameters"] = _json(d["parameters"])
    _upsert(conn, S.runs, {"run_id": d["run_id"]}, values, pk="run_id")


def _run_end(conn, d):
    _ensure_run(conn, d["run_id"])
    values = _given(d, "end", "status")
    if "summary" in d:
        values["summary"] = _json(d["summary"])
    if values:
        conn.execute(update(S.runs).where(S.runs.c.run_id == d["run_id"]).values(**values))


def _step_start(conn, d):
    _ensure_run(conn, d["run_id"])
    values = _given(d, "tool", "tool_version", "distribution", "fanout", "priority", "config_file", "start")
    for name in ("depends", "config", "non_defaults"):
        if name in d:
            values[name] = _json(d[name])
    values["status"] = "running"
    _step_pk(conn, d["run_id"], d["step"], values)


def _step_end(conn, d):
    step_pk = _ensure_step(conn, d["run_id"], d["step"])
    values = _given(d, "status", "end")
    if "summary" in d:
        values["summary"] = _json(d["summary"])
    conn.execute(update(S.steps).where(S.steps.c.id == step_pk).values(**values))


def _unit(conn, d):
    step_pk = _ensure_step(conn, d["run_id"], d["step"])
    values = _given(d, "key", "extension", "attempt", "status", "host", "start", "end", "error", "log_path")
    if d.get("group") is not None:
        values["grp"] = d["group"]
    for name in ("inputs", "config"):
        if name in d:
            values[name] = _json(d[name])
    _unit_pk(conn, step_pk, d["unit"], values)


def _product_id(conn, path: str, checksum: str, values: dict) -> int:
    return _upsert(conn, S.products, {"path_hash": path_hash(path), "checksum": checksum},
                   {"path": path, **values}, new_likely=True)


def _product(conn, d):
    unit_pk = _ensure_unit(conn, d["run_id"], d["step"], d["unit"])
    values = _given(d, "kind", "size")
    values.update(unit_pk=unit_pk, created=_now())
    if d.get("meta"):
        values["meta"] = _json(d["meta"])
    pid = _product_id(conn, d["path"], d.get("checksum") or "", values)
    if d.get("inputs"):
        _provenance(conn, pid, unit_pk, d["inputs"])


def _latest_products(conn, hashes: list[str]) -> dict[str, int]:
    """path_hash -> id of the latest product with that hash, for those RDBix knows (500 per query)."""
    from sqlalchemy import func
    p = S.products
    out: dict[str, int] = {}
    for i in range(0, len(hashes), 500):
        out.update(conn.execute(select(p.c.path_hash, func.max(p.c.id)).where(p.c.path_hash.in_(hashes[i:i + 500]))
                                .group_by(p.c.path_hash)).all())
    return out


def _provenance(conn, pid: int, unit_pk: int, inputs: list[str]) -> None:
    """A product's parents: for each input path the latest version of that file known to RDBix, else a new
    external input; in bulk (a stack of 3,600 CCDs has 3,600 parents: one round trip each was minutes)."""
    paths = {path_hash(p): p for p in inputs}  # one parent per file
    latest = _latest_products(conn, list(paths))
    missing = [h for h in paths if h not in latest]
    if missing:
        now = _now()
        try:
            conn.execute(insert(S.products), [{"path_hash": h, "checksum": "", "path": paths[h], "kind": "input",
                                               "created": now} for h in missing])
        except IntegrityError:  # created meanwhile by another writer: one upsert each
            for h in missing:
                _product_id(conn, paths[h], "", {"kind": "input", "created": now})
        latest.update(_latest_products(conn, missing))
    parents = [latest[h] for h in paths if latest[h] != pid]
    _upsert_children(conn, S.provenance, {"product_id": pid}, ("parent_id",),
                     [{"parent_id": parent, "unit_pk": unit_pk} for parent in parents])


EXPOSURE_COLUMNS = ("object", "filter", "qrunid", "runid", "ra", "dec", "exptime", "airmass", "seeing",
                    "mjd_obs", "date_obs", "photometric", "survey_component", "owner", "release_date",
                    "arrival_date", "skyprobe", "checksum")
#: extension columns: centre and the four footprint corners
EXTENSION_COLUMNS = ("extname", "naxis1", "naxis2", "ra", "dec") + tuple(
    f"{axis}{k}" for k in (1, 2, 3, 4) for axis in ("ra", "dec"))
#: QualityFITS-in exposure metrics (ccd 0) copied to the exposure row
QUALITY_COLUMNS = {"fwhm_arcsec": "seeing", "back_adu": "background", "nstars": "nstars",
                   "ellipticity": "ellipticity"}


def _exposure(conn, d):
    values = _given(d, *EXPOSURE_COLUMNS)
    if d.get("ra") is not None and d.get("dec") is not None:
        values["healpix"] = int(_healpix(d["ra"], d["dec"]))
    exp_id = _exposure_id(conn, d["filename"], create=True)
    if d.get("checksum"):
        # a changed file under a known name is never registered over the first one (no silent overwrite)
        known = conn.execute(select(S.exposures.c.checksum).where(S.exposures.c.id == exp_id)).scalar()
        if known and known != d["checksum"]:
            raise RecordError(f"exposure {d['filename']!r} is registered with checksum {known[:12]}...; "
                              f"refusing a changed file (checksum {d['checksum'][:12]}...)")
    if values:
        conn.execute(update(S.exposures).where(S.exposures.c.id == exp_id).values(**values))
    if d.get("extensions"):
        _upsert_children(conn, S.extensions, {"exposure_id": exp_id}, ("ccd",),
                         [{"ccd": row["ccd"], **_given(row, *EXTENSION_COLUMNS)} for row in d["extensions"]])
    if d.get("keywords"):
        _upsert_children(conn, S.header_keywords, {"exposure_id": exp_id}, ("extension", "keyword"),
                         [{"extension": row.get("extension") or 0, "keyword": row["keyword"],
                           "value": row.get("value"), "comment": row.get("comment")} for row in d["keywords"]])
    for row in d.get("storage", []):
        _ensure_node(conn, row["node"])
        _upsert(conn, S.storage, {"exposure_id": exp_id, "node": row["node"], "path_hash": path_hash(row["path"])},
                {"path": row["path"], **_given(row, "size", "checksum", "compression")})


def _upsert_children(conn, table, parent: dict, key_cols: tuple[str, ...], rows: list[dict]) -> None:
    """Upsert the rows of ``table`` that belong to ``parent`` (e.g. ``{"exposure_id": 7}``), each row
    identified by ``key_cols`` within it, in bulk: one query for those already stored, one multi-row
    INSERT for the new ones, one UPDATE per stored one.  One upsert per row cost a round trip or two each:
    the 11,000 header keywords of a MegaCam exposure took 90 s on MariaDB.  A later row for the same key
    wins, as with one upsert each; a row updates only the columns it gives."""
    wanted: dict[tuple, dict] = {}
    for row in rows:
        wanted[tuple(row[k] for k in key_cols)] = row
    where = and_(*[table.c[k] == v for k, v in parent.items()])
    stored = {tuple(r[1:]): r[0] for r in conn.execute(select(table.c.id, *[table.c[k] for k in key_cols]).where(where))}
    updates: dict[tuple[str, ...], list[dict]] = {}
    new = []
    for key, row in wanted.items():
        values = {c: v for c, v in row.items() if c not in key_cols}
        if key in stored:
            if values:
                updates.setdefault(tuple(values), []).append(
                    {"k_pk": stored[key], **{f"v_{c}": v for c, v in values.items()}})
        else:
            new.append({**parent, **row})
    for names, params in updates.items():
        conn.execute(_update_by(table, names, "id"), params)
    # rows giving different columns go in separate INSERTs (one statement needs one set of columns)
    shapes: dict[tuple[str, ...], list[dict]] = {}
    for row in new:
        shapes.setdefault(tuple(sorted(row)), []).append(row)
    for group in shapes.values():
        try:
            conn.execute(insert(table), group)
        except IntegrityError:  # another writer stored some of them meanwhile: one upsert each
            for row in group:
                _upsert(conn, table, {**parent, **{k: row[k] for k in key_cols}},
                        {c: v for c, v in row.items() if c not in key_cols and c not in parent})


def _quality(conn, d):
    when = d.get("time") or _now()
    if d.get("stack"):
        if d.get("exposure"):
            raise RecordError("quality: give exposure or stack, not both")
        _stack_quality(conn, d, when)
        return
    if not d.get("exposure"):
        raise RecordError("quality: missing required field 'exposure' (or 'stack' for a stack)")
    exp_id = _exposure_id(conn, d["exposure"], create=True)
    columns = {}
    if d.get("metrics"):
        _upsert_children(conn, S.quality_metrics, {"exposure_id": exp_id}, ("ccd", "name"),
                         [{"ccd": row.get("ccd") or 0, "name": row["name"], "value": row.get("value"),
                           "run_id": d.get("run_id"), "time": when} for row in d["metrics"]])
    for row in d.get("metrics", []):  # the exposure's own quality columns, for selections
        if (row.get("ccd") or 0) == 0 and row["name"] in QUALITY_COLUMNS and row.get("value") is not None:
            value = row["value"]
            columns[QUALITY_COLUMNS[row["name"]]] = int(round(value)) if row["name"] == "nstars" else value
    if d.get("suggested_grade"):
        columns["suggested_grade"] = d["suggested_grade"]
    if columns:
        conn.execute(update(S.exposures).where(S.exposures.c.id == exp_id).values(**columns))


def _stack_quality(conn, d, when):
    """QualityFITS-out of a stack: metrics (ccd 0, the whole stack) in stack_metrics, never an exposure."""
    version = d.get("stack_version") or ""
    stack_id = _upsert(conn, S.stacks, {"name": PurePath(d["stack"]).name, "version": version},
                       _given(d, "suggested_grade"))
    for row in d.get("metrics", []):
        if row.get("ccd") or 0:
            continue  # a stack is one image: its ccd-1 metrics repeat the whole stack's
        _upsert(conn, S.stack_metrics, {"stack_id": stack_id, "name": row["name"]},
                {"value": row.get("value"), "run_id": d.get("run_id"), "time": when})


def _quarantine(conn, d):
    values = _given(d, "filename", "origin", "path", "node", "checksum", "reason", "run_id")
    values["filename"] = PurePath(d["filename"]).name
    if d.get("path"):
        values["path_hash"] = path_hash(d["path"])
    values["time"] = d.get("time") or _now()
    conn.execute(insert(S.quarantine).values(**values))


def _grade(conn, d):
    exp_id = _exposure_id(conn, d["exposure"], create=False)
    conn.execute(insert(S.grades).values(exposure_id=exp_id, grade=d["grade"], author=d["author"],
                                         time=d.get("time") or _now(), comment=d.get("comment")))


def _catalog(conn, d):
    values = {"path": d["path"], **_given(d, "nsources", "run_id"), "created": _now()}
    if d.get("exposure"):
        values["exposure_id"] = _exposure_id(conn, d["exposure"], create=True)
    cat_id = _upsert(conn, S.catalogs, {"path_hash": path_hash(d["path"])}, values)
    rows = d.get("sources")
    if rows:
        import numpy as np
        ra = np.array([r["ra"] for r in rows], float)
        dec = np.array([r["dec"] for r in rows], float)
        pix = _healpix(ra, dec)
        conn.execute(delete(S.sources).where(S.sources.c.catalog_id == cat_id))
        conn.execute(insert(S.sources), [
            {"catalog_id": cat_id, "number": r.get("number"), "ra": r["ra"], "dec": r["dec"],
             "healpix": int(p), "mag": r.get("mag"), "magerr": r.get("magerr"), "flags": r.get("flags")}
            for r, p in zip(rows, pix)])
        if d.get("nsources") is None:
            conn.execute(update(S.catalogs).where(S.catalogs.c.id == cat_id).values(nsources=len(rows)))


def _release_id(conn, name: str, version: str) -> int:
    return _upsert(conn, S.releases, {"name": name, "version": version}, {})


def _stack(conn, d):
    version = d.get("version") or ""
    values = _given(d, "path", "ra", "dec", "filter", "survey_component", "release_date", "run_id")
    if d.get("release"):
        values["release_id"] = _release_id(conn, d["release"], d.get("release_version") or "")
    stack_id = _upsert(conn, S.stacks, {"name": d["name"], "version": version}, values)
    for listname, field_name in (("stack", "images"), ("astrometry", "astrometry")):
        if field_name in d:
            conn.execute(delete(S.stack_images).where(and_(S.stack_images.c.stack_id == stack_id,
                                                           S.stack_images.c.list == listname)))
            names = list(dict.fromkeys(PurePath(n).name for n in d[field_name]))
            if names:
                conn.execute(insert(S.stack_images), [{"stack_id": stack_id, "list": listname, "filename": n}
                                                      for n in names])


def _release(conn, d):
    version = d.get("version") or ""
    rel_id = _upsert(conn, S.releases, {"name": d["name"], "version": version},
                     _given(d, "release_date", "survey_component", "description"))
    # each named stack: the one of this version, else the latest of that name, else a new one; in bulk
    # (a release lists hundreds of stacks: two round trips each were seconds on MariaDB)
    names = list(dict.fromkeys(d.get("stacks", [])))
    chosen: dict[str, tuple[bool, int]] = {}  # name -> (same version, id), the best so far
    st = S.stacks
    for i in range(0, len(names), 500):
        for sid, name, ver in conn.execute(select(st.c.id, st.c.name, st.c.version)
                                           .where(st.c.name.in_(names[i:i + 500]))):
            rank = (ver == version, sid)
            if name not in chosen or rank > chosen[name]:
                chosen[name] = rank
    ids = [sid for _, sid in chosen.values()]
    for i in range(0, len(ids), 500):
        conn.execute(update(st).where(st.c.id.in_(ids[i:i + 500])).values(release_id=rel_id))
    missing = [n for n in names if n not in chosen]
    if missing:
        try:
            conn.execute(insert(st), [{"name": n, "version": version, "release_id": rel_id} for n in missing])
        except IntegrityError:  # created meanwhile by another writer: one upsert each
            for n in missing:
                _upsert(conn, st, {"name": n, "version": version}, {"release_id": rel_id})


def _transfer(conn, d):
    _ensure_node(conn, d["node"])
    conn.execute(insert(S.transfers).values(**_given(d, "direction", "node", "path", "bytes", "status",
                                                     "start", "end")))


def _node(conn, d):
    values = _given(d, "free_disk")
    values["updated"] = d.get("time") or _now()
    _upsert(conn, S.nodes, {"name": d["name"]}, values)


def _record(conn, d):
    conn.execute(insert(S.records).values(**_given(d, "kind", "run_id", "step", "unit", "data"),
                                          time=d.get("time") or _now()))


F = Field
_STATUS = ("running", "done", "failed", "skipped", "blocked", "unknown", "interrupted")
OPS: dict[str, OpSpec] = {spec.name: spec for spec in [
    OpSpec("run_start", (F("run_id", required=True), F("name"), F("version"), F("instruction_file"),
                         F("workdir"), F("mode"), F("executor"), F("host"), F("user"), F("start", "time"),
                         F("parameters", "map")), _run_start, "a run of an instruction file or a drop-in tool"),
    OpSpec("run_end", (F("run_id", required=True), F("end", "time"), F("status", choices=_STATUS),
                       F("summary", "map")), _run_end, "a run ended"),
    OpSpec("step_start", (F("run_id", required=True), F("step", required=True), F("tool"), F("tool_version"),
                          F("distribution"), F("fanout"), F("priority", "int"), F("depends", "list"),
                          F("config", "map"), F("non_defaults", "map"), F("config_file"), F("start", "time")),
           _step_start, "a step starts: tool, version, effective configuration"),
    OpSpec("step_end", (F("run_id", required=True), F("step", required=True),
                        F("status", required=True, choices=_STATUS), F("end", "time"), F("summary", "map")),
           _step_end, "every unit of a step ended"),
    OpSpec("unit", (F("run_id", required=True), F("step", required=True), F("unit", required=True), F("key"),
                    F("inputs", "list"), F("extension", "int"), F("group"), F("attempt", "int"),
                    F("status", choices=_STATUS), F("host"), F("start", "time"), F("end", "time"), F("error"),
                    F("log_path"), F("config", "map")), _unit, "one unit of work ended"),
    OpSpec("product", (F("run_id", required=True), F("step", required=True), F("unit", required=True),
                       F("path", required=True), F("kind"), F("checksum"), F("size", "int"),
                       F("inputs", "list", doc="paths the product was derived from"), F("meta", "map")),
           _product, "a file a unit produced, with its provenance"),
    OpSpec("exposure", (F("filename", required=True), F("object"), F("filter"), F("qrunid"), F("runid"),
                        F("ra", "float"), F("dec", "float"), F("exptime", "float"), F("airmass", "float"),
                        F("seeing", "float"), F("mjd_obs", "float"), F("date_obs", "time"),
                        F("photometric", "bool"), F("survey_component", choices=S.SURVEY_COMPONENTS),
                        F("owner"), F("release_date", "time"), F("arrival_date", "time"),
                        F("skyprobe", "float"), F("checksum"),
                        F("keywords", "rows", row=(F("extension", "int"), F("keyword", required=True),
                                                   F("value"), F("comment")),
                          from_mapping=("keyword", "value")),
                        F("extensions", "rows", row=(F("ccd", "int", required=True), F("extname"),
                                                     F("naxis1", "int"), F("naxis2", "int"), F("ra", "float"),
                                                     F("dec", "float"),
                                                     *[F(f"{axis}{k}", "float") for k in (1, 2, 3, 4)
                                                       for axis in ("ra", "dec")])),
                        F("storage", "rows", row=(F("node", required=True), F("path", required=True),
                                                  F("size", "int"), F("checksum"), F("compression"))),
                        F("run_id"), F("step")),
           _exposure, "register (or update) a raw exposure: header metadata, CCDs, storage"),
    OpSpec("quality", (F("exposure"), F("stack", doc="a stack's name (QualityFITS-out)"), F("stack_version"),
                       F("suggested_grade", choices=S.GRADES), F("run_id"),
                       F("step"), F("time", "time"),
                       F("metrics", "rows", row=(F("ccd", "int"), F("name", required=True), F("value", "float")))),
           _quality, "quality metrics per CCD (ccd >= 1) and per exposure (ccd 0), or of a stack"),
    OpSpec("quarantine", (F("filename", required=True), F("reason", required=True), F("origin"), F("path"),
                          F("node"), F("checksum"), F("time", "time"), F("run_id"), F("step")),
           _quarantine, "a file ingestion refused, moved to quarantine with the reason"),
    OpSpec("grade", (F("exposure", required=True), F("grade", required=True, choices=S.GRADES),
                     F("author", required=True), F("comment"), F("time", "time")),
           _grade, "a human grade (history is kept)"),
    OpSpec("catalog", (F("path", required=True), F("exposure"), F("nsources", "int"), F("run_id"), F("step"),
                       F("sources", "rows", row=(F("number", "int"), F("ra", "float", required=True),
                                                 F("dec", "float", required=True), F("mag", "float"),
                                                 F("magerr", "float"), F("flags", "int")))),
           _catalog, "a source catalogue, optionally with its sources (HEALPix-indexed)"),
    OpSpec("stack", (F("name", required=True), F("version"), F("path"), F("ra", "float"), F("dec", "float"),
                     F("filter"), F("survey_component", choices=S.SURVEY_COMPONENTS), F("release_date", "time"),
                     F("release"), F("release_version"), F("run_id"), F("step"), F("images", "list"),
                     F("astrometry", "list")), _stack, "a stack with its stack and astrometric lists"),
    OpSpec("release", (F("name", required=True), F("version"), F("release_date", "time"),
                       F("survey_component", choices=S.SURVEY_COMPONENTS), F("description"), F("stacks", "list"),
                       F("run_id"), F("step")), _release, "a release and its stacks"),
    OpSpec("transfer", (F("direction", required=True, choices=("in", "out")), F("node", required=True), F("path"),
                        F("bytes", "int"), F("status"), F("start", "time"), F("end", "time"), F("run_id"),
                        F("step")), _transfer, "a file transfer to or from a node"),
    OpSpec("node", (F("name", required=True), F("free_disk", "int"), F("time", "time")), _node,
           "a processing node and its free disk"),
    OpSpec("record", (F("kind", required=True), F("run_id"), F("step"), F("unit"), F("time", "time"),
                      F("data", doc="JSON object")), _record, "any other record of a tool, verbatim"),
]}

#: record kinds a tool may emit with ctx.record(kind, ...)
RECORD_KINDS = ("exposure", "quality", "grade", "catalog", "stack", "release", "transfer", "node", "quarantine")


def document_row(doc: Document) -> dict:
    """The ``documents`` row recording that ``doc`` was applied.

    Parameters
    ----------
    doc : Document

    Returns
    -------
    dict
    """
    return {"doc_id": doc.id, "node": doc.node, "created": doc.created, "applied": _now(),
            "n_instructions": len(doc.instructions)}


def apply_instructions(conn: Connection, doc: Document) -> None:
    """Apply the instructions of ``doc`` (no idempotency check: see apply_document).

    Parameters
    ----------
    conn : sqlalchemy.engine.Connection
    doc : Document

    Raises
    ------
    RecordError
        On an unknown instruction.
    """
    for op, data in doc.instructions:
        spec = OPS.get(op)
        if spec is None:
            raise RecordError(f"unknown instruction {op!r}")
        spec.apply(conn, data)


def apply_document(conn: Connection, doc: Document) -> bool:
    """Apply ``doc`` inside the caller's transaction; False if it was applied before (nothing done).

    Parameters
    ----------
    conn : sqlalchemy.engine.Connection
    doc : Document

    Returns
    -------
    bool
    """
    found = conn.execute(_select_by(S.documents, ("doc_id",), "doc_id"), {"k_doc_id": doc.id}).first()
    if found is not None:
        return False
    conn.execute(insert(S.documents), document_row(doc))
    apply_instructions(conn, doc)
    return True
