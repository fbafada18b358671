"""Weight and flag maps of a MEF exposure, with WeightWatcher's semantics (``makeit.c``) plus detected defects.

Per image extension:

* weight = value of the first input weight map (1 without one); pixels of *every* input weight map outside
  [WEIGHT_MIN, WEIGHT_MAX] get weight 0 and flag WEIGHT_OUTFLAGS;
* input flag maps: pixels with bits in FLAG_WMASKS get weight 0; bits in FLAG_MASKS become FLAG_OUTFLAGS;
* DS9 polygons (POLY_NAMES): inside pixels get POLY_OUTFLAGS and weight POLY_OUTWEIGHTS;
* detected on the science image (the QualityFITS role): saturated pixels and bleed trails
  (SATUR_OUTFLAGS), cosmic rays (CR_OUTFLAGS), bad columns (BADCOL_OUTFLAGS), satellite trails
  (TRAIL_OUTFLAGS) and dead CCDs (DEAD_OUTFLAGS); all of these get zero weight.

The outputs have the extension structure of the image: a 32-bit float weight MEF and an 8-bit flag MEF whose
headers are the image's (data-description keywords replaced) plus ``WW*`` keywords describing the map.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from terapix_fw.errors import ToolError

__all__ = ["WatchConfig", "ExtensionResult", "read_ds9_polygons", "polygon_mask", "image_hdu_indices",
           "watch_extension", "watch_exposure", "iter_watch", "watch_stream", "MapWriter",
           "FLAG_BITS"]

#: name of each configurable output bit (keyword) and what it means, written in the flag-map headers
FLAG_BITS = (
    ("WEIGHT_OUTFLAGS", "weight outside WEIGHT_MIN..WEIGHT_MAX"),
    ("FLAG_OUTFLAGS", "input flag map (FLAG_MASKS)"),
    ("SATUR_OUTFLAGS", "saturated or bleed trail"),
    ("CR_OUTFLAGS", "cosmic ray"),
    ("TRAIL_OUTFLAGS", "satellite trail"),
    ("BADCOL_OUTFLAGS", "bad column"),
    ("DEAD_OUTFLAGS", "dead CCD"),
    ("POLY_OUTFLAGS", "DS9 polygon mask"),
)


#: pixels this close (box half-size) to saturated ones are not cosmic-ray candidates: the wings of a
#: saturated star around its masked core have sharp edges
SATUR_CR_MARGIN = 8


@dataclass
class WatchConfig:
    """The keywords of the weightwatcher tool that drive the maps.

    No defaults here: they are declared once, with the tool's parameters (WeightWatcher 1.12's values);
    :meth:`defaults` builds a configuration from those declarations."""

    weight_min: float
    weight_max: float
    weight_outflags: int
    flag_wmasks: int
    flag_masks: int
    flag_outflags: int
    poly_outflags: int
    poly_outweights: float
    satur_key: str
    satur_level: float
    satur_outflags: int
    gain_key: str
    gain: float
    cr_detect: bool
    cr_sigclip: float
    cr_sigfrac: float
    cr_objlim: float
    cr_outflags: int
    trail_detect: bool
    trail_nsigma: float
    trail_outflags: int
    badcol_detect: bool
    badcol_nsigma: float
    badcol_outflags: int
    dead_outflags: int
    back_size: int

    @classmethod
    def from_config(cls, config) -> "WatchConfig":
        """From a tool configuration (keyword -> value); keywords it lacks (a tool that declares only
        some of weightwatcher's, as qualityfits) take the weightwatcher tool's declared defaults."""
        from .tool import WeightWatcherTool
        declared = WeightWatcherTool.parameter_set().resolve()
        return cls(**{name: config[name.upper()] if name.upper() in config else declared[name.upper()]
                      for name in cls.__dataclass_fields__})

    @classmethod
    def defaults(cls, **overrides) -> "WatchConfig":
        """The tool's declared defaults (``terapix config weightwatcher``), with ``overrides`` applied."""
        import dataclasses

        return dataclasses.replace(cls.from_config({}), **overrides)


@dataclass
class ExtensionResult:
    """Maps and statistics of one CCD."""

    weight: np.ndarray
    flag: np.ndarray
    stats: dict = field(default_factory=dict)
    trails: list = field(default_factory=list)
    background: object = None  # terapix_fw.background.BackgroundMap used for the detection


_POLY_RE = re.compile(r"polygon\s*\(([^)]*)\)", re.IGNORECASE)


def read_ds9_polygons(path: str | Path) -> list[tuple[str, np.ndarray]]:
    """Polygons of a DS9 region file as ``(system, vertices[n, 2])``; system ``image`` (1-based pixels)
    or ``fk5`` (degrees; also ``icrs``/``j2000``).  Other shapes are an error naming the line."""
    system = "image"
    out = []
    for lineno, raw in enumerate(Path(path).read_text(encoding="utf-8", errors="replace").splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line or line.lower().startswith("global"):
            continue
        for part in line.split(";"):
            part = part.strip()
            low = part.lower()
            if low in ("image", "physical"):
                system = "image"
            elif low in ("fk5", "icrs", "j2000"):
                system = "fk5"
            elif low.startswith(("polygon", "-polygon")) or "polygon(" in low.replace(" ", ""):
                match = _POLY_RE.search(part)
                try:
                    values = [float(v) for v in re.split(r"[,\s]+", match.group(1).strip()) if v]
                except (AttributeError, ValueError):
                    raise ToolError(f"{path}, line {lineno}: cannot read polygon {part!r}; expected "
                                    "polygon(x1,y1,x2,y2,...) with numbers") from None
                if len(values) < 6 or len(values) % 2:
                    raise ToolError(f"{path}, line {lineno}: polygon with {len(values)} numbers; expected an "
                                    "even number >= 6 (at least 3 vertices)")
                out.append((system, np.array(values).reshape(-1, 2)))
            elif low.startswith(("circle", "box", "ellipse", "point", "line", "text", "annulus")):
                raise ToolError(f"{path}, line {lineno}: region {part.split('(')[0]!r} is not supported; "
                                "WeightWatcher's POLY_NAMES takes DS9 polygons only")
    return out


def polygon_mask(shape, polygons, wcs=None):
    """Pixels (0-based [y, x]) whose centre lies inside any polygon."""
    from matplotlib.path import Path as MplPath

    ny, nx = shape
    mask = np.zeros(shape, bool)
    for system, verts in polygons:
        if system == "fk5":
            if wcs is None:
                continue
            px, py = wcs.all_world2pix(verts[:, 0], verts[:, 1], 1)
            verts = np.column_stack([px, py])
        v0 = verts - 1.0  # DS9 image coordinates are 1-based
        x0, x1 = int(max(0, np.floor(v0[:, 0].min()))), int(min(nx - 1, np.ceil(v0[:, 0].max())))
        y0, y1 = int(max(0, np.floor(v0[:, 1].min()))), int(min(ny - 1, np.ceil(v0[:, 1].max())))
        if x1 < x0 or y1 < y0:
            continue
        yy, xx = np.mgrid[y0:y1 + 1, x0:x1 + 1]
        inside = MplPath(v0).contains_points(np.column_stack([xx.ravel(), yy.ravel()]))
        mask[y0:y1 + 1, x0:x1 + 1] |= inside.reshape(yy.shape)
    return mask


def image_hdu_indices(path, what="image") -> list[int]:
    """Indices of the image HDUs of a FITS file (its image extensions, or the primary HDU of a simple image),
    read by the core's reader (:mod:`terapix_fw.fitsimage`: one-line errors for what cannot be read)."""
    from terapix_fw.fitsimage import FitsImage

    with FitsImage(path, what) as img:
        return [h.index for h in img.images]


def watch_extension(data, header, cfg: WatchConfig, weights_in=(), flags_in=(), polygons=(),
                    wcs=None, where: str = "") -> ExtensionResult:
    """Weight and flag maps of one CCD (see the module docstring for the rules).

    Parameters
    ----------
    data : numpy.ndarray
        The CCD's pixels.
    header : astropy.io.fits.Header
    cfg : WatchConfig
    weights_in, flags_in : sequence of numpy.ndarray
        Input weight and flag maps of the CCD.
    polygons : sequence
        DS9 polygons.
    wcs : astropy.wcs.WCS, optional
        For polygons in world coordinates.
    where : str
        File and extension, for messages.

    Returns
    -------
    ExtensionResult

    Raises
    ------
    ToolError
        If an input map's shape differs from the image's.
    """
    from terapix_fw.background import estimate_background

    from . import defects

    data = np.asarray(data, dtype=np.float32)
    shape = data.shape
    flag = np.zeros(shape, np.uint8)
    weight = np.ones(shape, np.float32)
    zero = np.zeros(shape, bool)
    stats: dict = {}
    for k, w in enumerate(weights_in):
        w = np.asarray(w, dtype=np.float32)
        if w.shape != shape:
            raise ToolError(f"{where}: weight map {k + 1} has shape {w.shape}, expected the image's {shape}")
        if k == 0:
            weight = w.copy()
        out = ~((w >= cfg.weight_min) & (w <= cfg.weight_max))
        flag[out] |= cfg.weight_outflags
        zero |= out
    for k, f in enumerate(flags_in):
        f = np.asarray(f).astype(np.int64)
        if f.shape != shape:
            raise ToolError(f"{where}: flag map {k + 1} has shape {f.shape}, expected the image's {shape}")
        zero |= (f & cfg.flag_wmasks) != 0
        flag[(f & cfg.flag_masks) != 0] |= cfg.flag_outflags
    if polygons:
        inpoly = polygon_mask(shape, polygons, wcs)
        flag[inpoly] |= cfg.poly_outflags
        weight[inpoly] = cfg.poly_outweights
        stats["npoly_pix"] = int(inpoly.sum())

    dead = defects.is_dead(data)
    stats["dead"] = bool(dead)
    if dead:
        flag |= cfg.dead_outflags
        weight[:] = 0.0
        stats.update(nsat_pix=0, ncr=0, ncr_pix=0, ntrail=0, nbadcol_pix=0)
        return ExtensionResult(weight, flag, stats)

    from terapix_fw.fitsimage import header_number

    # a saturation level <= 0 would flag every pixel; a negative gain is nonsense (0: unknown, as GAIN 0)
    satur = header_number(header, cfg.satur_key, where, cfg.satur_level, positive=True)
    gain = cfg.gain if cfg.gain > 0 else header_number(header, cfg.gain_key, where, 0.0, positive=True,
                                                       allow_zero=True)
    known_bad = zero | ~np.isfinite(data)
    bkg = estimate_background(data, mask=known_bad, back_size=cfg.back_size)
    rms = bkg.global_rms
    sat = defects.saturated(data, bkg.back, satur)
    flag[sat] |= cfg.satur_outflags
    stats["nsat_pix"] = int(sat.sum())
    bad = known_bad | sat
    if cfg.badcol_detect:
        cols = defects.bad_columns(np.where(bad, bkg.back, data), bkg.back, rms, cfg.badcol_nsigma)
        flag[cols] |= cfg.badcol_outflags
        bad |= cols
        stats["nbadcol_pix"] = int(cols.sum())
    if cfg.cr_detect:
        img = np.where(bad, bkg.back, data)
        cr = defects.cosmic_rays(img, bkg.back, rms, gain, cfg.cr_sigclip, cfg.cr_sigfrac, cfg.cr_objlim)
        # the steep walls a saturated star keeps around its masked core are no cosmic rays
        cr &= ~bad & ~defects.grow_mask(sat, SATUR_CR_MARGIN)
        flag[cr] |= cfg.cr_outflags
        bad |= cr
        stats["ncr_pix"] = int(cr.sum())
        stats["ncr"] = defects.count_groups(cr)
    trails: list = []
    if cfg.trail_detect:
        tmask, trails = defects.satellite_trails(data, bkg.back, rms, exclude=bad, nsigma=cfg.trail_nsigma)
        flag[tmask] |= cfg.trail_outflags
        bad |= tmask
        stats["ntrail"] = len(trails)
    zero |= bad
    weight[zero] = 0.0
    stats["back"] = float(bkg.global_back)
    stats["rms"] = float(rms)
    stats["flagged_fraction"] = float((flag != 0).mean())
    return ExtensionResult(weight, flag, stats, trails, bkg)


def _map_header(image_header, kind: str, cfg: WatchConfig, stats: dict, tool_version: str):
    """Image header minus data-description keywords, plus the WW* keywords of this map."""
    header = image_header.copy()
    for key in ("BSCALE", "BZERO", "BLANK", "BUNIT", "CHECKSUM", "DATASUM", "DATAMIN", "DATAMAX"):
        header.remove(key, ignore_missing=True, remove_all=True)
    header["WWTOOL"] = (f"terapix-fw weightwatcher {tool_version}", "software that made this map")
    header["WWTYPE"] = (kind, "WEIGHT or FLAG map")
    header["WWMIN"] = (cfg.weight_min, "WEIGHT_MIN threshold")
    header["WWMAX"] = (cfg.weight_max, "WEIGHT_MAX threshold")
    header["WWDEAD"] = (bool(stats.get("dead", False)), "dead CCD")
    header["WWNCR"] = (int(stats.get("ncr", 0)), "cosmic-ray hits detected")
    header["WWNCRPIX"] = (int(stats.get("ncr_pix", 0)), "cosmic-ray pixels flagged")
    header["WWNSAT"] = (int(stats.get("nsat_pix", 0)), "saturated/bleed pixels flagged")
    header["WWNTRAIL"] = (int(stats.get("ntrail", 0)), "satellite trails detected")
    header["WWNBADC"] = (int(stats.get("nbadcol_pix", 0)), "bad-column pixels flagged")
    header["WWFFLAG"] = (round(float(stats.get("flagged_fraction", 1.0 if stats.get("dead") else 0.0)), 6),
                         "fraction of flagged pixels")
    if kind == "FLAG":
        for key, meaning in FLAG_BITS:
            value = getattr(cfg, key.lower())
            if value:
                header[f"WWBIT{int(value).bit_length()}"] = (int(value), meaning[:47])
    return header


def iter_watch(image_path, weight_paths=(), flag_paths=(), poly_paths=(), cfg: WatchConfig | None = None,
               log=None, nthreads: int = 1, select=None):
    """Yield ``(hdu_index, header, data, ExtensionResult)`` for each image extension in order, with at most
    ``nthreads + 1`` CCDs in memory (a full MegaCam exposure does not fit in memory three times over)."""
    for i, header, data, res, _ in watch_stream(image_path, weight_paths, flag_paths, poly_paths, cfg, log,
                                                nthreads, select=select):
        yield i, header, data, res


def watch_stream(image_path, weight_paths=(), flag_paths=(), poly_paths=(), cfg: WatchConfig | None = None,
                 log=None, nthreads: int = 1, then=None, select=None):
    """As :func:`iter_watch`, yielding ``(hdu_index, header, data, result, then_result)``: ``then(n, hdu_index,
    header, data, result)`` (n = 1-based extension number), if given, runs in the same worker thread right
    after the maps, e.g. the catalogue of the CCD.  Files are read in the calling thread only.

    Parameters
    ----------
    image_path : str or Path
    weight_paths, flag_paths, poly_paths : sequence of str
    cfg : WatchConfig, optional
    log : logging.Logger, optional
    nthreads : int
    then : callable, optional
    select : int or str, optional
        One image extension only (n-th, 1-based, or EXTNAME).
    """
    import contextlib
    import warnings
    from collections import deque
    from concurrent.futures import ThreadPoolExecutor

    from terapix_fw.fitsimage import FitsImage

    cfg = cfg or WatchConfig.defaults()
    polygons = [p for path in poly_paths for p in read_ds9_polygons(path)]

    def work(item):
        n, i, header, data, ws, fs, wcs = item
        res = watch_extension(data, header, cfg, ws, fs, polygons, wcs, f"{image_path}[{i}]")
        extra = then(n, i, header, data, res) if then is not None else None
        return i, header, data, res, extra

    with contextlib.ExitStack() as stack:
        others = [(p, stack.enter_context(FitsImage(p, "weight map" if k < len(weight_paths) else "flag map")))
                  for k, p in enumerate(list(weight_paths) + list(flag_paths))]
        with FitsImage(image_path, "image") as img:
            idx = [h.index for h in img.images]
            # ``select``: one image extension only (n-th, 1-based, or EXTNAME: ``image.fits[ccd10]``)
            positions = [idx.index(img.select(select).index)] if select is not None else range(len(idx))
            maps = []
            for p, h in others:
                oidx = [x.index for x in h.images]
                if len(oidx) != len(idx):
                    raise ToolError(f"{p}: {len(oidx)} image extension(s), but {image_path} has {len(idx)}; "
                                    "weight and flag inputs must have the image's extension structure")
                maps.append(oidx)
            nw = len(weight_paths)

            def items():
                for n in positions:
                    i = idx[n]
                    header = img.header(i)
                    data = img.read(i)  # float32, NaN where BLANK/NaN/inf
                    wcs = None
                    if polygons:  # only DS9 polygons need the WCS (astropy.wcs loads astropy.coordinates)
                        from astropy.wcs import WCS, FITSFixedWarning

                        with warnings.catch_warnings():
                            warnings.simplefilter("ignore", FITSFixedWarning)
                            wcs = WCS(header)
                    ws = [others[k][1].read(maps[k][n]) for k in range(nw)]
                    fs = [others[k][1].read_native(maps[k][n]) for k in range(nw, len(others))]
                    yield n + 1, i, header, data, ws, fs, wcs

            def report(out):
                i, header, _, res, _ = out
                if log is not None:
                    log.info("%s: %d CR hits, %d saturated px, %d trail(s), %d bad-column px%s",
                             header.get("EXTNAME", i), res.stats.get("ncr", 0), res.stats.get("nsat_pix", 0),
                             res.stats.get("ntrail", 0), res.stats.get("nbadcol_pix", 0),
                             ", DEAD" if res.stats.get("dead") else "")
                return out

            if nthreads <= 1:
                for item in items():
                    yield report(work(item))
                return
            # CCDs in worker threads (the numba kernels release the GIL), results in extension order
            with ThreadPoolExecutor(nthreads) as pool:
                pending = deque()
                for item in items():
                    pending.append(pool.submit(work, item))
                    if len(pending) > nthreads:
                        yield report(pending.popleft().result())
                while pending:
                    yield report(pending.popleft().result())


class MapWriter:
    """Writes the weight and flag MEFs extension by extension, atomically (renamed when closed without error).

    >>> with MapWriter(weight_path, flag_path, primary_header, cfg, version) as out:  # doctest: +SKIP
    ...     out.add(hdu_index, image_header, result)
    """

    def __init__(self, weight_path, flag_path, primary_header, cfg: WatchConfig, tool_version: str = "0"):
        self.paths = (weight_path, flag_path)
        self.primary = primary_header
        self.cfg = cfg
        self.version = tool_version

    def __enter__(self):
        import contextlib

        from terapix_fw.atomic import atomic_path

        self._stack = contextlib.ExitStack()
        self.tmp = [self._stack.enter_context(atomic_path(p)) for p in self.paths]
        # closed before the temporary files are renamed (callbacks run last-in first-out)
        self.out = [open(t, "wb") for t in self.tmp]
        self._stack.callback(lambda: [f.close() for f in self.out])
        self._started = False
        return self

    def add(self, hdu_index, header, res: ExtensionResult):
        import io

        from astropy.io import fits

        wh = _map_header(header, "WEIGHT", self.cfg, res.stats, self.version)
        fh = _map_header(header, "FLAG", self.cfg, res.stats, self.version)
        if hdu_index == 0:  # a simple image: the maps are simple images too
            fits.PrimaryHDU(res.weight, wh).writeto(self.out[0])
            fits.PrimaryHDU(res.flag, fh).writeto(self.out[1])
            self._started = True
            return
        if not self._started:
            for out in self.out:
                fits.PrimaryHDU(header=self.primary).writeto(out)
            self._started = True
        # each extension serialised on its own behind an empty 2880-byte primary that is dropped: astropy's
        # append mode re-reads and re-verifies the whole file at every extension (quadratic: 200 small
        # CCDs took minutes)
        empty = fits.PrimaryHDU()
        for out, hdu in zip(self.out, (fits.ImageHDU(res.weight, wh), fits.ImageHDU(res.flag, fh))):
            buf = io.BytesIO()
            fits.HDUList([empty, hdu]).writeto(buf)
            out.write(buf.getbuffer()[2880:])

    def __exit__(self, *exc):
        return self._stack.__exit__(*exc)


def watch_exposure(image_path, weight_paths=(), flag_paths=(), poly_paths=(), cfg: WatchConfig | None = None,
                   tool_version: str = "0", log=None):
    """Compute the weight and flag MEFs of an exposure in memory (small images; tools stream with
    :func:`iter_watch` and :class:`MapWriter`).

    Returns ``(weight_hdul, flag_hdul, per_extension)`` where ``per_extension`` is a list of dicts
    (``extension``, ``extname`` and the statistics of :func:`watch_extension`).
    """
    from astropy.io import fits

    from terapix_fw.fitsimage import FitsImage

    cfg = cfg or WatchConfig.defaults()
    with FitsImage(image_path, "image") as img:
        primary = img.primary_header()
    whdus, fhdus, per_ext = [], [], []
    for i, header, _, res in iter_watch(image_path, weight_paths, flag_paths, poly_paths, cfg, log):
        per_ext.append({"extension": i, "extname": header.get("EXTNAME", f"EXT{i}"), **res.stats,
                        "trails": res.trails})
        wh = _map_header(header, "WEIGHT", cfg, res.stats, tool_version)
        fh = _map_header(header, "FLAG", cfg, res.stats, tool_version)
        if i == 0:
            whdus, fhdus = [fits.PrimaryHDU(res.weight, wh)], [fits.PrimaryHDU(res.flag, fh)]
        else:
            if not whdus:
                whdus, fhdus = [fits.PrimaryHDU(header=primary)], [fits.PrimaryHDU(header=primary)]
            whdus.append(fits.ImageHDU(res.weight, wh))
            fhdus.append(fits.ImageHDU(res.flag, fh))
    return fits.HDUList(whdus), fits.HDUList(fhdus), per_ext
