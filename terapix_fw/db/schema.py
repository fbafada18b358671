"""The RDBix schema, one SQLAlchemy Core definition for SQLite and MySQL/MariaDB.

Design notes
------------
* Exposures carry the header metadata operators select on (filter, QRUNID, seeing, ...); every other
  header keyword is a key/value row of ``header_keywords`` so that a new keyword needs no schema change
  (the TERAPIX "dynamic design").
* Grades are never updated in place: ``grades`` keeps the history, the latest human grade wins over the
  grade QualityFITS suggested (``exposures.suggested_grade``).
* Paths can be longer than an index key allows on MySQL (3072 bytes), so tables that look files up by
  path index ``path_hash`` (SHA-1 of the path) instead of the path itself.
* Times are :class:`~terapix_fw.db.types.UTCDateTime` (naive UTC, microseconds) on both back ends.
* ``healpix`` columns hold the NESTED HEALPix pixel at :data:`HEALPIX_NSIDE` of the position, used to
  narrow cone searches before the exact angular distance is applied.
* Every change to this module needs an Alembic revision in ``terapix_fw/db/migrations/versions``
  (a test compares the migrated schema with this module).
"""
from __future__ import annotations

from sqlalchemy import (BigInteger, Boolean, CheckConstraint, Column, Double, ForeignKey, Index, Integer,
                        MetaData, String, Table, Text, UniqueConstraint)

from .types import UTCDateTime

__all__ = ["metadata", "HEALPIX_NSIDE", "GRADES", "SURVEY_COMPONENTS"] + [
    "nodes", "exposures", "extensions", "storage", "header_keywords", "quality_metrics", "grades",
    "runs", "steps", "units", "products", "provenance", "releases", "stacks", "stack_images",
    "transfers", "web_actions", "problem_reports", "catalogs", "sources", "records", "documents",
    "selections", "selection_results", "spica_jobs", "stack_grades", "quarantine", "stack_metrics",
    "file_digests"]

#: HEALPix resolution of the sky index (NESTED scheme): 2**8 gives pixels of about 13.7 arcmin.
HEALPIX_NSIDE = 256
GRADES = ("A", "B", "C", "D")
#: CFHTLS survey components: Deep, Wide, Pre-Wide, Very Wide, PI data.
SURVEY_COMPONENTS = ("D", "W", "Pre-W", "VW", "PI")

# Explicit constraint names so that Alembic batch migrations on SQLite can find them.
metadata = MetaData(naming_convention={
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
})

NAME = 255     # file names, object names, keyword names...
PATH = 2048    # full paths (not indexed: see path_hash)
HASH = 64      # hex SHA-256 / SHA-1


def _id() -> Column:
    return Column("id", Integer, primary_key=True, autoincrement=True)


nodes = Table(
    "nodes", metadata, _id(),
    Column("name", String(NAME), nullable=False, unique=True),
    Column("free_disk", BigInteger, comment="bytes free on the node's data disk"),
    Column("updated", UTCDateTime),
)

exposures = Table(
    "exposures", metadata, _id(),
    Column("filename", String(NAME), nullable=False, unique=True, comment="file name without directory"),
    Column("object", String(NAME)),
    Column("filter", String(64), index=True),
    Column("qrunid", String(64), index=True, comment="QSO run id (QRUNID)"),
    Column("runid", String(64), index=True, comment="CFHT camera run id (RUNID)"),
    Column("ra", Double, comment="centre right ascension, degrees (J2000)"),
    Column("dec", Double, comment="centre declination, degrees (J2000)"),
    Column("healpix", BigInteger, index=True),
    Column("exptime", Double, comment="seconds (EXPTIME)"),
    Column("airmass", Double),
    Column("seeing", Double, comment="arcsec FWHM"),
    Column("mjd_obs", Double, index=True),
    Column("date_obs", UTCDateTime, index=True),
    Column("photometric", Boolean),
    Column("survey_component", String(16), index=True),
    Column("owner", String(NAME), comment="proprietary owner"),
    Column("release_date", UTCDateTime, comment="end of the proprietary period"),
    Column("arrival_date", UTCDateTime),
    Column("suggested_grade", String(1), comment="grade suggested by the quality assessment"),
    Column("skyprobe", Double, comment="sky-probe extinction at the time of the exposure, mag"),
    Column("checksum", String(HASH), index=True, comment="SHA-256 of the file as it arrived"),
    Column("background", Double, comment="median sky background, ADU (QualityFITS-in)"),
    Column("nstars", Integer, comment="stars classified by QualityFITS-in, all CCDs"),
    Column("ellipticity", Double, comment="median PSF ellipticity 1 - B/A (QualityFITS-in)"),
    CheckConstraint("suggested_grade IS NULL OR suggested_grade IN ('A','B','C','D')", name="suggested"),
)

extensions = Table(
    "extensions", metadata, _id(),
    Column("exposure_id", Integer, ForeignKey("exposures.id", ondelete="CASCADE"), nullable=False),
    Column("ccd", Integer, nullable=False, comment="CCD number (1-based image extension)"),
    Column("extname", String(64)),
    Column("naxis1", Integer),
    Column("naxis2", Integer),
    Column("ra", Double, comment="WCS centre, degrees"),
    Column("dec", Double, comment="WCS centre, degrees"),
    # the footprint: world coordinates of the pixel corners (0.5,0.5), (NAXIS1+0.5,0.5),
    # (NAXIS1+0.5,NAXIS2+0.5), (0.5,NAXIS2+0.5) of the header WCS, for cone and overlap searches
    *[Column(f"{axis}{k}", Double, comment=f"corner {k} {'RA' if axis == 'ra' else 'Dec'}, degrees")
      for k in (1, 2, 3, 4) for axis in ("ra", "dec")],
    UniqueConstraint("exposure_id", "ccd"),
)

storage = Table(
    "storage", metadata, _id(),
    Column("exposure_id", Integer, ForeignKey("exposures.id", ondelete="CASCADE"), nullable=False),
    Column("node", String(NAME), nullable=False),
    Column("path", String(PATH), nullable=False),
    Column("path_hash", String(HASH), nullable=False),
    Column("size", BigInteger),
    Column("checksum", String(HASH)),
    Column("compression", String(32), comment="none, gzip, fpack (Rice)..."),
    UniqueConstraint("exposure_id", "node", "path_hash"),
)

header_keywords = Table(
    "header_keywords", metadata, _id(),
    Column("exposure_id", Integer, ForeignKey("exposures.id", ondelete="CASCADE"), nullable=False),
    Column("extension", Integer, nullable=False, default=0, comment="0 = primary header"),
    Column("keyword", String(80), nullable=False),
    Column("value", Text),
    Column("comment", Text),
    UniqueConstraint("exposure_id", "extension", "keyword"),
    Index("ix_header_keywords_keyword", "keyword"),
)

quality_metrics = Table(
    "quality_metrics", metadata, _id(),
    Column("exposure_id", Integer, ForeignKey("exposures.id", ondelete="CASCADE"), nullable=False),
    Column("ccd", Integer, nullable=False, default=0, comment="0 = the whole exposure"),
    Column("name", String(80), nullable=False),
    Column("value", Double),
    Column("run_id", String(HASH)),
    Column("time", UTCDateTime),
    UniqueConstraint("exposure_id", "ccd", "name"),
)

grades = Table(
    "grades", metadata, _id(),
    Column("exposure_id", Integer, ForeignKey("exposures.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("grade", String(1), nullable=False),
    Column("author", String(NAME), nullable=False),
    Column("time", UTCDateTime, nullable=False),
    Column("comment", Text),
    CheckConstraint("grade IN ('A','B','C','D')", name="grade"),
)

runs = Table(
    "runs", metadata,
    Column("run_id", String(HASH), primary_key=True),
    Column("name", String(NAME)),
    Column("version", String(64)),
    Column("instruction_file", String(PATH)),
    Column("workdir", String(PATH)),
    Column("mode", String(16)),
    Column("executor", String(32)),
    Column("host", String(NAME)),
    Column("user", String(NAME)),
    Column("start", UTCDateTime),
    Column("end", UTCDateTime),
    Column("status", String(16), comment="running, done, failed"),
    Column("parameters", Text, comment="JSON object"),
    Column("summary", Text, comment="JSON object: units by status"),
)

steps = Table(
    "steps", metadata, _id(),
    Column("run_id", String(HASH), ForeignKey("runs.run_id", ondelete="CASCADE"), nullable=False),
    Column("step", String(NAME), nullable=False),
    Column("tool", String(NAME)),
    Column("tool_version", String(64)),
    Column("distribution", String(NAME)),
    Column("fanout", String(16)),
    Column("priority", Integer),
    Column("depends", Text, comment="JSON list of step ids"),
    Column("config", Text, comment="JSON object: effective configuration"),
    Column("non_defaults", Text, comment="JSON object"),
    Column("config_file", String(PATH)),
    Column("status", String(16), comment="running, done, failed"),
    Column("start", UTCDateTime),
    Column("end", UTCDateTime),
    Column("summary", Text),
    UniqueConstraint("run_id", "step"),
)

units = Table(
    "units", metadata, _id(),
    Column("step_pk", Integer, ForeignKey("steps.id", ondelete="CASCADE"), nullable=False),
    Column("unit", String(NAME), nullable=False),
    Column("key", String(HASH)),
    Column("inputs", Text, comment="JSON list of paths"),
    Column("extension", Integer),
    Column("grp", String(NAME)),
    Column("attempt", Integer),
    Column("status", String(16), comment="done, failed, skipped"),
    Column("host", String(NAME)),
    Column("start", UTCDateTime),
    Column("end", UTCDateTime),
    Column("error", Text),
    Column("log_path", String(PATH)),
    Column("config", Text, comment="JSON object"),
    UniqueConstraint("step_pk", "unit"),
)

products = Table(
    "products", metadata, _id(),
    Column("path", String(PATH), nullable=False),
    Column("path_hash", String(HASH), nullable=False, index=True),
    Column("kind", String(64)),
    Column("checksum", String(HASH), nullable=False, default="", comment="SHA-256; '' if never read"),
    Column("size", BigInteger),
    Column("unit_pk", Integer, ForeignKey("units.id", ondelete="SET NULL"),
           comment="unit that made it; NULL for external inputs"),
    Column("created", UTCDateTime),
    Column("meta", Text, comment="JSON object"),
    UniqueConstraint("path_hash", "checksum"),
)

provenance = Table(
    "provenance", metadata, _id(),
    Column("product_id", Integer, ForeignKey("products.id", ondelete="CASCADE"), nullable=False),
    Column("parent_id", Integer, ForeignKey("products.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("unit_pk", Integer, ForeignKey("units.id", ondelete="SET NULL")),
    UniqueConstraint("product_id", "parent_id"),
)

releases = Table(
    "releases", metadata, _id(),
    Column("name", String(NAME), nullable=False),
    Column("version", String(64), nullable=False, default=""),
    Column("release_date", UTCDateTime),
    Column("survey_component", String(16)),
    Column("description", Text),
    UniqueConstraint("name", "version"),
)

stacks = Table(
    "stacks", metadata, _id(),
    Column("name", String(NAME), nullable=False),
    Column("version", String(64), nullable=False, default=""),
    Column("release_id", Integer, ForeignKey("releases.id", ondelete="SET NULL")),
    Column("path", String(PATH)),
    Column("ra", Double),
    Column("dec", Double),
    Column("filter", String(64)),
    Column("survey_component", String(16)),
    Column("release_date", UTCDateTime),
    Column("run_id", String(HASH)),
    Column("suggested_grade", String(1), comment="grade suggested by QualityFITS-out"),
    UniqueConstraint("name", "version"),
)

stack_metrics = Table(
    "stack_metrics", metadata, _id(),
    Column("stack_id", Integer, ForeignKey("stacks.id", ondelete="CASCADE"), nullable=False),
    Column("name", String(80), nullable=False),
    Column("value", Double),
    Column("run_id", String(HASH)),
    Column("time", UTCDateTime),
    UniqueConstraint("stack_id", "name"),
    comment="QualityFITS-out metrics of a stack (stacks are products, never exposures)",
)

stack_images = Table(
    "stack_images", metadata, _id(),
    Column("stack_id", Integer, ForeignKey("stacks.id", ondelete="CASCADE"), nullable=False),
    Column("list", String(16), nullable=False, comment="'stack' or 'astrometry'"),
    Column("filename", String(NAME), nullable=False),
    UniqueConstraint("stack_id", "list", "filename"),
)

# -- Spica (release planning; revision 0004) ------------------------------------------------------------
selections = Table(
    "selections", metadata, _id(),
    Column("name", String(NAME), nullable=False, comment="criteria name (e.g. T0001)"),
    Column("criteria_file", String(PATH)),
    Column("criteria", Text, comment="JSON: the criteria as applied, in their order"),
    Column("time", UTCDateTime),
    Column("nselected", Integer),
    Column("nrejected", Integer),
)

selection_results = Table(
    "selection_results", metadata, _id(),
    Column("selection_id", Integer, ForeignKey("selections.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("exposure_id", Integer, ForeignKey("exposures.id", ondelete="CASCADE"), nullable=False),
    Column("selected", Boolean, nullable=False),
    Column("criterion", String(64), comment="first criterion the exposure failed; NULL if selected"),
    Column("detail", Text, comment="the value and the limit it failed"),
    UniqueConstraint("selection_id", "exposure_id"),
)

spica_jobs = Table(
    "spica_jobs", metadata, _id(),
    Column("name", String(NAME), nullable=False, comment="stack name, or exposure stem in image-by-image mode"),
    Column("version", String(64), nullable=False, default=""),
    Column("mode", String(16), nullable=False, comment="release or image"),
    Column("kind", String(16), nullable=False, default="stack", comment="stack, field (chi2), image"),
    Column("stack_id", Integer, ForeignKey("stacks.id", ondelete="CASCADE")),
    Column("survey_component", String(16)),
    Column("filter", String(64)),
    Column("node", String(NAME), comment="node that holds the inputs / ran the job"),
    Column("priority", Integer, nullable=False, default=0),
    Column("astrometric_group", String(NAME), comment="jobs of a group share one SCAMP solution"),
    Column("workdir", String(PATH)),
    Column("instruction_file", String(PATH)),
    Column("command_file", String(PATH)),
    Column("n_astrometric", Integer),
    Column("n_stack", Integer),
    Column("status", String(16), nullable=False, default="pending",
           comment="pending, running, done, failed"),
    Column("current_step", String(NAME)),
    Column("run_id", String(HASH)),
    Column("start", UTCDateTime),
    Column("end", UTCDateTime),
    Column("error", Text),
    Column("superseded_by", Integer, comment="id of the later stacks row that replaces this job's stack"),
    UniqueConstraint("name", "version", "mode"),
)

stack_grades = Table(
    "stack_grades", metadata, _id(),
    Column("stack_id", Integer, ForeignKey("stacks.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("grade", String(1), nullable=False),
    Column("author", String(NAME), nullable=False),
    Column("time", UTCDateTime, nullable=False),
    Column("comment", Text, comment="the problem report of a C/D stack"),
    CheckConstraint("grade IN ('A','B','C','D')", name="grade"),
)

web_actions = Table(
    "web_actions", metadata, _id(),
    Column("time", UTCDateTime, nullable=False),
    Column("user", String(NAME), nullable=False, comment="console user name"),
    Column("role", String(16), nullable=False, comment="operator, control, pi"),
    Column("action", String(32), nullable=False, comment="grade, stack_grade, problem_report, submit, transfer, download, login..."),
    Column("target", String(NAME), comment="exposure, stack, run or file the action was about"),
    Column("detail", Text, comment="JSON object: the action's parameters"),
    Column("result", String(16), comment="ok, refused, failed, started"),
    Column("run_id", String(HASH), comment="the run a submission started"),
    Index("ix_web_actions_time", "time"),
    comment="every action taken from the web console, with the user who took it",
)

problem_reports = Table(
    "problem_reports", metadata, _id(),
    Column("target_kind", String(16), nullable=False, comment="exposure or stack"),
    Column("target", String(NAME), nullable=False, comment="exposure file name or stack name"),
    Column("author", String(NAME), nullable=False),
    Column("time", UTCDateTime, nullable=False),
    Column("text", Text, nullable=False),
    Column("status", String(16), nullable=False, default="open", comment="open or closed"),
    Index("ix_problem_reports_target", "target_kind", "target"),
)

transfers = Table(
    "transfers", metadata, _id(),
    Column("direction", String(8), nullable=False, comment="in or out"),
    Column("node", String(NAME), nullable=False),
    Column("path", String(PATH)),
    Column("bytes", BigInteger),
    Column("status", String(16)),
    Column("start", UTCDateTime),
    Column("end", UTCDateTime),
)

catalogs = Table(
    "catalogs", metadata, _id(),
    Column("path", String(PATH), nullable=False),
    Column("path_hash", String(HASH), nullable=False, unique=True),
    Column("exposure_id", Integer, ForeignKey("exposures.id", ondelete="SET NULL")),
    Column("nsources", Integer),
    Column("run_id", String(HASH)),
    Column("created", UTCDateTime),
)

sources = Table(
    "sources", metadata, _id(),
    Column("catalog_id", Integer, ForeignKey("catalogs.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("number", Integer, comment="SExtractor NUMBER"),
    Column("ra", Double, nullable=False, comment="ALPHA_J2000, degrees"),
    Column("dec", Double, nullable=False, comment="DELTA_J2000, degrees"),
    Column("healpix", BigInteger, nullable=False, index=True),
    Column("mag", Double),
    Column("magerr", Double),
    Column("flags", Integer),
)

records = Table(
    "records", metadata, _id(),
    Column("kind", String(64), nullable=False, index=True),
    Column("run_id", String(HASH), index=True),
    Column("step", String(NAME)),
    Column("unit", String(NAME)),
    Column("time", UTCDateTime),
    Column("data", Text, comment="JSON object: the record as the tool sent it"),
    comment="every record a tool sent whose kind or fields have no table of their own, verbatim",
)

quarantine = Table(
    "quarantine", metadata, _id(),
    Column("filename", String(NAME), nullable=False, index=True, comment="file name as it arrived"),
    Column("origin", String(PATH), comment="where the file arrived"),
    Column("path", String(PATH), comment="where it lies in quarantine"),
    Column("path_hash", String(HASH)),
    Column("node", String(NAME)),
    Column("checksum", String(HASH), comment="SHA-256 of the file"),
    Column("reason", Text, nullable=False),
    Column("time", UTCDateTime),
    Column("run_id", String(HASH)),
    comment="files refused by ingestion (integrity), kept aside with the reason",
)

documents = Table(
    "documents", metadata,
    Column("doc_id", String(HASH), primary_key=True, comment="dbClient document id (idempotency key)"),
    Column("node", String(NAME)),
    Column("created", UTCDateTime),
    Column("applied", UTCDateTime),
    Column("n_instructions", Integer),
)

file_digests = Table(
    "file_digests", metadata, _id(),
    Column("node", String(NAME), nullable=False,
           comment="host whose file system the stat fields describe (device and inode numbers are per host)"),
    Column("path_hash", String(HASH), nullable=False, comment="SHA-1 of the resolved absolute path"),
    Column("path", String(PATH), nullable=False, comment="resolved absolute path"),
    Column("st_dev", String(20), nullable=False, comment="device number (unsigned 64-bit, as text)"),
    Column("st_ino", String(20), nullable=False, comment="inode number (unsigned 64-bit, as text)"),
    Column("size", BigInteger, nullable=False, comment="bytes"),
    Column("mtime_ns", BigInteger, nullable=False, comment="modification time, ns since 1970"),
    Column("ctime_ns", BigInteger, nullable=False, comment="inode change time, ns since 1970"),
    Column("sha256", String(HASH), nullable=False),
    Column("hashed_ns", BigInteger, nullable=False,
           comment="when the hashing began, ns since 1970: an mtime not older than that is racy, never trusted"),
    Column("recorded", UTCDateTime),
    UniqueConstraint("node", "path_hash"),
    comment="SHA-256 of files already read, valid while path, device, inode, size, mtime and ctime are unchanged",
)

# The lengths and ranges declared above are enforced on every back end (MariaDB refuses what exceeds them,
# SQLite would store it): the same document gives the same answer on both.
from .limits import enforce as _enforce_limits  # noqa: E402

_enforce_limits(metadata)
