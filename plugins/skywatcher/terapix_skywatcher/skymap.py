"""The survey on a sky map: true CCD footprints on any projection, overlays, dust map, links for the web.

:class:`SkyMap` draws every footprint from its sampled outline (see :mod:`.footprints`), cut at the
projection's edge meridian and closed at the poles (:func:`.projections.split_polygon`); footprints are
coloured by filter, grade or processing status; the user's boxes (e.g. the survey's Wide fields), the
galactic plane (b = 0, and b = +-10 deg dashed) and the ecliptic (astropy coordinates), any VOTable or FITS
catalogue, and an E(B-V) map (HEALPix or Cartesian FITS with a celestial WCS, equatorial or galactic) as
the background with colour cuts.  What is drawn is kept (``drawn``, ``catalogue_xy``, ``background``) so
that tests check it against the WCS and analytic formulas, and :meth:`SkyMap.image_map` writes the HTML
``<map>`` that links each footprint on the PNG to its exposure's page.
"""
from __future__ import annotations

import html
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from terapix_fw.errors import ToolError

from .footprints import Footprint
from .projections import Projection, densify_lonlat, densify_pieces, split_line, split_polygon

__all__ = ["SkyMapOptions", "SkyMap", "select_footprints", "read_catalogue_positions", "ebv_sampler",
           "colour_of", "FILTER_COLOURS"]

FILTER_COLOURS = {"u": "#5e3c99", "g": "#1b9e77", "r": "#d95f02", "i": "#a6761d", "z": "#7f0000", "y": "#666666"}
GRADE_COLOURS = {"A": "#1a9850", "B": "#a6d96a", "C": "#fdae61", "D": "#d73027"}


def colour_of(fp: Footprint, by: str, palette: dict[str, str]) -> str:
    """Colour of a footprint by FILTER (u g r i z by their first letter), GRADE (A..D) or STATUS."""
    if by == "GRADE":
        return GRADE_COLOURS.get(fp.grade[:1].upper(), "#999999")
    key = fp.filter if by == "FILTER" else fp.status if by == "STATUS" else fp.exposure
    if by == "FILTER" and key[:1].lower() in FILTER_COLOURS:
        return FILTER_COLOURS[key[:1].lower()]
    return palette.setdefault(key, f"C{len(palette) % 10}")


def select_footprints(footprints: list[Footprint], *, runs=(), components=(), filters=(), statuses=(),
                      grades=(), region: tuple[float, float, float, float] | None = None) -> list[Footprint]:
    """Footprints matching every criterion given: run ids, survey components, filters, statuses, grades
    (exact values; an empty criterion selects all) and a region (RA min, RA max, Dec min, Dec max in deg,
    RA min > RA max for a region across RA = 0) holding the footprint's centre."""
    out = []
    for fp in footprints:
        if runs and fp.run not in runs or components and fp.component not in components:
            continue
        if filters and fp.filter not in filters or statuses and fp.status not in statuses:
            continue
        if grades and fp.grade not in grades:
            continue
        if region is not None:
            ra_c, dec_c = _centre(fp)
            ra0, ra1, dec0, dec1 = region
            in_ra = (ra0 <= ra_c <= ra1) if ra0 <= ra1 else (ra_c >= ra0 or ra_c <= ra1)
            if not (in_ra and dec0 <= dec_c <= dec1):
                continue
        out.append(fp)
    return out


def _centre(fp: Footprint) -> tuple[float, float]:
    v = _unit(fp.ra, fp.dec).mean(axis=0)
    return float(np.rad2deg(np.arctan2(v[1], v[0])) % 360.0), float(np.rad2deg(np.arcsin(v[2] / np.linalg.norm(v))))


def _unit(ra, dec) -> np.ndarray:
    ra, dec = np.deg2rad(ra), np.deg2rad(dec)
    return np.column_stack([np.cos(dec) * np.cos(ra), np.cos(dec) * np.sin(ra), np.sin(dec)])


_RA_NAMES = ("ALPHA_J2000", "RA", "RAJ2000", "RA_ICRS", "ALPHAWIN_J2000", "_RAJ2000")
_DEC_NAMES = ("DELTA_J2000", "DEC", "DEJ2000", "DE_ICRS", "DECJ2000", "DELTAWIN_J2000", "_DEJ2000")


def read_catalogue_positions(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """(RA, Dec) in degrees of a VOTable (astropy.io.votable) or FITS / FITS_LDAC table."""
    import warnings

    from astropy.table import Table

    path = Path(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if path.suffix.lower() in (".xml", ".vot", ".votable"):
                table = Table.read(path, format="votable")
            else:
                from astropy.io import fits

                with fits.open(path) as hdul:
                    hdu = next((h for h in hdul[1:] if isinstance(h, fits.BinTableHDU)
                                and h.header.get("EXTNAME") != "LDAC_IMHEAD"), None)
                    if hdu is None:
                        raise ToolError(f"{path}: no binary table with objects")
                    table = Table(hdu.data)
    except (OSError, ValueError) as exc:
        raise ToolError(f"{path}: cannot read as a VOTable or FITS table: {exc}") from None
    upper = {name.upper(): name for name in table.colnames}
    ra_col = next((upper[n] for n in _RA_NAMES if n in upper), None)
    dec_col = next((upper[n] for n in _DEC_NAMES if n in upper), None)
    if ra_col is None or dec_col is None:
        raise ToolError(f"{path}: no RA/Dec columns; expected one of {', '.join(_RA_NAMES)} and one of "
                        f"{', '.join(_DEC_NAMES)}")
    return np.asarray(table[ra_col], float), np.asarray(table[dec_col], float)


def ebv_sampler(path: str | Path):
    """A function (RA, Dec in deg) -> E(B-V) values of a user map: HEALPix FITS (PIXTYPE = HEALPIX,
    COORDSYS C or G, RING or NESTED) or an image with a celestial WCS (RA/Dec or GLON/GLAT); nearest
    pixel, NaN outside a Cartesian map."""
    from astropy.io import fits

    path = Path(path)
    try:
        hdul = fits.open(path)
    except (OSError, ValueError) as exc:
        raise ToolError(f"{path}: cannot read the E(B-V) map as FITS: {exc}") from None
    with hdul:
        healpix = next((h for h in hdul[1:] if str(h.header.get("PIXTYPE", "")).upper() == "HEALPIX"), None)
        if healpix is not None:
            import healpy as hp

            values = hp.read_map(path, field=0, dtype=np.float64, nest=None)
            nest = str(healpix.header.get("ORDERING", "RING")).upper().startswith("NEST")
            galactic = str(healpix.header.get("COORDSYS", "C")).upper().startswith("G")
            nside = hp.get_nside(values)

            def sample(ra, dec):
                lon, lat = _frame(ra, dec, galactic)
                return values[hp.ang2pix(nside, lon, lat, nest=nest, lonlat=True)]
            return sample
        image = next((h for h in hdul if h.is_image and h.header.get("NAXIS", 0) == 2), None)
        if image is None:
            raise ToolError(f"{path}: neither a HEALPix table (PIXTYPE = HEALPIX) nor a 2-D image")
        from astropy.wcs import WCS

        wcs = WCS(image.header).celestial
        if not wcs.has_celestial:
            raise ToolError(f"{path}: the E(B-V) image has no celestial WCS (CTYPE1/CTYPE2)")
        data = np.asarray(image.data, float)
        galactic = wcs.wcs.ctype[0].upper().startswith("GLON")

    def sample(ra, dec):
        lon, lat = _frame(ra, dec, galactic)
        x, y = wcs.wcs_world2pix(np.ravel(lon), np.ravel(lat), 0)
        ix, iy = np.round(x).astype(int), np.round(y).astype(int)
        ok = np.isfinite(x) & (ix >= 0) & (iy >= 0) & (ix < data.shape[1]) & (iy < data.shape[0])
        out = np.full(ix.shape, np.nan)
        out[ok] = data[iy[ok], ix[ok]]
        return out.reshape(np.shape(ra))
    return sample


def _frame(ra, dec, galactic: bool):
    if not galactic:
        return np.asarray(ra, float), np.asarray(dec, float)
    from astropy.coordinates import SkyCoord
    import astropy.units as u

    c = SkyCoord(ra=np.ravel(ra) * u.deg, dec=np.ravel(dec) * u.deg, frame="icrs").galactic
    return c.l.deg.reshape(np.shape(ra)), c.b.deg.reshape(np.shape(dec))


@dataclass
class SkyMapOptions:
    """What to draw (the skywatcher keywords PROJECTION, MAP_CENTER, MAP_RADIUS, COLOUR_BY, BOX_*...)."""

    projection: str = "HAMMER"
    centre: tuple[float, float] | None = None  # (RA, Dec) deg; None: the footprints' centre
    radius: float | None = None  # deg; None: whole sky for all-sky projections, the footprints for GNOMONIC
    colour_by: str = "FILTER"
    boxes: list[tuple[str, float, float, float, float]] = field(default_factory=list)
    galactic: bool = True
    ecliptic: bool = True
    catalogues: list[str] = field(default_factory=list)
    ebv_map: str | None = None
    ebv_cuts: tuple[float, float] = (0.0, 0.5)
    width_px: int = 1200
    title: str = ""


class SkyMap:
    """Footprints and overlays on one projection; :meth:`save` writes PNG/PDF/SVG."""

    def __init__(self, footprints: list[Footprint], options: SkyMapOptions | None = None):
        self.options = opt = options or SkyMapOptions()
        self.footprints = footprints
        if opt.centre is not None:
            ra0, dec0 = opt.centre
        elif footprints:
            v = np.concatenate([_unit(fp.ra, fp.dec) for fp in footprints]).mean(axis=0)
            ra0 = float(np.rad2deg(np.arctan2(v[1], v[0])) % 360.0)
            dec0 = float(np.rad2deg(np.arcsin(np.clip(v[2] / max(np.linalg.norm(v), 1e-12), -1, 1))))
        else:
            ra0, dec0 = 0.0, 0.0
        self.centre = (ra0, dec0)
        radius = opt.radius
        if radius is None and opt.projection == "GNOMONIC":
            sep = [np.rad2deg(np.arccos(np.clip(_unit(*fp.outline()) @ _unit([ra0], [dec0])[0], -1, 1))).max()
                   for fp in footprints] or [1.0]
            radius = 1.1 * max(sep) + 1e-3
        self.radius = radius
        self.proj = Projection(opt.projection, lon0=ra0, lat0=dec0)
        self.drawn: list[tuple[Footprint, list[tuple[np.ndarray, np.ndarray]]]] = []
        self.catalogue_xy: list[tuple[np.ndarray, np.ndarray]] = []
        self.background = None  # (lon edges rel. to centre, lat edges, values) of the E(B-V) mesh
        self._fig = None

    # ---------------------------------------------------------------- geometry
    def pieces(self, ra, dec) -> list[tuple[np.ndarray, np.ndarray]]:
        """Plane (x, y) pieces of a closed sky polygon."""
        out = []
        for lon, lat in split_polygon(self.proj, ra, dec):
            # gnomonic: great circles are straight lines, the sampled outline is drawn as it is
            x, y = self.proj.forward_rel(*(densify_pieces(lon, lat) if self.proj.all_sky else (lon, lat)))
            if np.all(np.isfinite(x)) and np.all(np.isfinite(y)):
                out.append((x, y))
        return out

    def line_pieces(self, ra, dec) -> list[tuple[np.ndarray, np.ndarray]]:
        out = []
        for lon, lat in split_line(self.proj, ra, dec):
            x, y = self.proj.forward_rel(lon, lat)
            good = np.isfinite(x) & np.isfinite(y)
            if good.sum() > 1:
                out.append((x[good], y[good]))
        return out

    def limits(self) -> tuple[float, float, float, float]:
        """(x0, x1, y0, y1) of the view: the whole projection, or a circle of ``radius`` about the centre."""
        if self.radius is None:
            lat = np.linspace(-90, 90, 181)
            xs, ys = [], []
            for lon in (-180.0, 180.0):
                x, y = self.proj.forward_rel(np.full_like(lat, lon), lat)
                xs.append(x)
                ys.append(y)
            x, y = np.concatenate(xs), np.concatenate(ys)
        else:
            ra0, dec0 = self.centre
            bearing = np.deg2rad(np.linspace(0, 360, 145))
            r, d0 = np.deg2rad(min(self.radius, 89.0)), np.deg2rad(dec0)
            dec = np.arcsin(np.sin(d0) * np.cos(r) + np.cos(d0) * np.sin(r) * np.cos(bearing))
            ra = ra0 + np.rad2deg(np.arctan2(np.sin(bearing) * np.sin(r) * np.cos(d0),
                                             np.cos(r) - np.sin(d0) * np.sin(dec)))
            x, y = self.proj.forward(ra, np.rad2deg(dec))
            # a circle around a pole or across the edge: keep the plane coordinates that exist
            x, y = x[np.isfinite(x)], y[np.isfinite(y)]
        pad = 0.02 * max(np.ptp(x), np.ptp(y), 1e-6)
        return float(x.min() - pad), float(x.max() + pad), float(y.min() - pad), float(y.max() + pad)

    # ---------------------------------------------------------------- drawing
    def draw(self):
        """Build the matplotlib figure (kept in ``self._fig``)."""
        from matplotlib.figure import Figure
        from matplotlib.patches import Polygon

        opt = self.options
        x0, x1, y0, y1 = self.limits()
        aspect = (y1 - y0) / max(x1 - x0, 1e-9)
        dpi = 100
        width = opt.width_px / dpi
        fig = Figure(figsize=(width, max(2.5, width * aspect * 0.9 + 0.8)), dpi=dpi, layout="constrained")
        ax = fig.add_subplot()
        self._ax = ax
        self._view = (x0, x1, y0, y1)
        self._labels: set = set()
        if opt.ebv_map:
            self._draw_ebv(fig, ax)
        self._draw_graticule(ax)
        if opt.galactic:
            from astropy.coordinates import SkyCoord
            import astropy.units as u

            l = np.linspace(0, 360, 721)
            for b, style in ((0.0, "-"), (10.0, ":"), (-10.0, ":")):
                c = SkyCoord(l=l * u.deg, b=np.full_like(l, b) * u.deg, frame="galactic").icrs
                for x, y in self.line_pieces(c.ra.deg, c.dec.deg):
                    label = "galactic plane (b = 0, $\\pm$10$\\degree$)" if b == 0 and self._visible(x, y) else None
                    ax.plot(x, y, style, color="#7b3294", lw=1.0, label=label if label not in self._labels else None)
                    self._labels.add(label)
        if opt.ecliptic:
            from astropy.coordinates import BarycentricTrueEcliptic, SkyCoord
            import astropy.units as u

            lam = np.linspace(0, 360, 721)
            c = SkyCoord(lon=lam * u.deg, lat=np.zeros_like(lam) * u.deg, frame=BarycentricTrueEcliptic).icrs
            for x, y in self.line_pieces(c.ra.deg, c.dec.deg):
                label = "ecliptic" if self._visible(x, y) and "ecliptic" not in self._labels else None
                ax.plot(x, y, "--", color="#e08214", lw=1.0, label=label)
                self._labels.add(label)
        for name, ra_a, ra_b, dec_a, dec_b in opt.boxes:
            width_ra = (ra_b - ra_a) % 360.0 or 360.0
            lon, lat = densify_lonlat([ra_a, ra_a + width_ra, ra_a + width_ra, ra_a], [dec_a, dec_a, dec_b, dec_b],
                                      step=0.25)
            for i, (x, y) in enumerate(self.pieces(lon % 360.0, lat)):
                ax.add_patch(Polygon(np.column_stack([x, y]), closed=True, fill=False, edgecolor="k", lw=1.2, ls="-."))
                if i == 0:
                    ax.text(x.max(), y.max(), f" {name}", fontsize=8, va="bottom", ha="right", clip_on=True)
        palette: dict[str, str] = {}
        seen: dict[str, str] = {}
        for fp in self.footprints:
            colour = colour_of(fp, opt.colour_by, palette)
            label_key = {"FILTER": fp.filter, "GRADE": fp.grade or "ungraded", "STATUS": fp.status or "unknown"}.get(
                opt.colour_by, "")
            pieces = self.pieces(*fp.outline())
            for x, y in pieces:
                label = label_key if label_key and label_key not in seen else None
                seen.setdefault(label_key, colour)
                ax.add_patch(Polygon(np.column_stack([x, y]), closed=True, facecolor=colour, alpha=0.35,
                                     edgecolor=colour, lw=0.6, label=label))
            self.drawn.append((fp, pieces))
        for path in opt.catalogues:
            ra, dec = read_catalogue_positions(path)
            x, y = self.proj.forward(ra, dec)
            self.catalogue_xy.append((x, y))
            ax.plot(x, y, "+", ms=4, color="k", alpha=0.7, label=f"{Path(path).name} ({len(ra)})")
        ax.set_xlim(x0, x1)
        ax.set_ylim(y0, y1)
        ax.set_aspect("equal")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_xlabel(f"right ascension (deg, east to the left; {opt.projection.lower().replace('_', ' ')} "
                      f"projection centred on RA {self.centre[0]:.4g})")
        ax.set_ylabel("declination (deg)")
        if opt.title:
            ax.set_title(opt.title, fontsize=10)
        handles, labels = ax.get_legend_handles_labels()
        if handles:
            ax.legend(fontsize=7, loc="lower right", framealpha=0.8, ncols=2 if len(handles) > 6 else 1)
        self._fig = fig
        return fig

    def _visible(self, x, y) -> bool:
        x0, x1, y0, y1 = self._view
        return bool(np.any((x > x0) & (x < x1) & (y > y0) & (y < y1)))

    def _draw_graticule(self, ax) -> None:
        if self.radius is None:  # the outline of the all-sky map: its two edge meridians
            lat = np.linspace(-90, 90, 721)
            for edge in (-180.0, 180.0):
                ax.plot(*self.proj.forward_rel(np.full_like(lat, edge), lat), color="0.3", lw=0.8, zorder=0)
        span = 360.0 if self.radius is None else 2 * self.radius
        steps = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 15, 30, 60)
        step = next(s for s in steps if span / s <= 8) if span < 360 else 30.0
        dstep = step if self.radius is not None else 30.0
        lat = np.linspace(-90, 90, 361)
        lons = np.round(np.arange(0, 360, step), 6)
        if self.radius is not None:
            lat = np.linspace(max(-90, self.centre[1] - 2 * self.radius), min(90, self.centre[1] + 2 * self.radius), 201)
            lons = lons[np.abs((lons - self.centre[0] + 180) % 360 - 180) <= 2 * self.radius / max(
                np.cos(np.deg2rad(min(abs(self.centre[1]) + self.radius, 89.0))), 0.02)]
        x0, x1, y0, y1 = self.limits()
        for lon in lons:
            for x, y in self.line_pieces(np.full_like(lat, lon), lat):
                ax.plot(x, y, color="0.75", lw=0.5, zorder=0)
                inside = (x > x0) & (x < x1) & (y > y0) & (y < y1)
                if inside.any():
                    k = np.flatnonzero(inside)[0] if self.radius is not None else np.argmin(np.abs(y))
                    ax.text(x[k], y[k], f"{lon:g}", fontsize=7, color="0.35", ha="center", va="bottom", clip_on=True)
        decs = np.round(np.arange(-90 + dstep, 90, dstep), 6)
        for dec in decs:
            if self.radius is not None and abs(dec - self.centre[1]) > 2 * self.radius:
                continue
            ra = np.linspace(0, 360, 721)
            for x, y in self.line_pieces(ra, np.full_like(ra, dec)):
                ax.plot(x, y, color="0.75", lw=0.5, zorder=0)
                inside = (x > x0) & (x < x1) & (y > y0) & (y < y1)
                if inside.any():
                    k = np.flatnonzero(inside)[np.argmax(x[inside])]
                    ax.text(x[k], y[k], f"{dec:+g}", fontsize=7, color="0.35", ha="left", va="center", clip_on=True)

    def _draw_ebv(self, fig, ax) -> None:
        sample = ebv_sampler(self.options.ebv_map)
        # a (lon, lat) mesh over the view, its resolution from the figure width (not the map's): a
        # zoomed field gets as many cells across as an all-sky view
        n = max(100, self.options.width_px // 2)
        if self.radius is None or not self.proj.all_sky and self.radius > 60:
            lon_e = np.linspace(-180, 180, n + 1)
            lat_e = np.linspace(-90, 90, n // 2 + 1)
        else:
            r = self.radius
            dlon = min(180.0, 1.5 * r / max(np.cos(np.deg2rad(min(abs(self.centre[1]) + r, 89.5))), 1e-3))
            lon_e = np.linspace(-dlon, dlon, n + 1)
            lat_e = np.linspace(max(-90, self.centre[1] - 1.5 * r), min(90, self.centre[1] + 1.5 * r), n + 1)
        lon_c = 0.5 * (lon_e[1:] + lon_e[:-1])
        lat_c = 0.5 * (lat_e[1:] + lat_e[:-1])
        lo, la = np.meshgrid(lon_c, lat_c)
        values = sample((self.centre[0] + lo) % 360.0, la)
        ex, ey = np.meshgrid(lon_e, lat_e)
        x, y = self.proj.forward_rel(ex, ey)
        self.background = (lon_e, lat_e, values)
        vmin, vmax = self.options.ebv_cuts
        mesh = ax.pcolormesh(np.nan_to_num(x), np.nan_to_num(y), np.ma.masked_invalid(values), cmap="Greys",
                             vmin=vmin, vmax=vmax, shading="flat", zorder=-1, rasterized=True)
        fig.colorbar(mesh, ax=ax, shrink=0.6, label="E(B-V) (mag)")

    def save(self, path: str | Path, fmt: str = "png") -> None:
        if self._fig is None:
            self.draw()
        self._fig.savefig(path, format=fmt)

    def image_map(self, png_name: str, name: str = "skywatcher-footprints",
                  url_template: str = "exposure/{slug}.html") -> str:
        """HTML of the PNG with a ``<map>``: one ``<area shape="poly">`` per footprint piece, linking to the
        exposure's page (``Footprint.url``, or ``url_template`` with ``{slug}``: the exposure file's stem
        made file-name safe).  Call after :meth:`save` (PNG): coordinates are the PNG's pixels."""
        from terapix_fw.web.site import slug

        if self._fig is None:
            self.draw()
        fig, ax = self._fig, self._ax
        fig.canvas.draw()
        height = fig.bbox.height
        areas = []
        for fp, pieces in self.drawn:
            url = fp.url or url_template.format(slug=slug(Path(fp.exposure).name.split(".")[0]))
            title = f"{Path(fp.exposure).name}[{fp.extension}] {fp.filter}"
            for x, y in pieces:
                disp = ax.transData.transform(np.column_stack([x, y]))
                coords = ",".join(f"{px:.0f},{height - py:.0f}" for px, py in disp)
                areas.append(f'<area shape="poly" coords="{coords}" href="{html.escape(url, quote=True)}" '
                             f'title="{html.escape(title, quote=True)}" alt="{html.escape(title, quote=True)}">')
        return (f'<img src="{html.escape(png_name, quote=True)}" usemap="#{name}" alt="sky map of the footprints">\n'
                f'<map name="{name}">\n' + "\n".join(areas) + "\n</map>\n")
