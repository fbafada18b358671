"""How far the demo's astrometry is from the simulator's truth: SCAMP's solution (``scamp/<exposure>.head``)
and, for contrast, the first-guess WCS of the raw headers, both against ``raw/truth/<exposure>.wcs.truth``,
on a 5x5 grid of pixel positions of every CCD.

    python benchmarks/demo_astrometry.py demo_work
"""
from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

import numpy as np


def separations(header_a, header_b, nx: int, ny: int, n: int = 5) -> np.ndarray:
    """Angular distances (arcsec) between two WCS at an n x n grid of pixel positions."""
    from astropy.wcs import WCS, FITSFixedWarning
    gx, gy = np.meshgrid(np.linspace(1, nx, n), np.linspace(1, ny, n))
    out = []
    for h in (header_a, header_b):
        full = h.copy()
        full["NAXIS"], full["NAXIS1"], full["NAXIS2"] = 2, nx, ny
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FITSFixedWarning)
            out.append(WCS(full).all_pix2world(gx.ravel(), gy.ravel(), 1))
    (ra1, dec1), (ra2, dec2) = out
    from terapix_fw.db.query import angular_distance
    return angular_distance(ra1, dec1, ra2, dec2) * 3600.0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("workdir", help="the demo's work directory (raw/, scamp/)")
    args = ap.parse_args(argv)
    from astropy.io import fits

    from terapix_fw.headfile import apply_head, read_head_file
    work = Path(args.workdir)
    solved, guess = [], []
    nexp = 0
    for head_path in sorted((work / "scamp").glob("*.head")):
        stem = head_path.stem
        raw, truth = work / "raw" / f"{stem}.fits", work / "raw" / "truth" / f"{stem}.wcs.truth"
        if not (raw.exists() and truth.exists()):
            continue
        nexp += 1
        with fits.open(raw) as hdul:
            for hdu, head, true in zip(hdul[1:], read_head_file(head_path), read_head_file(truth)):
                nx, ny = hdu.header["NAXIS1"], hdu.header["NAXIS2"]
                sol = hdu.header.copy()
                apply_head(sol, head)
                ref = hdu.header.copy()
                apply_head(ref, true)
                solved.append(separations(sol, ref, nx, ny))
                guess.append(separations(hdu.header, ref, nx, ny))
    if not solved:
        print(f"no SCAMP .head with its truth under {work}")
        return 1
    s, g = np.concatenate(solved), np.concatenate(guess)
    print(f"{nexp} exposures, {len(solved)} CCDs, 5x5 grid each")
    print(f"first guess (raw headers) vs truth: median {np.median(g):.2f}\"  max {g.max():.2f}\"")
    print(f"SCAMP solution vs truth:            rms {np.sqrt(np.mean(s ** 2)):.3f}\"  "
          f"median {np.median(s):.3f}\"  max {s.max():.3f}\"")
    return 0


if __name__ == "__main__":
    sys.exit(main())
