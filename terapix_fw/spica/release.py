"""Release files (``schemas/spica_release.xsd``) and the names of release products.

Stack names follow the CFHTLS report: ``CFHTLS_<component>_<filter>_<HHMMSS+DDMMSS>_<version>``, e.g.
``CFHTLS_W_i_143007+533430_T0002``; the pattern is the release file's ``<naming stack=...>`` so that
another survey names its products its own way.  The position is the stack centre, sexagesimal, truncated
(never rounded up to 60).
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import InstructionError
from ..xmlutil import parse_xml, validate
from .criteria import band_of

__all__ = ["BAND_ORDER", "band_key", "Target", "Area", "ReleaseSpec", "load_release", "position_string", "format_name",
           "PRODUCT_SUFFIXES", "product_names"]


@dataclass(frozen=True)
class Target:
    """A named position (a deep field, a wide target).

    Attributes
    ----------
    name : str
    ra, dec : float
        Degrees.
    """
    name: str
    ra: float
    dec: float


@dataclass(frozen=True)
class Area:
    """A named RA/Dec box, tiled into quanta.

    Attributes
    ----------
    name : str
    ra_min, ra_max, dec_min, dec_max : float
        Degrees.
    """
    name: str
    ra_min: float
    ra_max: float
    dec_min: float
    dec_max: float


@dataclass
class ReleaseSpec:
    """A release file, parsed: what to stack, how to name it, with which priorities.

    Attributes
    ----------
    name, version, survey : str
    criteria_path : Path
        The criteria file.
    path : Path or None
        The release file.
    description : str
    stack_pattern, field_pattern, image_pattern : str
        Naming patterns (``{survey}``, ``{component}``, ``{filter}``, ``{position}``, ``{version}``...).
    pixel_scale : float
        Arcsec per pixel of the stacks.
    quantum : float
        Side of a stack, degrees.
    size : int or None
        Pixels on a side (from ``quantum`` if None).
    astrometry_radius : float
        Degrees around a stack whose exposures enter its astrometric solution.
    refcat : str or None
        Astrometric reference catalogue.
    deep_component, wide_component : str
    deep_runids : list of str
    deep_fields, wide_targets : list of Target
    wide_areas : list of Area
    deep_radius : float
        Degrees.
    wide_radius_arcmin : float
    deep_priority, wide_priority, image_priority : int
    image_components : list of str
        Components processed image by image.
    """
    name: str
    version: str
    survey: str
    criteria_path: Path
    path: Path | None = None
    description: str = ""
    stack_pattern: str = "{survey}_{component}_{filter}_{position}_{version}"
    field_pattern: str = "{survey}_{component}_{filters}_{position}_{version}"
    image_pattern: str = "{name}_{version}"
    pixel_scale: float = 0.186
    quantum: float = 1.0
    size: int | None = None
    astrometry_radius: float = 2.5
    refcat: str | None = None
    deep_component: str = "D"
    deep_runids: list[str] = field(default_factory=list)
    deep_fields: list[Target] = field(default_factory=list)
    deep_radius: float = 0.5
    deep_priority: int = 10
    wide_component: str = "W"
    wide_targets: list[Target] = field(default_factory=list)
    wide_areas: list[Area] = field(default_factory=list)
    wide_radius_arcmin: float = 10.0
    wide_priority: int = 5
    image_components: list[str] = field(default_factory=lambda: ["VW"])
    image_priority: int = 1

    @property
    def image_size(self) -> int:
        """Pixels on a side of a quantum: 19354 for 1 deg at 0.186"/px (the CFHTLS T0002 stacks)."""
        return self.size or int(math.floor(self.quantum * 3600.0 / self.pixel_scale))

    def stack_name(self, component: str, filter_name: str, ra: float, dec: float) -> str:
        """The name of a stack: ``CFHTLS_D_r_022559-042939_T0001`` with the default pattern.

        Parameters
        ----------
        component : str
        filter_name : str
        ra, dec : float
            Centre, degrees.

        Returns
        -------
        str
        """
        return format_name(self.stack_pattern, survey=self.survey, component=component,
                           filter=band_of(filter_name), position=position_string(ra, dec), version=self.version)

    def field_name(self, component: str, filters: list[str], ra: float, dec: float) -> str:
        """The name of a field's chi-squared image and job: ``CFHTLS_D_gri_022559-042939_T0001_chi2``.

        Parameters
        ----------
        component : str
        filters : list of str
        ra, dec : float
            Centre, degrees.

        Returns
        -------
        str
        """
        return format_name(self.field_pattern, survey=self.survey, component=component,
                           filters="".join(band_of(f) for f in sorted(filters, key=band_key)),
                           position=position_string(ra, dec), version=self.version) + "_chi2"

    def image_name(self, stem: str) -> str:
        """The release name of an exposure processed image by image.

        Parameters
        ----------
        stem : str
            The exposure's file stem.

        Returns
        -------
        str
        """
        return format_name(self.image_pattern, name=stem, version=self.version, survey=self.survey)


#: blue to red (MegaCam u* g' r' i' z')
BAND_ORDER = "ugrizy"


def band_key(filter_name: str) -> tuple[int, str]:
    """Sort key of filters from blue to red (unknown bands last).

    Parameters
    ----------
    filter_name : str

    Returns
    -------
    tuple of (int, str)
    """
    band = band_of(filter_name)
    return (BAND_ORDER.index(band) if band and band in BAND_ORDER else len(BAND_ORDER), filter_name or "")


_TOKEN = re.compile(r"\{(\w+)\}")


def format_name(pattern: str, **values: str) -> str:
    """Replace ``{token}`` in a naming pattern; an unknown token is an error naming it.

    Parameters
    ----------
    pattern : str
    **values : str
        Token -> value.

    Returns
    -------
    str

    Raises
    ------
    InstructionError
        On an unknown token.
    """
    def sub(m):
        if m.group(1) not in values:
            raise InstructionError(f"naming pattern {pattern!r}: unknown token {{{m.group(1)}}} "
                                   f"(known: {', '.join('{%s}' % k for k in values)})")
        return str(values[m.group(1)])
    return _TOKEN.sub(sub, pattern)


def position_string(ra: float, dec: float) -> str:
    """``HHMMSS+DDMMSS`` of a position in degrees, truncated to whole seconds: (36.4958, -4.4942) ->
    ``022559-042939``.

    Parameters
    ----------
    ra, dec : float
        Degrees.

    Returns
    -------
    str
    """
    ra = ra % 360.0
    total = int(math.floor(ra / 15.0 * 3600.0 + 1e-7))
    h, m, s = total // 3600, (total // 60) % 60, total % 60
    sign = "-" if dec < 0 else "+"
    dtotal = int(math.floor(abs(dec) * 3600.0 + 1e-7))
    d, dm, ds = dtotal // 3600, (dtotal // 60) % 60, dtotal % 60
    return f"{h:02d}{m:02d}{s:02d}{sign}{d:02d}{dm:02d}{ds:02d}"


#: product kind -> file name suffix after the stack name (CFHTLS report, section 3.2.2); the
#: ``%d``/``%i`` plots of SCAMP are listed as they come
PRODUCT_SUFFIXES = {
    "image": ".fits", "weight": "_weight.fits", "catalog": "_ldac.fits", "diag": "_diag.fits",
    "command": "_cmd.txt", "instructions": "_spica.xml", "history": "_history.xml", "scamp_xml": "_scamp.xml",
    "head": "_head.txt", "thumbnail": "_m.png", "thumbnail_med": "_m_med.png", "weight_png": "_wmm.png",
    "mask": "_reg.txt", "astrom_list": "_astrom.lst", "stack_list": "_stack.lst", "quality": ".xml",
    "chi2": "_chi2.fits", "colour": "_rgb.png",
}


def product_names(stack_name: str) -> dict[str, str]:
    """The release file name of every product kind of a stack.

    Parameters
    ----------
    stack_name : str

    Returns
    -------
    dict of str to str
    """
    return {kind: stack_name + suffix for kind, suffix in PRODUCT_SUFFIXES.items()}


def _positions(parent, tag: str) -> list[Target]:
    return [Target(el.get("name"), float(el.get("ra")), float(el.get("dec"))) for el in parent.findall(tag)]


def load_release(path: str | Path) -> ReleaseSpec:
    """Parse and validate a release file; errors name the file, line and element.

    Parameters
    ----------
    path : str or Path

    Returns
    -------
    ReleaseSpec

    Raises
    ------
    InstructionError
        On malformed XML, a schema violation or an inconsistency, naming the file and line.
    """
    path = Path(path)
    tree = parse_xml(path)
    validate(tree, "spica_release.xsd", str(path))
    root = tree.getroot()
    spec = ReleaseSpec(name=root.get("name"), version=root.get("version") or root.get("name"),
                       survey=root.get("survey") or "CFHTLS", criteria_path=(path.parent / root.get("criteria")),
                       path=path.resolve(), description=(root.findtext("description") or "").strip())
    if (el := root.find("naming")) is not None:
        spec.stack_pattern = el.get("stack") or spec.stack_pattern
        spec.field_pattern = el.get("field") or spec.field_pattern
        spec.image_pattern = el.get("image") or spec.image_pattern
        for attr in ("stack", "field", "image"):  # unknown tokens are reported now, not at generation
            pattern = getattr(spec, f"{attr}_pattern")
            try:
                format_name(pattern, survey="S", component="C", filter="f", filters="ff", position="P",
                            version="V", name="N")
            except InstructionError as exc:
                raise InstructionError(f"element <naming>: {exc.reason}", f"{path}:{el.sourceline}") from None
    if (el := root.find("grid")) is not None:
        spec.pixel_scale = float(el.get("pixel_scale") or 0.186)
        spec.quantum = float(el.get("quantum") or 1.0)
        spec.size = int(el.get("size")) if el.get("size") else None
    if (el := root.find("astrometry")) is not None:
        spec.astrometry_radius = float(el.get("radius") or 2.5)
        spec.refcat = str((path.parent / el.get("refcat")).resolve()) if el.get("refcat") else None
    if (el := root.find("deep")) is not None:
        spec.deep_component = el.get("component") or "D"
        spec.deep_runids = (el.findtext("runids") or "").split()
        spec.deep_fields = _positions(el, "field")
        spec.deep_radius = float(el.get("radius") or 0.5)
        spec.deep_priority = int(el.get("priority") or 10)
    if (el := root.find("wide")) is not None:
        spec.wide_component = el.get("component") or "W"
        spec.wide_targets = _positions(el, "target")
        for a in el.findall("area"):
            area = Area(a.get("name"), *(float(a.get(k)) for k in ("ra_min", "ra_max", "dec_min", "dec_max")))
            if area.dec_max <= area.dec_min:
                raise InstructionError(f"element <area name=\"{area.name}\">: dec_max {area.dec_max} is not above "
                                       f"dec_min {area.dec_min}", f"{path}:{a.sourceline}")
            spec.wide_areas.append(area)
        spec.wide_radius_arcmin = float(el.get("radius") or 10)
        spec.wide_priority = int(el.get("priority") or 5)
    if (el := root.find("image-mode")) is not None:
        spec.image_components = el.get("components", "VW").split()
        spec.image_priority = int(el.get("priority") or 1)
    if not spec.criteria_path.is_file():
        raise InstructionError(f"element <release>: criteria file {root.get('criteria')!r} not found "
                               f"(looked for {spec.criteria_path})", f"{path}:{root.sourceline}")
    return spec
