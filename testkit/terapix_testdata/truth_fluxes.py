"""Catalogues whose flux column is replaced by the true total flux of each detection's source.

A photometric solution (SCAMP's zero points) compares the fluxes of the same sources in several
exposures.  On ``galsim_survey`` data its error against the true zero points has two parts: the solver's
own, and the flux measurement's (FLUX_AUTO's Kron aperture misses a share of an untruncated Moffat's
wings that depends on the exposure's PSF; saturated stars lose more in better-seeing, undimmed
exposures).  Running the same solver on copies of the same catalogues with the true fluxes separates
the two: what remains there is the solver's.

Nothing here imports ``terapix_fw``.
"""
from __future__ import annotations

import functools
import json
import shutil
from pathlib import Path

import numpy as np

__all__ = ["match_truth", "true_flux_catalogs", "flux_bias", "zero_point_floor"]


@functools.lru_cache(maxsize=16)
def _truth_positions(path: str, mtime_ns: int) -> tuple:
    """CCD, X and Y columns of a ``truth/<name>.sources.fits``, read once per file version (callers
    match one CCD at a time: 36 reads of the same table took 1-2 s per exposure)."""
    from astropy.table import Table

    truth = Table.read(path)
    return tuple(np.asarray(truth[k]) for k in ("CCD", "X", "Y"))


def match_truth(survey: str | Path, name: str, ccd: int, x, y, radius: float = 1.0) -> np.ndarray:
    """Row in ``truth/<name>.sources.fits`` of the source nearest to each (x, y) (FITS pixels) of CCD
    ``ccd`` (0-based extension order), -1 beyond ``radius`` pixels."""
    from scipy.spatial import cKDTree

    path = Path(survey) / "truth" / f"{name}.sources.fits"
    tccd, tx, ty = _truth_positions(str(path), path.stat().st_mtime_ns)
    rows = np.flatnonzero(tccd == ccd)
    out = np.full(len(x), -1, np.int64)
    if len(rows) == 0 or len(x) == 0:
        return out
    tree = cKDTree(np.column_stack([tx[rows], ty[rows]]))
    dist, idx = tree.query(np.column_stack([x, y]), distance_upper_bound=radius)
    found = np.isfinite(dist)
    out[found] = rows[idx[found]]
    return out


def true_flux_catalogs(survey: str | Path, cats: list, outdir: str | Path, flux_key: str = "FLUX_AUTO",
                       centroid_keys: tuple = ("XWIN_IMAGE", "YWIN_IMAGE")) -> tuple[list[Path], float]:
    """Copies of the FITS_LDAC catalogues ``cats`` (one per exposure, named ``<exposure>.cat``) in
    ``outdir`` where ``flux_key`` of every detection within 1 pixel of a drawn source is that source's
    true flux in ADU; other detections (cosmic rays, spurious) keep theirs.  The flux errors are kept, so
    a solver weights the pairs as before.  Returns the catalogues and the fraction of detections
    replaced."""
    from astropy.io import fits
    from astropy.table import Table

    survey, outdir = Path(survey), Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    json.loads((survey / "truth" / "survey.json").read_text())  # a survey directory, or a clear error
    out, nrep, ntot = [], 0, 0
    for cat in cats:
        cat = Path(cat)
        name = cat.name.split(".")[0]
        truth_flux = np.asarray(Table.read(survey / "truth" / f"{name}.sources.fits")["FLUX_ADU"], float)
        dst = outdir / cat.name
        shutil.copyfile(cat, dst)
        # a copy updated in place: SCAMP 2.10 stops without a word on the same HDUs written anew by astropy
        with fits.open(dst, mode="update", memmap=False) as hdul:
            ccd = 0
            for h in hdul:
                if h.name != "LDAC_OBJECTS":
                    continue
                d = h.data
                if d is not None and len(d):
                    row = match_truth(survey, name, ccd, d[centroid_keys[0]], d[centroid_keys[1]])
                    hit = row >= 0
                    d[flux_key][hit] = truth_flux[row[hit]]
                    nrep += int(hit.sum())
                    ntot += len(d)
                ccd += 1
        out.append(dst)
    return out, nrep / max(ntot, 1)


def flux_bias(survey: str | Path, cat: str | Path, flux_key: str = "FLUX_AUTO",
              centroid_keys: tuple = ("XWIN_IMAGE", "YWIN_IMAGE")) -> dict:
    """The flux measurement's error on the detections of one exposure's catalogue (``<exposure>.cat``) that a
    photometric solver uses (S/N > 10, FLAGS & 0xfc = 0, FLAGS_WEIGHT = 0) and that match a drawn source:
    arrays ``id`` (truth ID), ``bias`` (-2.5 log10(flux / true flux), mag), ``err`` (magnitude error with
    SCAMP's 0.1% floor), ``snr`` and ``star``."""
    from astropy.io import fits
    from astropy.table import Table

    survey, cat = Path(survey), Path(cat)
    name = cat.name.split(".")[0]
    truth = Table.read(survey / "truth" / f"{name}.sources.fits")
    tflux = np.asarray(truth["FLUX_ADU"], float)
    tid = np.asarray(truth["ID"])
    star = np.asarray(truth["TYPE"]) == 0
    err_key = flux_key.replace("FLUX", "FLUXERR", 1)
    cols = {k: [] for k in ("id", "bias", "err", "snr", "star")}
    with fits.open(cat) as hdul:
        for ccd, h in enumerate([h for h in hdul if h.name == "LDAC_OBJECTS"]):
            d = h.data
            if d is None or not len(d):
                continue
            f = np.asarray(d[flux_key], float).reshape(len(d), -1)[:, 0]
            fe = np.asarray(d[err_key], float).reshape(len(d), -1)[:, 0]
            with np.errstate(divide="ignore", invalid="ignore"):
                sn = f / fe
            ok = (f > 0) & (sn > 10) & ((np.asarray(d["FLAGS"]) & 0xFC) == 0)
            if "FLAGS_WEIGHT" in d.names:
                ok &= np.asarray(d["FLAGS_WEIGHT"]) == 0
            row = match_truth(survey, name, ccd, d[centroid_keys[0]], d[centroid_keys[1]])
            ok &= row >= 0
            cols["id"].append(tid[row[ok]])
            cols["bias"].append(-2.5 * np.log10(f[ok] / tflux[row[ok]]))
            cols["err"].append(np.hypot(1.0857 / sn[ok], 1.0857e-3))
            cols["snr"].append(sn[ok])
            cols["star"].append(star[row[ok]])
    return {k: np.concatenate(v) if v else np.zeros(0) for k, v in cols.items()}


def zero_point_floor(survey: str | Path, cats: list, flux_key: str = "FLUX_AUTO") -> dict:
    """What the fluxes alone do to the zero point of each non-photometric exposure: a solver that makes the
    fluxes of the same sources agree with the photometric exposure of the filter is off by that exposure's
    bias minus this one's.  Per exposure name: ``bright`` and ``stars`` (median over the stars both
    exposures use, S/N > 100 in both and all), ``weighted`` (mean over every common source weighted as
    SCAMP weights a pair, 1 / (e_1 + e_2 + 0.01^2)) and ``n`` (common sources); mag, signed as
    :func:`terapix_testdata.galsim_survey.zeropoint_error`."""
    survey = Path(survey)
    summary = json.loads((survey / "truth" / "survey.json").read_text())
    per = {Path(c).name.split(".")[0]: flux_bias(survey, c, flux_key) for c in cats}
    exps = [e for e in summary["exposures"] if e["name"] in per]
    phot = {e["filter"]: per[e["name"]] for e in exps if e["photometric"]}
    out = {}
    for e in exps:
        p, r = per[e["name"]], phot.get(e["filter"])
        if e["photometric"] or r is None:
            continue
        common, i, j = np.intersect1d(p["id"], r["id"], return_indices=True)
        diff = r["bias"][j] - p["bias"][i]
        stars = p["star"][i] & r["star"][j]
        bright = stars & (np.minimum(p["snr"][i], r["snr"][j]) > 100)
        w = 1.0 / (p["err"][i] + r["err"][j] + 1e-4)
        out[e["name"]] = {"bright": float(np.median(diff[bright])) if bright.any() else float("nan"),
                          "stars": float(np.median(diff[stars])) if stars.any() else float("nan"),
                          "weighted": float(np.sum(w * diff) / np.sum(w)) if len(w) else float("nan"),
                          "n": int(len(common))}
    return out
