"""A seeded corpus of damaged and unusual FITS files, made at test time (never committed).

Made with numpy and astropy only, never with terapix-fw: the files are what an archive may hold, not
what the framework's own writer produces.  :func:`make_corpus` writes a few hundred small files into a
directory and returns one :class:`Case` per file, grouped in the case classes of issue 13:

``valid``            every flavour a reader must accept: BITPIX 8/16/32/64/-32/-64, unsigned 16/32-bit
                     (BZERO), BLANK, RICE/GZIP/HCOMPRESS tile compression (``.fits.fz``), ``.fits.gz``,
                     MEF with and without an empty primary, little-endian arrays written by astropy
                     (stored big-endian, as FITS requires)
``truncated``        cut inside the header or the data
``header_bytes``     random bytes of the header replaced (ASCII or binary)
``wrong_bitpix``     BITPIX invalid, or valid but inconsistent with the data size
``naxis_zero``       an axis of length 0 (``512x0``), NAXIS = 0 (no image at all)
``huge_naxis``       NAXISn claiming gigapixels in a file of a few kB
``missing_end``      no END card
``nan_inf``          blocks, rows and columns of NaN, +inf, -inf in a good image; an all-NaN image
``flat``             all-zero and constant images
``tiny``             1x1, 3x3, 1xN and Nx1 images
``many_extensions``  thousands of tiny extensions (a structure no camera writes), and 64
``extname``          EXTNAME missing, duplicated, numeric or odd; selection of an absent EXTNAME
``broken_wcs``       CRVAL2 outside [-90, 90], singular CD matrix, unknown projection or axis
``bad_gain``         GAIN < 0, GAIN = 0 (SExtractor: infinite gain), GAIN not a number
``bad_saturate``     SATURATE <= 0
``bad_exptime``      EXPTIME <= 0
``ldac``             FITS_LDAC catalogues: good, empty (zero rows), truncated, damaged table header

Each case carries ``selector`` (an extension to select, ``image.fits[...]``) when the case is about it,
and ``control``: the name of the ``valid`` case holding the same pixels (a tool must give the same
result on both) or None.
"""
from __future__ import annotations

import gzip
import io
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

__all__ = ["Case", "CLASSES", "make_corpus", "base_image", "base_header"]

CLASSES = ("valid", "truncated", "header_bytes", "wrong_bitpix", "naxis_zero", "huge_naxis", "missing_end",
           "nan_inf", "flat", "tiny", "many_extensions", "extname", "broken_wcs", "bad_gain", "bad_saturate",
           "bad_exptime", "ldac")

#: size of the good images (small: every tool runs on every file in the test)
NX, NY = 96, 80


@dataclass
class Case:
    name: str
    klass: str
    path: Path
    selector: str | None = None
    control: str | None = None
    note: str = ""
    meta: dict = field(default_factory=dict)

    @property
    def argument(self) -> str:
        """The input as given on a command line (``file.fits[ccd10]`` for a selection)."""
        return f"{self.path}[{self.selector}]" if self.selector else str(self.path)


def base_header(ra=150.0, dec=2.2):
    """A small camera-like header: TAN WCS (0.186"/pixel), GAIN, SATURATE, EXPTIME, FILTER, zero point."""
    from astropy.io import fits

    h = fits.Header()
    for key, value in (("CTYPE1", "RA---TAN"), ("CTYPE2", "DEC--TAN"), ("CRVAL1", ra), ("CRVAL2", dec),
                       ("CRPIX1", NX / 2 + 0.5), ("CRPIX2", NY / 2 + 0.5), ("CD1_1", -0.186 / 3600),
                       ("CD1_2", 0.0), ("CD2_1", 0.0), ("CD2_2", 0.186 / 3600), ("EQUINOX", 2000.0),
                       ("RADESYS", "ICRS"), ("GAIN", 1.6), ("RDNOISE", 5.0), ("SATURATE", 60000.0),
                       ("EXPTIME", 300.0), ("FILTER", "r"), ("MAGZP", 30.0), ("AIRMASS", 1.2),
                       ("MJD-OBS", 52640.3), ("OBJECT", "FUZZ")):
        h[key] = value
    return h


def base_image(seed: int, nx: int = NX, ny: int = NY, nstars: int = 14):
    """Sky of 1000 ADU with Poisson-like noise and ``nstars`` Gaussian stars (FWHM ~3.5 px), integer-valued
    (so that every BITPIX stores the same pixels exactly), in [0, 65535]."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:ny, 0:nx]
    img = np.full((ny, nx), 1000.0)
    sigma = 1.5
    for _ in range(nstars):
        x, y = rng.uniform(8, nx - 8), rng.uniform(8, ny - 8)
        flux = 10 ** rng.uniform(3.5, 5.0)
        img += flux / (2 * np.pi * sigma ** 2) * np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * sigma ** 2))
    img += rng.normal(0.0, 1.0, img.shape) * np.sqrt(img / 1.6)
    return np.clip(np.rint(img), 0, 65535)


def _bytes(hdul) -> bytearray:
    buf = io.BytesIO()
    hdul.writeto(buf)
    return bytearray(buf.getvalue())


def _replace_card(raw: bytearray, key: str, value: str, which: int = 0) -> bytearray:
    """Replace the value field of header card ``key`` (its ``which``-th occurrence) by ``value``."""
    raw = bytearray(raw)
    target = key.encode().ljust(8)
    pos, seen = 0, 0
    while True:
        pos = raw.find(target, pos)
        if pos < 0:
            raise KeyError(key)
        if pos % 80 == 0 and raw[pos + 8:pos + 10] == b"= ":
            if seen == which:
                break
            seen += 1
        pos += 80
    raw[pos + 10:pos + 80] = value.encode().rjust(20).ljust(70)
    return raw


class _Corpus:
    def __init__(self, outdir: Path, seed: int):
        self.out = Path(outdir)
        self.out.mkdir(parents=True, exist_ok=True)
        self.rng = np.random.default_rng(seed)
        self.seed = seed
        self.cases: list[Case] = []

    def add(self, name, klass, data: bytes | bytearray, suffix=".fits", **kw) -> Case:
        path = self.out / f"{klass}-{name}{suffix}"
        path.write_bytes(bytes(data))
        case = Case(name=f"{klass}/{name}", klass=klass, path=path, **kw)
        self.cases.append(case)
        return case


def _mef(images, headers=None, empty_primary=True, names=None):
    from astropy.io import fits

    headers = headers or [base_header(150.0 + 0.01 * k) for k in range(len(images))]
    hdus = [fits.PrimaryHDU()] if empty_primary else [fits.PrimaryHDU(images[0], headers[0])]
    rest = list(zip(images, headers))[0 if empty_primary else 1:]
    for k, (img, h) in enumerate(rest):
        hdus.append(fits.ImageHDU(img, h, name=(names[k] if names else f"ccd{k:02d}")))
    return fits.HDUList(hdus)


def make_corpus(outdir: str | Path, seed: int = 13) -> list[Case]:
    """Write the corpus into ``outdir`` (deterministic for a seed) and return its cases."""
    from astropy.io import fits

    c = _Corpus(Path(outdir), seed)
    rng = c.rng
    pix = [base_image(seed + k) for k in range(2)]
    f32 = [p.astype(np.float32) for p in pix]

    # ---- valid flavours: the same pixels (control: valid/f32-mef) ---------------------------------------
    control = "valid/f32-mef"
    c.add("f32-mef", "valid", _bytes(_mef(f32)))
    c.add("f32-single", "valid", _bytes(fits.HDUList([fits.PrimaryHDU(f32[0], base_header())])))
    c.add("f64-mef", "valid", _bytes(_mef([p.astype(np.float64) for p in pix])), control=control)
    c.add("f32-little-endian", "valid", _bytes(_mef([p.astype("<f4") for p in pix])), control=control)
    c.add("u16-bzero-mef", "valid", _bytes(_mef([p.astype(np.uint16) for p in pix])), control=control)
    c.add("i16-mef", "valid", _bytes(_mef([(p - 1000).astype(np.int16) for p in pix])),
          note="pixels - 1000 as int16 (negative values)")
    c.add("i32-mef", "valid", _bytes(_mef([p.astype(np.int32) for p in pix])), control=control)
    c.add("u32-bzero-mef", "valid", _bytes(_mef([p.astype(np.uint32) for p in pix])), control=control)
    c.add("i64-mef", "valid", _bytes(_mef([p.astype(np.int64) for p in pix])), control=control)
    c.add("u8-bscale-mef", "valid", _bytes(_mef([np.clip(p / 256.0, 0, 255).astype(np.uint8) for p in pix])),
          note="8-bit, not comparable")
    no_empty = _mef(f32, empty_primary=False)
    c.add("f32-primary-image-plus-extension", "valid", _bytes(no_empty), control=control)
    blank = _mef([p.astype(np.int16) for p in pix])
    for hdu in blank[1:]:
        hdu.data[10:14, 20:30] = -32768
        hdu.header["BLANK"] = -32768
    c.add("i16-blank", "valid", _bytes(blank), note="a BLANK block")
    for comp in ("RICE_1", "GZIP_1", "GZIP_2", "HCOMPRESS_1"):
        hl = fits.HDUList([fits.PrimaryHDU()] + [fits.CompImageHDU(p.astype(np.uint16), base_header(150.0 + 0.01 * k),
                                                                    compression_type=comp, name=f"ccd{k:02d}")
                                                 for k, p in enumerate(pix)])
        c.add(f"u16-{comp.lower()}", "valid", _bytes(hl), suffix=".fits.fz", control=control)
    c.add("f32-gzip-file", "valid", gzip.compress(bytes(_bytes(_mef(f32))), mtime=0), suffix=".fits.gz",
          control=control)
    c.add("u16-by-extname", "valid", _bytes(_mef([p.astype(np.uint16) for p in pix])), selector="ccd01")
    c.add("u16-by-number", "valid", _bytes(_mef([p.astype(np.uint16) for p in pix])), selector="2")

    good = _bytes(_mef(f32))
    single = _bytes(fits.HDUList([fits.PrimaryHDU(f32[0], base_header())]))

    # ---- truncated ----------------------------------------------------------------------------------
    for k, cut in enumerate(sorted(rng.choice(np.arange(100, len(good) - 100), 22, replace=False))):
        c.add(f"cut{k:02d}-at-{cut}", "truncated", good[:cut])
    c.add("cut-at-header-boundary", "truncated", good[:2880])
    data_end = len(good) - (-(NX * NY * 4) % 2880)  # the last byte of the last CCD's pixels
    c.add("cut-one-pixel-byte-short", "truncated", good[:data_end - 1])

    # ---- random header bytes ------------------------------------------------------------------------
    hdr_end = good.find(b"END" + b" " * 77, 2880) + 80  # within the first extension's header
    for k in range(56):
        raw = bytearray(good)
        n = int(rng.integers(1, 9))
        where = rng.integers(0, hdr_end, n)
        if k % 2:
            raw_vals = rng.integers(0, 256, n)  # binary bytes
        else:
            raw_vals = rng.choice(np.frombuffer(b"0123456789 =-+.'ETAXN/", np.uint8), n)
        for w, v in zip(where, raw_vals):
            raw[int(w)] = int(v)
        c.add(f"seed{k:02d}", "header_bytes", raw, meta={"nimages": 2})  # if readable: the 2 CCDs of ``good``

    # ---- wrong BITPIX (invalid, or valid but inconsistent with the data) -----------------------------
    for k, value in enumerate(["12", "-16", "0", "'abc'", "16", "8", "-64", "64", "T"]):
        c.add(f"bitpix-{k}-{value.strip(chr(39))}", "wrong_bitpix", _replace_card(single, "BITPIX", value))

    # ---- NAXISn = 0 ---------------------------------------------------------------------------------
    c.add("naxis2-zero", "naxis_zero", _replace_card(single, "NAXIS2", "0")[:2880 * 2])
    c.add("naxis1-zero", "naxis_zero", _replace_card(single, "NAXIS1", "0")[:2880 * 2])
    c.add("ext-naxis2-zero", "naxis_zero", _replace_card(good, "NAXIS2", "0", which=1))
    c.add("primary-only", "naxis_zero", _bytes(fits.HDUList([fits.PrimaryHDU(header=base_header())])))
    c.add("naxis-negative", "naxis_zero", _replace_card(single, "NAXIS1", "-96"))

    # ---- huge NAXIS in a tiny file --------------------------------------------------------------------
    for k, (key, value) in enumerate([("NAXIS1", "2147483647"), ("NAXIS2", "1000000000"),
                                      ("NAXIS1", "99999999999999")]):
        c.add(f"huge-{k}-{key.lower()}", "huge_naxis", _replace_card(single, key, value))

    # ---- missing END -------------------------------------------------------------------------------
    raw = bytearray(single)
    end = raw.find(b"END" + b" " * 77)
    raw[end:end + 3] = b"   "
    c.add("single-no-end", "missing_end", raw)
    raw = bytearray(good)
    end = raw.find(b"END" + b" " * 77, 2880)
    raw[end:end + 3] = b"   "
    c.add("ext1-no-end", "missing_end", raw)

    # ---- NaN / inf -----------------------------------------------------------------------------------
    for k, (what, fill) in enumerate([("nan-block", np.nan), ("inf-block", np.inf), ("neginf-block", -np.inf)]):
        imgs = [p.copy() for p in f32]
        for img in imgs:
            img[20:40, 30:60] = fill
        c.add(what, "nan_inf", _bytes(_mef(imgs)), meta={"masked": (slice(20, 40), slice(30, 60))})
    imgs = [p.copy() for p in f32]
    for img in imgs:
        img[:, 5] = np.nan
        img[7, :] = np.inf
    c.add("nan-column-inf-row", "nan_inf", _bytes(_mef(imgs)))
    imgs = [p.copy() for p in f32]
    for img in imgs:
        img[:, : NX // 2] = np.nan
    c.add("half-nan", "nan_inf", _bytes(_mef(imgs)))
    c.add("all-nan", "nan_inf", _bytes(_mef([np.full((NY, NX), np.nan, np.float32)] * 2)),
          meta={"unmeasurable": True})
    speckle = [p.copy() for p in f32]
    for img in speckle:
        img[rng.random(img.shape) < 0.02] = np.nan
    c.add("nan-speckle", "nan_inf", _bytes(_mef(speckle)))

    # ---- flat images ---------------------------------------------------------------------------------
    c.add("all-zero", "flat", _bytes(_mef([np.zeros((NY, NX), np.float32)] * 2)), meta={"unmeasurable": True})
    c.add("constant-1000", "flat", _bytes(_mef([np.full((NY, NX), 1000.0, np.float32)] * 2)),
          meta={"unmeasurable": True})
    c.add("constant-u16", "flat", _bytes(_mef([np.full((NY, NX), 1000, np.uint16)] * 2)),
          meta={"unmeasurable": True})
    c.add("single-all-zero", "flat", _bytes(fits.HDUList([fits.PrimaryHDU(np.zeros((NY, NX), np.float32),
                                                                           base_header())])),
          meta={"unmeasurable": True})

    # ---- tiny images ---------------------------------------------------------------------------------
    for shape in ((1, 1), (3, 3), (1, 100), (100, 1), (2, 2), (5, 7)):
        img = base_image(seed + 5, nx=shape[1], ny=shape[0], nstars=0).astype(np.float32)
        h = base_header()
        h["CRPIX1"], h["CRPIX2"] = shape[1] / 2, shape[0] / 2
        c.add(f"{shape[1]}x{shape[0]}", "tiny", _bytes(fits.HDUList([fits.PrimaryHDU(img, h)])),
              meta={"unmeasurable": True})

    # ---- many extensions -----------------------------------------------------------------------------
    tiny = np.zeros((2, 2), np.float32)
    small_header = fits.Header({"EXTNAME": "x"})
    one = _bytes(fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(tiny, small_header)]))[2880:]
    c.add("2000-tiny", "many_extensions", _bytes(fits.HDUList([fits.PrimaryHDU()])) + one * 2000,
          meta={"unmeasurable": True})
    c.add("64-tiny", "many_extensions", _bytes(fits.HDUList([fits.PrimaryHDU()])) + one * 64,
          meta={"unmeasurable": True})

    # ---- EXTNAME -------------------------------------------------------------------------------------
    hl = _mef(f32)
    for hdu in hl[1:]:
        del hdu.header["EXTNAME"]
    c.add("missing", "extname", _bytes(hl), control=control)
    c.add("duplicate", "extname", _bytes(_mef(f32, names=["ccd07", "ccd07"])), control=control)
    c.add("odd-characters", "extname", _bytes(_mef(f32, names=["CCD #1 [amp A]", "ccd/../../etc"])),
          control=control)
    c.add("numeric", "extname", _replace_card(good, "EXTNAME", "42"), control=control)
    c.add("select-absent", "extname", _bytes(_mef(f32)), selector="ccd99")
    c.add("select-duplicate", "extname", _bytes(_mef(f32, names=["ccd07", "ccd07"])), selector="ccd07")
    c.add("select-out-of-range", "extname", _bytes(_mef(f32)), selector="7")

    # ---- broken WCS ----------------------------------------------------------------------------------
    for name, cards in [("crval2-95", {"CRVAL2": 95.0}), ("crval2-minus120", {"CRVAL2": -120.0}),
                        ("cd-zero", {"CD1_1": 0.0, "CD2_2": 0.0}),
                        ("cd-first-row-zero", {"CD1_1": 0.0, "CD1_2": 0.0}),
                        ("cd-rank-one", {"CD1_1": 1e-5, "CD1_2": 1e-5, "CD2_1": 1e-5, "CD2_2": 1e-5}),
                        ("ctype-unknown-projection", {"CTYPE1": "RA---XYZ", "CTYPE2": "DEC--XYZ"}),
                        ("ctype-unknown-axis", {"CTYPE1": "FOO--TAN"})]:
        headers = [base_header(150.0 + 0.01 * k) for k in range(2)]
        for h in headers:
            h.update(cards)
        c.add(name, "broken_wcs", _bytes(_mef(f32, headers)), meta={"keyword": sorted(cards)[0]})

    # ---- header values: GAIN, SATURATE, EXPTIME ------------------------------------------------------
    for klass, key, values in [("bad_gain", "GAIN", ["-1.0", "0.0", "'fast'"]),
                               ("bad_saturate", "SATURATE", ["0.0", "-5.0"]),
                               ("bad_exptime", "EXPTIME", ["0.0", "-10.0"])]:
        for value in values:
            raw = _replace_card(good, key, value, which=0)
            raw = _replace_card(raw, key, value, which=1)
            c.add(f"{key.lower()}={value.strip(chr(39))}", klass, raw, meta={"keyword": key, "value": value})

    # ---- FITS_LDAC catalogues ------------------------------------------------------------------------
    ldac = _ldac_bytes(rng, 40)
    c.add("good", "ldac", ldac, suffix=".ldac")
    c.add("zero-rows", "ldac", _ldac_bytes(rng, 0), suffix=".ldac", meta={"unmeasurable": True})
    c.add("truncated", "ldac", ldac[: len(ldac) - 3000], suffix=".ldac")
    c.add("tform-damaged", "ldac", _replace_card(ldac, "TFORM2", "'9Q'", which=0), suffix=".ldac")
    return c.cases


def _ldac_bytes(rng, n: int) -> bytearray:
    """A FITS_LDAC catalogue (LDAC_IMHEAD + LDAC_OBJECTS) of ``n`` stars with the columns SCAMP and PSFEx
    read, written with astropy only."""
    from astropy.io import fits

    head = base_header()
    head["NAXIS"], head["NAXIS1"], head["NAXIS2"] = 2, NX, NY
    head["BITPIX"] = -32
    text = "".join(card.image for card in head.cards) + "END".ljust(80)
    ncards = len(text) // 80
    # the table built from raw bytes, blanks kept (astropy would write trailing blanks as NULs)
    table = fits.Header()
    for key, value in (("XTENSION", "BINTABLE"), ("BITPIX", 8), ("NAXIS", 2), ("NAXIS1", len(text)),
                       ("NAXIS2", 1), ("PCOUNT", 0), ("GCOUNT", 1), ("TFIELDS", 1),
                       ("TTYPE1", "Field Header Card"), ("TFORM1", f"{len(text)}A"),
                       ("TDIM1", f"(80, {ncards})"), ("EXTNAME", "LDAC_IMHEAD")):
        table[key] = value
    data = text.encode("ascii") + b"\0" * (-len(text) % 2880)
    imhead = fits.BinTableHDU.fromstring(table.tostring().encode("ascii") + data)
    x, y = rng.uniform(10, NX - 10, n), rng.uniform(10, NY - 10, n)
    flux = 10 ** rng.uniform(3.5, 5.0, n)
    yy, xx = np.mgrid[0:35, 0:35]
    vign = np.array([f / (2 * np.pi * 2.25) * np.exp(-((xx - 17) ** 2 + (yy - 17) ** 2) / 4.5) for f in flux],
                    np.float32).reshape(n, 35, 35)
    ra = 150.0 - (x - NX / 2) * 0.186 / 3600
    dec = 2.2 + (y - NY / 2) * 0.186 / 3600
    cols = [fits.Column("NUMBER", "J", array=np.arange(1, n + 1)),
            fits.Column("X_IMAGE", "E", array=x), fits.Column("Y_IMAGE", "E", array=y),
            fits.Column("XWIN_IMAGE", "D", array=x), fits.Column("YWIN_IMAGE", "D", array=y),
            fits.Column("ERRAWIN_IMAGE", "E", array=np.full(n, 0.02)),
            fits.Column("ERRBWIN_IMAGE", "E", array=np.full(n, 0.02)),
            fits.Column("ERRTHETAWIN_IMAGE", "E", array=np.zeros(n)),
            fits.Column("XWIN_WORLD", "D", array=ra), fits.Column("YWIN_WORLD", "D", array=dec),
            fits.Column("ERRAWIN_WORLD", "E", array=np.full(n, 1e-6)),
            fits.Column("ERRBWIN_WORLD", "E", array=np.full(n, 1e-6)),
            fits.Column("ERRTHETAWIN_WORLD", "E", array=np.zeros(n)),
            fits.Column("FLUX_AUTO", "E", array=flux), fits.Column("FLUXERR_AUTO", "E", array=np.sqrt(flux)),
            fits.Column("MAG_AUTO", "E", array=30 - 2.5 * np.log10(flux)),
            fits.Column("MAGERR_AUTO", "E", array=1.0857 / np.sqrt(flux)),
            fits.Column("FLUX_APER", "E", array=flux), fits.Column("FLUXERR_APER", "E", array=np.sqrt(flux)),
            fits.Column("FLUX_RADIUS", "E", array=np.full(n, 1.8)),
            fits.Column("ELONGATION", "E", array=np.full(n, 1.02)),
            fits.Column("FLAGS", "I", array=np.zeros(n, np.int16)),
            fits.Column("FLAGS_WEIGHT", "I", array=np.zeros(n, np.int16)),
            fits.Column("SNR_WIN", "E", array=np.sqrt(flux)),
            fits.Column("VIGNET", "1225E", dim="(35, 35)", array=vign)]
    objects = fits.BinTableHDU.from_columns(cols, name="LDAC_OBJECTS")
    return _bytes(fits.HDUList([fits.PrimaryHDU(), imhead, objects]))
