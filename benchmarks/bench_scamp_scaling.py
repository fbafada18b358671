"""Benchmark: scaling of the scamp plugin's global solution to many exposures.

For 100, 500 and 2,000 synthetic MegaCam exposures (36 CCDs of 2048x4612 px, 0.186"/px, pointings
spread so that every sky point is covered ~8 times, one astrometric and one photometric instrument),
detections are generated in memory (no catalogue I/O, no pattern matching: those are per exposure and
linear, see bench_scamp.py) and the global astrometric solution (cross-identification, 3 solve/clip
iterations) plus the photometric solution are run in a fresh process.  Printed: wall time and peak
resident memory, and the extrapolation to the seeds' figure of 2,000 exposures x 30,000 detections:
the normal matrix depends only on the number of exposures (measured exactly), everything else grows
linearly with the number of detections.

    python benchmarks/bench_scamp_scaling.py --sizes 100,500,2000 --ndet 3000
"""
from __future__ import annotations

import argparse
import json
import logging
import resource
import subprocess
import sys
import time

import numpy as np


def one(nexp: int, ndet: int, seed: int = 1, sparse: bool = False) -> dict:
    from terapix_scamp.astrom import Detections, solve_astrometry
    from terapix_scamp.catalogs import Chip, Field
    from terapix_scamp.photom import solve_photometry
    from terapix_scamp.pipeline import _build_model
    from terapix_scamp.sky import deproject, project
    from terapix_scamp.tool import ScampTool

    log = logging.getLogger("bench")
    base_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 ** 2  # after imports
    rng = np.random.default_rng(seed)
    t0 = time.time()
    nx, ny, gap, pix = 2048, 4612, 70.0, 0.186 / 3600
    ncol, nrow = 9, 4
    width, height = ncol * nx + (ncol - 1) * gap, nrow * ny + (nrow - 1) * gap
    side = np.sqrt(nexp * (width * pix) * (height * pix) / 8.0)  # deg, mean coverage 8
    center = (150.0, 2.0)
    # sky sources: density giving ~ndet detections per exposure (MegaCam ~1 deg^2)
    area = (side + 1.2) ** 2
    nsrc = int(ndet / ((width * pix) * (height * pix)) * area)
    sxi = rng.uniform(-(side + 1.2) / 2, (side + 1.2) / 2, nsrc)
    seta = rng.uniform(-(side + 1.2) / 2, (side + 1.2) / 2, nsrc)
    sra, sdec = deproject(sxi, seta, *center)
    snr_src = 10 * 10 ** rng.uniform(0, 2.5, nsrc)
    order = np.argsort(sxi)
    sxi_sorted = sxi[order]
    fields, parts = [], []
    pointings = rng.uniform(-side / 2, side / 2, (nexp, 2))
    for k in range(nexp):
        pra, pdec = deproject(pointings[k, 0], pointings[k, 1], *center)
        lo, hi = np.searchsorted(sxi_sorted, [pointings[k, 0] - 0.8, pointings[k, 0] + 0.8])
        cand = order[lo:hi]
        cand = cand[np.abs(seta[cand] - pointings[k, 1]) < 0.8]
        xi, eta = project(sra[cand], sdec[cand], pra, pdec)
        u = -xi / pix + width / 2
        v = eta / pix + height / 2
        col = np.floor(u / (nx + gap)).astype(int)
        row = np.floor(v / (ny + gap)).astype(int)
        x = u - col * (nx + gap) + 1
        y = v - row * (ny + gap) + 1
        ok = (col >= 0) & (col < ncol) & (row >= 0) & (row < nrow) & (x > 1) & (x < nx) & (y > 1) & (y < ny)
        idx = cand[ok]
        chip = (row[ok] * ncol + col[ok]).astype(np.int64)
        n = len(idx)
        snr = snr_src[idx]
        sig_pix = 0.8 / snr + 0.02
        xo = x[ok] + rng.normal(0, 1, n) * sig_pix
        yo = y[ok] + rng.normal(0, 1, n) * sig_pix
        # first guess: the truth shifted by ~1", in the exposure's tangent plane
        shift = rng.normal(0, 1.0 / 3600, 2)
        f = Field(path=__import__("pathlib").Path(f"exp{k:04d}.cat"),
                  chips=[Chip(c, None, nx, ny) for c in range(36)], index=k)
        f.astr_key = f.phot_key = "FILTER=r"
        f.photflag = k % 10 == 0
        fields.append(f)
        flux = snr * 100.0 * 10 ** (-0.4 * rng.normal(0, 0.05))
        # the solver's storage types (Detections.DTYPES) from the start: 60 M detections must fit
        parts.append(dict(field=np.full(n, k, np.int32), chip=chip.astype(np.int16), x=xo, y=yo,
                          sig=(np.hypot(sig_pix, 0.01) * pix).astype(np.float32), snr=snr.astype(np.float32),
                          flux=flux.astype(np.float32), fluxerr=(flux / snr).astype(np.float32),
                          xi0=xi[ok] + shift[0], eta0=eta[ok] + shift[1]))
    del sra, sdec, snr_src, order, sxi_sorted
    # column by column, each exposure's piece freed as soon as copied: never two copies of everything
    cat = {key: np.concatenate([p.pop(key) for p in parts]) for key in list(parts[0])}
    ntot = len(cat["x"])
    det = Detections(field=cat["field"], chip=cat["chip"], x=cat["x"], y=cat["y"], sig=cat["sig"], snr=cat["snr"],
                     astr_ok=np.ones(ntot, bool), phot_ok=np.ones(ntot, bool), flux=cat["flux"],
                     fluxerr=cat["fluxerr"], xi0=cat["xi0"], eta0=cat["eta0"], group=np.zeros(ntot, np.int32))
    del parts, cat
    field_tp = np.array([deproject(pointings[k, 0], pointings[k, 1], *center) for k in range(nexp)])
    group_tp = np.array([center])
    bright = rng.uniform(size=nsrc) < 0.1
    refs = [(sxi[bright] + rng.normal(0, 0.03 / 3600, bright.sum()),
             seta[bright] + rng.normal(0, 0.03 / 3600, bright.sum()), np.full(bright.sum(), 0.03 / 3600))]
    config = ScampTool.parameter_set().resolve([])
    model = _build_model(fields, [f.astr_key for f in fields], det, config)
    t_setup = time.time() - t0
    t1 = time.time()
    # --sparse: the block-sparse normal equations (scipy.sparse) whatever the size
    astrom = solve_astrometry(det, model, field_tp, group_tp, refs, config, log, niter=3,
                              sparse_above=0 if sparse else None)
    t_astrom = time.time() - t1
    t2 = time.time()
    solve_photometry(det, astrom.labels, fields, config, log)
    t_photom = time.time() - t2
    # the dense-matrix part alone: one Cholesky of the final size, done niter + 1 times by the solver
    from scipy import linalg

    nparam = model.nparam
    a = np.eye(nparam) * 2.0 + 1e-3
    t3 = time.time()
    linalg.cho_factor(a, overwrite_a=True, check_finite=False)
    t_chol = time.time() - t3
    del a
    return {"nexp": nexp, "ndet_per_exp": ntot / nexp, "ndet": ntot, "nparam": nparam, "setup": t_setup,
            "astrom": t_astrom, "photom": t_photom, "cholesky": t_chol,
            "nlinks": int(astrom.link_ok.sum()), "nref": int(astrom.ref_ok.sum()),
            "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 ** 2, "base_rss_gb": base_rss}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="100,500,2000")
    parser.add_argument("--ndet", type=int, default=3000, help="detections per exposure in the runs")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--sparse", action="store_true", help="force the block-sparse normal equations")
    args = parser.parse_args(argv)
    if args.one:
        print(json.dumps(one(args.one, args.ndet, sparse=args.sparse)))
        return 0
    rows = []
    for n in [int(v) for v in args.sizes.split(",")]:
        proc = subprocess.run([sys.executable, __file__, "--one", str(n), "--ndet", str(args.ndet)]
                              + (["--sparse"] if args.sparse else []),
                              capture_output=True, text=True)
        if proc.returncode != 0:
            print(f"{n} exposures: failed\n{proc.stderr[-1500:]}")
            continue
        row = json.loads(proc.stdout.strip().splitlines()[-1])
        rows.append(row)
        print(f"{row['nexp']:5d} exposures x {row['ndet_per_exp']:7.0f} det = {row['ndet'] / 1e6:6.2f} M detections, "
              f"{row['nparam']:6d} parameters: astrometry {row['astrom']:7.1f} s, photometry {row['photom']:5.1f} s, "
              f"(setup {row['setup']:5.1f} s), {row['nlinks']} links, {row['nref']} ref matches, "
              f"peak RSS {row['peak_rss_gb']:.2f} GB", flush=True)
    if rows:
        # At 2000 exposures the parameters (and the normal matrix, its Cholesky) are those of the target:
        # only the detections grow.  Memory: the per-detection slope between the two largest runs with
        # their normal matrices (N and at most one copy) taken out.  Time: the slope of the total between
        # the two largest runs (it includes the growth of the Cholesky, so it is an upper bound), applied
        # to the detections the 2000-exposure run lacks.
        last = rows[-1]
        nparam = 2000 * 6 + 720
        matrix_gb = nparam ** 2 * 8 / 1024 ** 3

        def mat(row):
            return 2 * row["nparam"] ** 2 * 8 / 1024 ** 3

        def total_time(row):
            return row["astrom"] + row["photom"]

        ntarget = 2000 * 30000
        if len(rows) >= 2:
            prev = rows[-2]
            dn = last["ndet"] - prev["ndet"]
            mem_slope = max((last["peak_rss_gb"] - mat(last)) - (prev["peak_rss_gb"] - mat(prev)), 0.0) / dn
            time_slope = max(total_time(last) - total_time(prev), 0.0) / dn
        else:
            mem_slope = (last["peak_rss_gb"] - mat(last)) / last["ndet"]
            time_slope = total_time(last) / last["ndet"]
        mem = last["peak_rss_gb"] - mat(last) + 2 * matrix_gb + mem_slope * (ntarget - last["ndet"])
        # the 4 Choleskys grow as nparam^3 (measured alone in each run), the rest with the detections
        chol = 4 * last["cholesky"] * (nparam / last["nparam"]) ** 3
        total = total_time(last) + time_slope * (ntarget - last["ndet"]) + max(chol - 4 * last["cholesky"], 0.0)
        print()
        print(f"per-detection cost: {mem_slope * 1024 ** 3:.0f} bytes, {time_slope * 1e6:.1f} us "
              f"(from the {'two largest runs' if len(rows) >= 2 else 'largest run'})")
        print(f"extrapolation to 2000 exposures x 30000 detections (60 M): {nparam} parameters, normal matrix "
              f"{matrix_gb:.2f} GB; peak memory ~{mem:.1f} GB (budget 24 GiB); time ~{total / 60:.0f} min "
              f"(the normal-matrix Cholesky, ~{chol:.0f} s of it, does not grow with detections)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
