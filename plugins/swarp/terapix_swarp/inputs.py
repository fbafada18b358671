"""Input images of the swarp plugin: MEF scanning, ``.head`` overriding, weight maps, per-image keywords.

As SWarp does, every image-bearing HDU of every input file is a separate input "field"; the k-th one of a
file takes the k-th END-terminated block of ``IMAGE<HEADER_SUFFIX>`` (default ``.head``) beside it (or the
file named by HEADER_NAME), whose keywords override the image header (astrometry, FLXSCALE...).  Weight
maps are read from WEIGHT_IMAGE or from the input name with its extension replaced by WEIGHT_SUFFIX, with
the same extension structure.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from terapix_fw.errors import ConfigError, ToolError

__all__ = ["InputField", "scan_inputs", "per_image", "suffixed_name"]


def per_image(config, key: str, index: int, nfiles: int):
    """A keyword given for "all or for each image" (SWarp): one value for all, or one per input file."""
    values = config[key]
    if not isinstance(values, list):
        return values
    if len(values) == 1:
        return values[0]
    if len(values) != nfiles:
        raise ConfigError(f"{key} has {len(values)} values; expected 1 or one per input file ({nfiles})",
                          "configuration", key)
    return values[index]


def _match_companion(path: Path, names: list, key: str, nfiles: int, index: int) -> Path:
    """The file of a HEADER_NAME / WEIGHT_IMAGE list that goes with input ``path``: the one whose name
    starts with the input's stem and a dot (``exp1.fits`` -> ``exp1.head``, ``exp1.weight.fits``), so that a
    pipeline may pass the companions of more files, in any order; else by position (one per input), or
    the single name for every input."""
    stem = path.name[: path.name.rfind(".")] if "." in path.name else path.name
    if path.name.endswith(".fits.fz"):
        stem = path.name[: -len(".fits.fz")]
    hits = [Path(n) for n in names if Path(n).name.startswith(stem + ".")]
    if len(hits) == 1:
        return hits[0]
    if len(names) == nfiles:
        return Path(names[index])
    if len(names) == 1:
        return Path(names[0])
    raise ConfigError(f"{key}: cannot tell which of {len(names)} files goes with {path.name} (expected one named "
                      f"{stem}.*, or one file per input)", "configuration", key)


def suffixed_name(path: Path, suffix: str) -> Path:
    """SWarp's naming: replace the last ``.ext`` of ``path`` by ``suffix`` (``a.fits`` -> ``a.head``)."""
    name = path.name
    stem = name[: name.rfind(".")] if "." in name else name
    return path.with_name(stem + suffix)


@dataclass
class InputField:
    """One input image (one HDU of one file) and what SWarp reads from its header."""

    path: Path
    hdu: int
    fileno: int
    ordinal: int  # k-th image HDU of the file (0-based), selects the .head block
    frameno: int  # HDU number as SWarp names resampled files (0 for a simple FITS file)
    header: Any  # the whole header for the first field, only KEPT_KEYWORDS for the others
    shape: tuple[int, int]
    wcs: Any
    weight_path: Path | None
    weight_hdu: int | None
    weight_type: str
    weight_thresh: float | None
    gain: float
    saturation: float
    exptime: float
    fscale: float
    headflag: bool
    ident: str = ""
    meta: dict = field(default_factory=dict)

    @property
    def name(self) -> str:
        return f"{self.path.name}[{self.hdu}]" if self.frameno else self.path.name


def _read_located(path: Path, hdu: int, loc):
    from terapix_fw.fitsimage import read_located

    return read_located(loc)


def _celestial_wcs(header, where: str):
    from terapix_fw.wcsutil import celestial_wcs

    return celestial_wcs(header, where, "SWarp's PIXEL mode is not supported")


#: header keywords kept for every field after the scan (RESAMPLE N reads them from resampled images); the
#: first field keeps its whole header (COPY_KEYWORDS).  A full header costs ~36 kB of Python objects: 130 MB
#: for the 3600 CCDs of a 1 deg^2 stack
KEPT_KEYWORDS = ("FLASCALE", "BACKMEAN", "BACKSIG", "OBJECT")


def _kept_header(header):
    from astropy.io import fits

    return fits.Header([header.cards[k] for k in KEPT_KEYWORDS if k in header])


def scan_inputs(paths: list[Path], config, select=None) -> list[InputField]:
    """Build the list of input fields, applying ``.head`` files and locating weight maps; ``select`` keeps
    one image extension of each input (n-th, 1-based, or EXTNAME: ``image.fits[ccd10]``)."""
    from terapix_fw.fitsimage import FitsImage, header_number
    from terapix_fw.headfile import apply_head, read_head_file

    nfiles = len(paths)
    header_names = config["HEADER_NAME"]
    weight_images = config["WEIGHT_IMAGE"]
    fields: list[InputField] = []
    for fileno, path in enumerate(paths):
        path = Path(path)
        if not path.exists():
            raise ToolError(f"input image {path} not found")
        weight_type = per_image(config, "WEIGHT_TYPE", fileno, nfiles)
        thresh_list = config["WEIGHT_THRESH"]
        weight_thresh = per_image(config, "WEIGHT_THRESH", fileno, nfiles) if thresh_list else None
        # header file
        if header_names:
            head_path = _match_companion(path, header_names, "HEADER_NAME", nfiles, fileno)
            # a header the user named is wanted: stacking without it would use the raw astrometry
            # silently (a suffixed .head, by contrast, is optional by convention)
            if not head_path.exists():
                raise ToolError(f"HEADER_NAME {head_path} for {path} not found")
        else:
            head_path = suffixed_name(path, config["HEADER_SUFFIX"])
        heads = read_head_file(head_path) if head_path.exists() else []
        # weight file
        weight_path = None
        if weight_type in ("MAP_WEIGHT", "MAP_RMS", "MAP_VARIANCE"):
            if weight_images:
                weight_path = _match_companion(path, weight_images, "WEIGHT_IMAGE", nfiles, fileno)
            else:
                weight_path = suffixed_name(path, config["WEIGHT_SUFFIX"])
            if not weight_path.exists():
                raise ToolError(f"weight map {weight_path} for {path} (WEIGHT_TYPE {weight_type}) not found")
        with FitsImage(path, "input image") as img:
            hdus = [h.index for h in img.images]
            whdus = None
            wlocs = None
            if weight_path is not None:
                with FitsImage(weight_path, "weight map") as wimg:
                    whdus = [h.index for h in wimg.images]
                    wlocs = [wimg.locate(k) for k in whdus]
                if len(whdus) != len(hdus):
                    raise ToolError(f"weight map {weight_path} has {len(whdus)} image extensions; its image "
                                    f"{path} has {len(hdus)}")
            mef = len(img.hdus) > 1
            chosen = img.select(select).index if select is not None else None
            for ordinal, hdu in enumerate(hdus):
                if chosen is not None and hdu != chosen:
                    continue
                header = img.header(hdu)
                headflag = ordinal < len(heads)
                if headflag:
                    apply_head(header, heads[ordinal])
                where = f"{path}[{hdu}]"
                wcs = _celestial_wcs(header, where)

                def keyword(name, default, **check):
                    return header_number(header, name, where, float(default), **check)

                # a negative gain, a saturation level <= 0 or a negative exposure time is refused (they
                # would go into the stack's GAIN/SATURATE/EXPTIME); GAIN 0 and EXPTIME 0 (bias) are allowed
                gain = keyword(config["GAIN_KEYWORD"], per_image(config, "GAIN_DEFAULT", fileno, nfiles),
                               positive=True, allow_zero=True)
                satur = keyword(config["SATLEV_KEYWORD"], per_image(config, "SATLEV_DEFAULT", fileno, nfiles),
                                positive=True)
                fscale = keyword(config["FSCALE_KEYWORD"], per_image(config, "FSCALE_DEFAULT", fileno, nfiles))
                if fscale == 0.0:
                    fscale = 1.0  # as SWarp: "has flux scale = 0: I will take 1 instead"
                exptime = keyword("EXPTIME", 0.0, positive=True, allow_zero=True)
                fields.append(InputField(
                    path=path, hdu=hdu, fileno=fileno, ordinal=ordinal, frameno=hdu if mef else 0,
                    header=header if not fields else _kept_header(header),
                    shape=img.info(hdu).shape, wcs=wcs,
                    weight_path=weight_path, weight_hdu=(whdus[ordinal] if whdus else None),
                    weight_type=weight_type, weight_thresh=weight_thresh, gain=gain, saturation=satur,
                    exptime=exptime, fscale=fscale, headflag=headflag,
                    ident=str(header.get("OBJECT", "")),
                    meta={"loc": img.locate(hdu), "wloc": wlocs[ordinal] if wlocs else None}))
    return fields


def read_pixels(fld: InputField, weight: bool = True):
    """The image and (if any, and if ``weight``) weight-map pixels of a field as native float32 arrays."""
    data = _read_located(fld.path, fld.hdu, fld.meta["loc"])
    if not weight:
        return data, None
    weight = None
    if fld.weight_path is not None:
        weight = _read_located(fld.weight_path, fld.weight_hdu, fld.meta["wloc"])
        if weight.shape != data.shape:
            raise ToolError(f"weight map {fld.weight_path}[{fld.weight_hdu}] is {weight.shape[1]}x"
                            f"{weight.shape[0]}; its image {fld.name} is {data.shape[1]}x{data.shape[0]}")
    return data, weight
