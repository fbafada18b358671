"""Reading SExtractor ``.param`` files: one parameter per line, vectors as ``MAG_APER(2)`` or
``VIGNET(35,35)``, ``#`` comments, and (as many circulating files have) free text after the name."""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from terapix_fw.errors import ConfigError

__all__ = ["CatalogParam", "parse_param_text", "read_param_file", "DEFAULT_PARAMS"]

_LINE = re.compile(r"^\s*([A-Za-z][A-Za-z0-9_]*)\s*(\(\s*(\d+)\s*(?:,\s*(\d+)\s*)?\))?")

#: what the Python API measures when no parameter list is given: the 56 CFHTLS parameters, plus what
#: SCAMP and PSFEx read (VIGNET excepted: ask for it with its size; IMAFLAGS_ISO needs a FLAG_IMAGE)
DEFAULT_PARAMS = """NUMBER X_IMAGE Y_IMAGE X_WORLD Y_WORLD XWIN_IMAGE YWIN_IMAGE ERRAWIN_IMAGE ERRBWIN_IMAGE
ERRTHETAWIN_IMAGE ALPHA_J2000 DELTA_J2000 MAG_AUTO MAGERR_AUTO MAG_ISO MAGERR_ISO MAG_APER(2) MAGERR_APER(2)
MAG_PETRO MAGERR_PETRO FLUX_AUTO FLUXERR_AUTO FLUX_ISO FLUXERR_ISO FLUX_APER(2) FLUXERR_APER(2) FLUX_PETRO
FLUXERR_PETRO THETA_IMAGE THETA_J2000 THETA_WORLD ERRTHETA_IMAGE ERRTHETA_J2000 ERRTHETA_WORLD A_IMAGE B_IMAGE
A_WORLD B_WORLD ERRA_IMAGE ERRB_IMAGE ERRA_WORLD ERRB_WORLD ISOAREA_IMAGE ISOAREAF_IMAGE THRESHOLD
MU_THRESHOLD BACKGROUND FLUX_MAX MU_MAX KRON_RADIUS FLUX_RADIUS FLAGS CLASS_STAR X2_IMAGE Y2_IMAGE XY_IMAGE
SNR_WIN ELONGATION ELLIPTICITY FWHM_IMAGE FLAGS_WEIGHT XPEAK_IMAGE YPEAK_IMAGE""".split()


@dataclass(frozen=True)
class CatalogParam:
    """One requested catalogue column: ``name`` and its vector shape (``()`` for a scalar)."""

    name: str
    shape: tuple[int, ...] = ()

    @property
    def size(self) -> int:
        n = 1
        for s in self.shape:
            n *= s
        return n


def parse_param_text(text: str, source: str = "<param>") -> list[CatalogParam]:
    """Parse ``.param`` text; unknown or unsupported names are errors naming ``source:line``."""
    from .paramdefs import ALL_SEXTRACTOR_NAMES, BY_NAME, VECTOR_2D

    out: list[CatalogParam] = []
    seen: set[str] = set()
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0]
        if not line.strip():
            continue
        m = _LINE.match(line)
        where = f"{source}:{number}"
        if not m:
            raise ConfigError(f"cannot read {line.strip()!r} as a catalogue parameter; expected NAME, "
                              "NAME(n) or NAME(n,m)", where)
        name = m.group(1).upper()
        if name not in BY_NAME:
            if name in ALL_SEXTRACTOR_NAMES:
                raise ConfigError(f"catalogue parameter {name} is a SExtractor parameter that terapix-fw "
                                  "sextractor does not measure (model fitting, PSF fitting, ASSOC...)", where,
                                  name)
            raise ConfigError(f"unknown catalogue parameter {name}; see 'source-extractor -dp' for the list",
                              where, name)
        dims = tuple(int(g) for g in (m.group(3), m.group(4)) if g is not None)
        if any(d < 1 for d in dims):
            raise ConfigError(f"vector size of {name} must be >= 1, got {dims}", where, name)
        if name in VECTOR_2D:
            if len(dims) == 1:
                dims = (dims[0], dims[0])
            if not dims:
                raise ConfigError(f"{name} needs a size, e.g. {name}(35,35)", where, name)
        elif len(dims) > 1:
            raise ConfigError(f"{name} takes one vector size, got {dims}", where, name)
        elif dims == (1,):
            dims = ()
        if name in seen:
            raise ConfigError(f"catalogue parameter {name} is listed twice", where, name)
        seen.add(name)
        out.append(CatalogParam(name, dims))
    if not out:
        raise ConfigError("the parameter file lists no catalogue parameter", source)
    return out


def read_param_file(path: str | Path) -> list[CatalogParam]:
    path = Path(path)
    try:
        text = path.read_bytes().decode("utf-8", errors="replace")
    except OSError as exc:
        raise ConfigError(f"cannot read the catalogue parameter file (PARAMETERS_NAME): {exc.strerror}",
                          str(path), "PARAMETERS_NAME") from None
    return parse_param_text(text, str(path))
