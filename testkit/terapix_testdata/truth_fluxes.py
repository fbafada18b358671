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

import json
import shutil
from pathlib import Path

import numpy as np

__all__ = ["match_truth", "true_flux_catalogs"]


def match_truth(survey: str | Path, name: str, ccd: int, x, y, radius: float = 1.0) -> np.ndarray:
    """Row in ``truth/<name>.sources.fits`` of the source nearest to each (x, y) (FITS pixels) of CCD
    ``ccd`` (0-based extension order), -1 beyond ``radius`` pixels."""
    from astropy.table import Table
    from scipy.spatial import cKDTree

    truth = Table.read(Path(survey) / "truth" / f"{name}.sources.fits")
    rows = np.flatnonzero(np.asarray(truth["CCD"]) == ccd)
    out = np.full(len(x), -1, np.int64)
    if len(rows) == 0 or len(x) == 0:
        return out
    tree = cKDTree(np.column_stack([np.asarray(truth["X"])[rows], np.asarray(truth["Y"])[rows]]))
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
