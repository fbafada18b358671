"""Benchmark of QualityFITS-in against the AstrOmatic chain weightwatcher + source-extractor + psfex.

Simulates a MegaCam-like exposure (terapix_fw.sim, 36 CCDs of 2048x4612 by default; ``--nccd``/``--nx``/
``--ny`` reduce it), then measures in the same run:

* time of our qualityfits step (weight/flag maps with defect detection, shallow catalogue, PSF per CCD,
  metrics, XML, plots) and of the C chain (weightwatcher on the flat and bad-pixel map, source-extractor
  with VIGNETs on the weighted image, psfex), and their ratio (target <= 1.0);
* accuracy against the simulator's truth: PSF FWHM per CCD (target within 2%), ellipticity 1 - B/A
  (within 0.01), cosmic-ray pixels flagged (>= 95%), bad-column pixels flagged, clean pixels flagged by
  the defect detectors (< 0.1%).  Our run is given the flat only, not the bad-pixel map, so that bad
  columns must be detected; cosmic-ray truth is the difference with the same exposure simulated without
  cosmic rays.

    python benchmarks/bench_qualityfits.py --nccd 4 --outdir /tmp/bench_qf
"""
from __future__ import annotations

import argparse
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np


def truth_psf(sim, ccd):
    on = sim.truth[sim.truth["CCD"] == ccd.number]
    near = np.argsort(np.hypot(on["X_IMAGE"] - (ccd.nx + 1) / 2, on["Y_IMAGE"] - (ccd.ny + 1) / 2))[:5]
    return (float(np.median(on["FWHM_PSF"][near])) / sim.focal_plane.pixscale,
            float(np.median(on["ELLIP_PSF"][near])))


def run_ours(sim, outdir, nthreads):
    from terapix_fw.execute import UnitSpec, execute_unit

    spec = UnitSpec(step="qf", unit="1", tool="qualityfits",
                    config_layers=[[("WEIGHT_NAMES", str(sim.flat_path), None)]], inputs=[str(sim.path)],
                    outdir=str(outdir), log_path=str(outdir / "qf.log"), nthreads=nthreads)
    t0 = time.perf_counter()
    result = execute_unit(spec)
    elapsed = time.perf_counter() - t0
    if result.status != "done":
        raise SystemExit(f"qualityfits failed: {result.error}")
    return elapsed, result


def run_c_chain(sim, outdir):
    """weightwatcher + source-extractor + psfex, as TERAPIX ran them; returns (seconds, per-step, psf path)."""
    params = outdir / "psfex.param"
    params.write_text("\n".join(["VIGNET(35,35)", "X_IMAGE", "Y_IMAGE", "XWIN_IMAGE", "YWIN_IMAGE",
                                 "ERRAWIN_IMAGE", "ERRBWIN_IMAGE", "ERRTHETAWIN_IMAGE", "ALPHA_J2000",
                                 "DELTA_J2000", "MAG_AUTO", "MAGERR_AUTO", "FLUX_AUTO", "FLUXERR_AUTO",
                                 "FLUX_APER(1)", "FLUXERR_APER(1)", "FLUX_MAX", "FLUX_RADIUS", "SNR_WIN",
                                 "A_IMAGE", "B_IMAGE", "THETA_IMAGE", "ELONGATION", "ELLIPTICITY",
                                 "FWHM_IMAGE", "FLAGS", "IMAFLAGS_ISO"]) + "\n")
    conv = Path("/usr/share/source-extractor/default.conv")
    nnw = Path("/usr/share/source-extractor/default.nnw")
    steps = {}
    t0 = time.perf_counter()
    subprocess.run(["weightwatcher", "-WEIGHT_NAMES", str(sim.flat_path), "-FLAG_NAMES", str(sim.bpm_path),
                    "-OUTWEIGHT_NAME", "c.weight.fits", "-OUTFLAG_NAME", "c.flag.fits", "-WRITE_XML", "N",
                    "-VERBOSE_TYPE", "QUIET"], cwd=outdir, check=True, capture_output=True)
    steps["weightwatcher"] = time.perf_counter() - t0
    t1 = time.perf_counter()
    sex = ["source-extractor", str(sim.path), "-CATALOG_NAME", "c.ldac", "-CATALOG_TYPE", "FITS_LDAC",
           "-PARAMETERS_NAME", str(params), "-DETECT_THRESH", "5", "-ANALYSIS_THRESH", "5",
           "-WEIGHT_TYPE", "MAP_WEIGHT", "-WEIGHT_IMAGE", "c.weight.fits", "-FLAG_IMAGE", "c.flag.fits",
           "-MAG_ZEROPOINT", f"{sim.header_zeropoint:.4f}", "-VERBOSE_TYPE", "QUIET"]
    if conv.exists():
        sex += ["-FILTER_NAME", str(conv)]
    if nnw.exists():
        sex += ["-STARNNW_NAME", str(nnw)]
    subprocess.run(sex, cwd=outdir, check=True, capture_output=True)
    steps["source-extractor"] = time.perf_counter() - t1
    t2 = time.perf_counter()
    subprocess.run(["psfex", "c.ldac", "-CHECKPLOT_TYPE", "NONE", "-CHECKIMAGE_TYPE", "NONE", "-WRITE_XML", "N",
                    "-VERBOSE_TYPE", "QUIET"], cwd=outdir, check=True, capture_output=True)
    steps["psfex"] = time.perf_counter() - t2
    return time.perf_counter() - t0, steps, outdir / "c.psf"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nccd", type=int, default=36)
    ap.add_argument("--nx", type=int, default=2048)
    ap.add_argument("--ny", type=int, default=4612)
    ap.add_argument("--seed", type=int, default=5)
    ap.add_argument("--seeing", type=float, default=0.8)
    ap.add_argument("--outdir", default="")
    ap.add_argument("--nthreads", type=int, default=0, help="threads for our step (0: all cores; the C tools "
                    "run single-threaded as TERAPIX ran them)")
    args = ap.parse_args(argv)

    from astropy.io import fits

    from terapix_fw.sim import megacam_focal_plane, simulate_exposure, small_focal_plane
    from terapix_psfex.psfmodel import fit_moffat, read_psf

    base = Path(args.outdir or tempfile.mkdtemp(prefix="bench_qf_"))
    base.mkdir(parents=True, exist_ok=True)
    fp = (megacam_focal_plane(nx=args.nx, ny=args.ny) if args.nccd == 36
          else small_focal_plane(nccd=args.nccd, nx=args.nx, ny=args.ny))
    kw = dict(seed=args.seed, focal_plane=fp, seeing=args.seeing, satellite=True)
    t0 = time.perf_counter()
    sim = simulate_exposure(base / "sim", **kw)
    clean = simulate_exposure(base / "sim_nocr", cosmic_rays=False, write_refcat=False, **kw)
    print(f"simulated {args.nccd} CCD(s) of {args.nx}x{args.ny} in {time.perf_counter() - t0:.1f} s "
          f"({len(sim.truth)} sources)")

    ours_dir = base / "ours"
    ours_dir.mkdir(exist_ok=True)
    import os

    nthreads = args.nthreads or os.cpu_count() or 1
    t_ours, result = run_ours(sim, ours_dir, nthreads)
    print(f"terapix-fw qualityfits (maps + catalogue + PSF + metrics + XML + plots, {nthreads} thread(s)): "
          f"{t_ours:.2f} s")
    have_c = all(shutil.which(p) for p in ("weightwatcher", "source-extractor", "psfex"))
    ref_psf = None
    if have_c:
        c_dir = base / "c"
        c_dir.mkdir(exist_ok=True)
        t_c, steps, ref_psf = run_c_chain(sim, c_dir)
        print("C chain: " + ", ".join(f"{k} {v:.2f} s" for k, v in steps.items()) + f"; total {t_c:.2f} s")
        print(f"time ratio ours / C chain = {t_ours / t_c:.2f} (target <= 1.0)")
    else:
        print("C tools not installed: no time ratio")

    # ---- accuracy against truth
    (_, q), = [r for r in result.records if r[0] == "quality"]
    per = {}
    for m in q["metrics"]:
        per.setdefault(m["ccd"], {})[m["name"]] = m["value"]
    ref_models = read_psf(ref_psf) if ref_psf and ref_psf.exists() else None
    dfwhm, dell, dref = [], [], []
    for k, ccd in enumerate(fp.ccds, 1):
        f_true, e_true = truth_psf(sim, ccd)
        m = per.get(k, {})
        if "fwhm_px" not in m:
            continue
        dfwhm.append(m["fwhm_px"] / f_true - 1)
        dell.append(m["ellipticity"] - e_true)
        if ref_models is not None and ref_models[k - 1].accepted > 0:
            d = fit_moffat(ref_models[k - 1].at((ccd.nx + 1) / 2, (ccd.ny + 1) / 2), ref_models[k - 1].step)
            dref.append(d["fwhm"] / f_true - 1)
    dfwhm, dell = np.array(dfwhm), np.array(dell)
    print(f"FWHM per CCD vs truth: median {np.median(dfwhm) * 100:+.2f}%, worst {np.max(np.abs(dfwhm)) * 100:.2f}% "
          f"({np.mean(np.abs(dfwhm) <= 0.02) * 100:.0f}% of CCDs within 2%)")
    print(f"ellipticity (1-B/A) vs truth: median {np.median(dell):+.4f}, worst {np.max(np.abs(dell)):.4f} "
          f"({np.mean(np.abs(dell) <= 0.01) * 100:.0f}% of CCDs within 0.01)")
    if dref:
        dref = np.array(dref)
        print(f"  (real psfex model, same Moffat fit: FWHM median {np.median(dref) * 100:+.2f}%, "
              f"worst {np.max(np.abs(dref)) * 100:.2f}%)")
    stem = sim.path.stem
    ncr = nfound = nbad = nbadfound = nclean = nfalse = 0
    with fits.open(sim.path) as a, fits.open(clean.path) as b, fits.open(sim.bpm_path) as bpm, \
            fits.open(ours_dir / f"{stem}.flag.fits") as flag:
        for k in range(1, len(a)):
            bp = bpm[k].data
            crt = (np.abs(a[k].data - b[k].data) > 1e-3) & (bp == 0)
            f = flag[k].data
            ncr += int(crt.sum())
            nfound += int(((f & 8) != 0)[crt].sum())
            col = (bp & 1) != 0
            nbad += int(col.sum())
            nbadfound += int((f != 0)[col].sum())
            # clean: no injected defect, not saturated/bleeding, not on the satellite trail
            clean_px = ~crt & (bp == 0) & ((f & (4 | 16)) == 0)
            nclean += int(clean_px.sum())
            nfalse += int(((f & (8 | 32)) != 0)[clean_px].sum())
    print(f"cosmic-ray pixels flagged: {nfound}/{ncr} = {nfound / max(ncr, 1) * 100:.1f}% (target >= 95%)")
    print(f"bad-column pixels flagged (no bad-pixel map given): {nbadfound}/{nbad} = "
          f"{nbadfound / max(nbad, 1) * 100:.1f}%")
    print(f"clean pixels flagged as cosmic ray or bad column: {nfalse}/{nclean} = "
          f"{nfalse / max(nclean, 1) * 100:.3f}% (target < 0.1%)")
    print(f"suggested grade {q['suggested_grade']}; products in {base}")


if __name__ == "__main__":
    main()
