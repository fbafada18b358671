"""The site configuration of data ingestion: an XML file validated against ``schemas/site.xsd``.

>>> site = Site.from_xml("instructions/site_demo.xml")                      # doctest: +SKIP
>>> site.classify(primary_header)                                           # doctest: +SKIP
Classification(component='D', owner='CFHTLS', release_date=datetime(...))

Example::

    <site name="terapix">
      <storage root="/data/raw" pattern="{filter}/{qrunid}" transfer="move" uncompress="true"/>
      <quarantine dir="/data/quarantine"/>
      <cameras unknown="refuse"><camera detector="MegaCam" extensions="36"/></cameras>
      <rules>
        <rule component="D" owner="CFHTLS" proprietary_days="365"><match keyword="OBJECT" pattern="D[1-4]*"/></rule>
        <rule component="PI" owner="{RUNID}" release_key="REL_DATE"/>
      </rules>
    </site>
"""
from __future__ import annotations

import datetime as _dt
import fnmatch
import re
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ConfigError

__all__ = ["Site", "Rule", "Classification", "PATTERN_FIELDS"]

#: the fields a storage pattern may use, and the header keyword each comes from
PATTERN_FIELDS = {"filter": "FILTER", "qrunid": "QRUNID", "runid": "RUNID", "object": "OBJECT",
                  "camera": "DETECTOR", "night": "DATE-OBS"}
_FIELD = re.compile(r"\{([^{}]*)\}")
_UNSAFE = re.compile(r"[^A-Za-z0-9._+\-]")


@dataclass(frozen=True)
class Rule:
    """A classification rule of the site file: header patterns -> survey component and owner.

    Attributes
    ----------
    component : str
    owner : str
    matches : tuple of (str, str)
        ``(keyword, fnmatch pattern)`` pairs that must all hold.
    release_key : str or None
        Header keyword giving the release date.
    proprietary_days : int or None
        Proprietary period after DATE-OBS.
    """
    component: str
    owner: str
    matches: tuple[tuple[str, str], ...] = ()
    release_key: str | None = None
    proprietary_days: int | None = None

    def holds(self, header) -> bool:
        """Whether every pattern matches the header.

        Parameters
        ----------
        header : astropy.io.fits.Header

        Returns
        -------
        bool
        """
        for keyword, pattern in self.matches:
            value = header.get(keyword)
            if value is None or not fnmatch.fnmatchcase(str(value).strip(), pattern):
                return False
        return True


@dataclass(frozen=True)
class Classification:
    """The outcome of classifying an exposure.

    Attributes
    ----------
    component, owner : str or None
    release_date : datetime or None
        End of the proprietary period.
    rule : int or None
        1-based index of the rule that matched, None if none did.
    """
    component: str | None
    owner: str | None
    release_date: _dt.datetime | None
    rule: int | None  # 1-based index of the rule that matched, None if none did


@dataclass
class Site:
    """A site configuration (``schemas/site.xsd``): storage, cameras and classification rules.

    Attributes
    ----------
    name : str
    storage_root, quarantine_dir : Path
    pattern : str
        Storage sub-directory pattern (``{filter}/{qrunid}``).
    transfer : str
        ``move`` or ``copy``.
    uncompress : bool
    node : str or None
        Host holding the storage.
    cameras : list of (str, int)
        Camera pattern -> number of image extensions.
    unknown_camera : str
        ``accept`` or ``refuse``.
    rules : list of Rule
    path : Path or None
        The site file.
    """
    name: str
    storage_root: Path
    quarantine_dir: Path
    pattern: str = "{filter}/{qrunid}"
    transfer: str = "move"
    uncompress: bool = False
    node: str | None = None
    cameras: list[tuple[str, int]] = field(default_factory=list)
    unknown_camera: str = "accept"
    rules: list[Rule] = field(default_factory=list)
    path: Path | None = None

    def __post_init__(self) -> None:
        for name in _FIELD.findall(self.pattern):
            if name not in PATTERN_FIELDS:
                raise ConfigError(f"storage pattern {self.pattern!r}: unknown field {{{name}}} (expected "
                                  f"{', '.join('{' + k + '}' for k in PATTERN_FIELDS)})",
                                  str(self.path or "site"))

    @classmethod
    def from_xml(cls, path: str | Path) -> "Site":
        """Read and validate a site file.

        Parameters
        ----------
        path : str or Path

        Returns
        -------
        Site

        Raises
        ------
        ConfigError
            On malformed XML, a schema violation or a bad pattern, naming the file and line.
        """
        from ..xmlutil import parse_xml, validate
        path = Path(path)
        tree = parse_xml(path, str(path), error_class=ConfigError)
        validate(tree, "site.xsd", str(path), error_class=ConfigError)
        root = tree.getroot()
        base = path.resolve().parent

        def where(p: str) -> Path:
            q = Path(p).expanduser()
            return q if q.is_absolute() else base / q

        st = root.find("storage")
        cams = root.find("cameras")
        rules = []
        for r in root.findall("rules/rule"):
            rules.append(Rule(r.get("component"), r.get("owner"),
                              tuple((m.get("keyword"), m.get("pattern")) for m in r.findall("match")),
                              r.get("release_key"),
                              int(r.get("proprietary_days")) if r.get("proprietary_days") else None))
        return cls(name=root.get("name"), storage_root=where(st.get("root")),
                   quarantine_dir=where(root.find("quarantine").get("dir")),
                   pattern=st.get("pattern", "{filter}/{qrunid}"), transfer=st.get("transfer", "move"),
                   uncompress=st.get("uncompress", "false") in ("true", "1"), node=st.get("node") or None,
                   cameras=[(c.get("detector"), int(c.get("extensions"))) for c in
                            (cams.findall("camera") if cams is not None else [])],
                   unknown_camera=cams.get("unknown", "accept") if cams is not None else "accept",
                   rules=rules, path=path)

    def with_directories(self, storage=None, quarantine=None, base=None) -> "Site":
        """A copy with another storage root and/or quarantine directory (relative ones under ``base``).

        Parameters
        ----------
        storage : str or Path, optional
        quarantine : str or Path, optional
        base : str or Path, optional

        Returns
        -------
        Site
        """
        from dataclasses import replace

        def where(p):
            q = Path(p).expanduser()
            return q if q.is_absolute() else Path(base or ".").resolve() / q
        return replace(self, storage_root=where(storage) if storage else self.storage_root,
                       quarantine_dir=where(quarantine) if quarantine else self.quarantine_dir)

    def expected_extensions(self, camera: str | None) -> int | None:
        """Image extensions a file of ``camera`` must have; None if any number will do.
        Raises ConfigError for an unknown camera when the site refuses them.

        Parameters
        ----------
        camera : str or None
            DETECTOR value.

        Returns
        -------
        int or None

        Raises
        ------
        ConfigError
            For an unknown camera when the site refuses them.
        """
        for pattern, n in self.cameras:
            if camera is not None and fnmatch.fnmatchcase(camera, pattern):
                return n
        if self.unknown_camera == "refuse":
            known = ", ".join(p for p, _ in self.cameras) or "none"
            raise ConfigError(f"camera {camera!r} is not one of the site's cameras ({known})", "DETECTOR")
        return None

    def classify(self, header, date_obs: _dt.datetime | None = None) -> Classification:
        """Survey component, owner and end of the proprietary period from the first rule that holds.

        Parameters
        ----------
        header : astropy.io.fits.Header
            Primary header.
        date_obs : datetime, optional

        Returns
        -------
        Classification
        """
        for k, rule in enumerate(self.rules, 1):
            if not rule.holds(header):
                continue
            owner = _FIELD.sub(lambda m: str(header.get(m.group(1), "")).strip(), rule.owner)
            release = None
            if rule.release_key and header.get(rule.release_key) not in (None, ""):
                release = _parse_date(header.get(rule.release_key))
            if release is None and rule.proprietary_days is not None and date_obs is not None:
                release = date_obs + _dt.timedelta(days=rule.proprietary_days)
            return Classification(rule.component, owner or None, release, k)
        return Classification(None, None, None, None)

    def storage_dir(self, header) -> Path:
        """The storage directory of an exposure: the pattern filled from its primary header.  Values are
        reduced to file-name-safe characters, so a header can never place a file outside the tree.

        Parameters
        ----------
        header : astropy.io.fits.Header
            Primary header.

        Returns
        -------
        Path
        """
        def value(m):
            key = PATTERN_FIELDS[m.group(1)]
            raw = str(header.get(key, "") or "").strip()
            if m.group(1) == "night":
                raw = raw[:10]
            return _UNSAFE.sub("_", raw).strip(".") or "unknown"
        from ..atomic import confine
        return confine(self.storage_root, _FIELD.sub(value, self.pattern), "storage directory")


def _parse_date(value) -> _dt.datetime | None:
    from ..db.types import to_datetime
    try:
        return to_datetime(str(value).strip())
    except (TypeError, ValueError):
        return None
