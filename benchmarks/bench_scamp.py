"""Benchmark: the scamp plugin against the real SCAMP on the same simulated survey.

A survey of N exposures x 36 CCDs (MegaCam layout, CCDs scaled down with --nx/--ny to keep it
tractable) in two filters, dithered so that exposures overlap, with wrong first-guess WCS (shifts,
rotations, scale errors), an optical distortion, non-photometric exposures (cloud extinction) and a
local reference catalogue.  Catalogues are simulated directly at catalogue level
(``terapix_scamp.synth``): the true sky position of every pixel is known exactly.

Both programs get the same catalogues and reference file, and the same keywords.  Printed:
wall-time ratio plugin/SCAMP; astrometric error of each solution against the true WCS (rms and max
over a grid on every CCD, mas); internal and external residual rms (from each program's XML); zero-point
error against truth (rms, mag).

    python benchmarks/bench_scamp.py --nexp 10 --nx 512 --ny 1152
    python benchmarks/bench_scamp.py --source sim --nexp 10 --sim-density 2   # images + real SExtractor

``--source sim`` uses the project's simulator (terapix_fw.sim: MEF images with first-guess WCS, true TPV
WCS in truth/simNN.wcs.truth, true zero point in truth/simNN.truth.fits) and the real
``source-extractor`` to make the catalogues.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def xml_group_stats(path: Path) -> dict:
    """Internal/external sigma (arcsec, 2 axes) of the first field group of a SCAMP-like XML."""
    import warnings

    from astropy.io.votable import parse

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        vot = parse(str(path))
    for table in vot.iter_tables():
        if table.name == "FGroups":
            t = table.to_table()
            out = {}
            for key in ("AstromSigma_Internal", "AstromSigma_Reference", "AstromSigma_Internal_HighSN",
                        "AstromSigma_Reference_HighSN"):
                if key in t.colnames:
                    out[key] = np.atleast_1d(np.asarray(t[key][0], float))
            return out
    return {}


SCAMP_PARAMS = ["XWIN_IMAGE", "YWIN_IMAGE", "ERRAWIN_IMAGE", "ERRBWIN_IMAGE", "ERRTHETAWIN_IMAGE", "FLUX_AUTO",
                "FLUXERR_AUTO", "FLAGS", "FLUX_RADIUS", "ELONGATION", "MAG_AUTO"]


def simulate_with_images(base: Path, args, rng):
    """The project's simulator (terapix_fw.sim): MEF images with a known true TPV WCS and zero point, then
    the real SExtractor makes the FITS_LDAC catalogues both programs read."""
    from terapix_fw.sim import SkyModel, megacam_focal_plane, simulate_exposure, write_reference_catalog

    data = base / "data"
    data.mkdir(parents=True, exist_ok=True)
    fp = megacam_focal_plane(nx=args.nx, ny=args.ny)
    sky = SkyModel(args.seed, maglim=args.sim_maglim, density=args.sim_density, star_density=1.0)
    ra0, dec0 = 36.5, -4.5
    results = []
    if args.reuse and all((data / f"sim{k:02d}.cat").exists() for k in range(args.nexp)):
        from terapix_fw.ldac import read_ldac

        return [data / f"sim{k:02d}.cat" for k in range(args.nexp)], len(read_ldac(data / "ref.cat")[0].objects)
    (data / "scamp.param").write_text("\n".join(SCAMP_PARAMS) + "\n")
    for k in range(args.nexp):
        ang = 2 * np.pi * k / args.nexp
        rad = (0.5 + 0.5 * (k % 3)) * 1.0 / 60.0 * (args.nx / 512)
        res = simulate_exposure(data, seed=args.seed, focal_plane=fp, sky=sky, name=f"sim{k:02d}",
                                expnum=800000 + k, ra=ra0 + rad * np.cos(ang) / np.cos(np.radians(dec0)),
                                dec=dec0 + rad * np.sin(ang), filter=("g", "r")[k % 2],
                                photometric=(k % 3 == 0), mjd=54000.3 + k, wcs_offset_arcsec=15.0,
                                wcs_rotation_deg=0.1, distortion_arcsec=4.0 * args.nx / 2048, cosmic_rays=False,
                                defects=False, satellite=False, write_refcat=False, write_calibration=False,
                                maglim=args.sim_maglim, density=args.sim_density, nthreads=2)
        cat = f"sim{k:02d}.cat"
        subprocess.run(["source-extractor", res.path.name, "-CATALOG_TYPE", "FITS_LDAC", "-CATALOG_NAME", cat,
                        "-PARAMETERS_NAME", "scamp.param", "-FILTER", "N", "-DETECT_THRESH", "3",
                        "-VERBOSE_TYPE", "QUIET", "-MAG_ZEROPOINT", "30"], cwd=data, check=True)
        results.append(data / cat)
    radius = 1.2 * fp.radius() * fp.pixscale / 3600.0 + 4.0 / 60.0
    nref = write_reference_catalog(data / "ref.cat", sky.around(ra0, dec0, radius), band="r", maglim=22.5,
                                   seed=args.seed)
    return results, nref


def evaluate_sim(results, directory: Path, label: str, nx: int, ny: int) -> dict:
    """Errors against the simulator's truth: ``truth/simNN.wcs.truth`` (true TPV WCS per CCD) and the ZP
    keyword of ``truth/simNN.truth.fits`` (magnitude of 1 ADU)."""
    import warnings

    from astropy.io import fits
    from astropy.wcs import WCS, FITSFixedWarning

    from terapix_fw.headfile import read_head_file
    from terapix_scamp.sky import angular_sep

    errs, zp_err = [], []
    for cat in results:
        head_path = directory / cat.with_suffix(".head").name
        if not head_path.exists():
            print(f"  {label}: {head_path.name} missing")
            continue
        heads = read_head_file(head_path)
        trues = read_head_file(cat.parent / "truth" / f"{cat.stem}.wcs.truth")
        gx, gy = np.meshgrid(np.linspace(1, nx, 8), np.linspace(1, ny, 8))
        for head, true in zip(heads, trues):
            pair = []
            for h in (head, true):
                full = h.copy()
                full["NAXIS"], full["NAXIS1"], full["NAXIS2"] = 2, nx, ny
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", FITSFixedWarning)
                    pair.append(WCS(full).all_pix2world(gx.ravel(), gy.ravel(), 1))
            errs.append(angular_sep(pair[0][0], pair[0][1], pair[1][0], pair[1][1]) * 3.6e6)
        h = heads[0]
        zp_true = fits.getheader(cat.parent / "truth" / f"{cat.stem}.truth.fits", 1)["ZP"]
        # a stack pixel is ADU x FLXSCALE at zero point MAGZEROP; the truth is ZP for 1 ADU
        zp_err.append(h["MAGZEROP"] - 2.5 * np.log10(h["FLXSCALE"]) - zp_true)
    allerr = np.concatenate(errs) if errs else np.array([np.nan])
    zp = np.array(zp_err) if zp_err else np.array([np.nan])
    return {"rms": float(np.sqrt(np.mean(allerr ** 2))), "max": float(np.max(allerr)),
            "zp_rms": float(np.sqrt(np.mean(zp ** 2))), "zp_max": float(np.max(np.abs(zp))), "nhead": len(errs)}


def evaluate(truth, directory: Path, label: str) -> dict:
    from terapix_fw.headfile import read_head_file
    from terapix_scamp.synth import head_errors

    errs, dzp_err = [], []
    for k, e in enumerate(truth.exposures):
        head = directory / e.path.with_suffix(".head").name
        if not head.exists():
            print(f"  {label}: {head.name} missing")
            continue
        errs.append(head_errors(truth, k, head, n=8))
        h = read_head_file(head)[0]
        dzp = -2.5 * np.log10(h["FLXSCALE"] * e.exptime) + h["MAGZEROP"] - truth.phot_c + truth.phot_k * (
            e.airmass - 1)
        dzp_err.append(dzp - (-e.cloud))
    allerr = np.concatenate(errs) if errs else np.array([np.nan])
    return {"rms": float(np.sqrt(np.mean(allerr ** 2))), "max": float(np.max(allerr)),
            "zp_rms": float(np.sqrt(np.mean(np.square(dzp_err)))) if dzp_err else np.nan,
            "zp_max": float(np.max(np.abs(dzp_err))) if dzp_err else np.nan, "nhead": len(errs)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nexp", type=int, default=10)
    parser.add_argument("--nccd", type=int, default=36)
    parser.add_argument("--nx", type=int, default=512, help="CCD width (MegaCam: 2048)")
    parser.add_argument("--ny", type=int, default=1152, help="CCD height (MegaCam: 4612)")
    parser.add_argument("--density", type=float, default=12.0, help="sources per arcmin^2")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--keep", help="directory to keep the files in")
    parser.add_argument("--source", choices=("catalogs", "sim"), default="catalogs",
                        help="catalogs: catalogue-level simulation (terapix_scamp.synth, fast, exact truth); "
                             "sim: images from terapix_fw.sim measured by the real SExtractor")
    parser.add_argument("--sim-density", type=float, default=1.0, help="source density factor for --source sim")
    parser.add_argument("--reuse", action="store_true", help="reuse the simulated catalogues in --keep")
    parser.add_argument("--sim-maglim", type=float, default=25.0, help="faintest simulated magnitude (--source sim)")
    args = parser.parse_args(argv)

    from terapix_scamp.synth import make_survey

    base = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="bench_scamp_"))
    base.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(args.seed)
    nexp = args.nexp
    # wrong first guesses: shifts of tens of arcsec, rotations of a few tenths of a degree, 1% scale
    if args.source == "sim":
        t0 = time.time()
        sim_results, nref = simulate_with_images(base, args, rng)
        truth = None
        cats = [c.name for c in sim_results]
        print(f"survey (terapix_fw.sim + source-extractor): {nexp} exposures x 36 CCDs of {args.nx}x{args.ny} px, "
              f"filters g/r alternating, photometric every third, {nref} reference stars "
              f"({time.time() - t0:.1f} s to simulate and extract)")
    else:
        first_guess = {k: {"shift": tuple(rng.normal(0, 15.0, 2)), "angle": float(rng.normal(0, 0.3)),
                           "scale": float(1 + rng.normal(0, 0.01))} for k in range(nexp)}
        clouds = [0.0 if k % 3 == 0 else float(rng.uniform(0.05, 0.4)) for k in range(nexp)]
        t0 = time.time()
        truth = make_survey(base / "data", nexp=nexp, nccd=args.nccd, ncol=9 if args.nccd == 36 else None, nx=args.nx,
                            ny=args.ny, gap=args.nx * 70 / 2048, filters=("g", "r"), dither_arcmin=3.0,
                            nsources_per_arcmin2=args.density, k_radial=2e-3, chip_quad_pix=1.0,
                            first_guess=first_guess, clouds=clouds, seed=args.seed)
        ndet = truth.meta["nsources"]
        print(f"survey: {nexp} exposures x {args.nccd} CCDs of {args.nx}x{args.ny} px, filters g/r, "
              f"{sum(c > 0 for c in clouds)} non-photometric, {truth.meta['nref']} reference stars "
              f"({time.time() - t0:.1f} s to simulate, {ndet} sky sources)")
        cats = [e.path.name for e in truth.exposures]
    common = ["-ASTREF_CATALOG", "FILE", "-ASTREFCAT_NAME", "ref.cat", "-CHECKPLOT_DEV", "NULL",
              "-SOLVE_PHOTOM", "Y", "-MOSAIC_TYPE", "UNCHANGED", "-WRITE_XML", "Y"]
    results = {}
    for label in ("plugin", "scamp"):
        work = base / label
        if work.exists():
            shutil.rmtree(work)
        work.mkdir()
        for name in cats + ["ref.cat"]:
            os.symlink((base / "data" / name).resolve(), work / name)
        if label == "plugin":
            cmd = [sys.executable, "-m", "terapix_fw.cli", "tool", "scamp"] + cats + common
            env = dict(os.environ, TERAPIX_HOME=str(base / "home"))
        else:
            if shutil.which("scamp") is None:
                print("real scamp not installed: skipped")
                continue
            cmd = ["scamp"] + cats + common + ["-VERBOSE_TYPE", "QUIET"]
            env = dict(os.environ)
        import resource

        cpu0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.time()
        proc = subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True)
        elapsed = time.time() - start
        cpu1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
        if proc.returncode != 0:
            print(f"{label} failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
            continue
        res = evaluate(truth, work, label) if truth is not None else evaluate_sim(sim_results, work, label, args.nx, args.ny)
        res["time"] = elapsed
        res["cpu"] = cpu
        res.update(xml_group_stats(work / "scamp.xml"))
        results[label] = res
    print()
    print(f"load average during the runs: {os.getloadavg()[0]:.1f} (2 cores shared)")
    print(f"{'':10s} {'time (s)':>9s} {'cpu (s)':>8s} {'astr rms':>9s} {'astr max':>9s} {'int sigma':>17s} {'ref sigma':>17s} "
          f"{'ZP rms':>8s} {'ZP max':>8s}")
    print(f"{'':10s} {'':>9s} {'':>8s} {'(mas)':>9s} {'(mas)':>9s} {'(mas, x/y)':>17s} {'(mas, x/y)':>17s} {'(mag)':>8s} "
          f"{'(mag)':>8s}")
    for label, r in results.items():
        si = r.get("AstromSigma_Internal", [np.nan, np.nan]) * 1000
        sr = r.get("AstromSigma_Reference", [np.nan, np.nan]) * 1000
        print(f"{label:10s} {r['time']:9.2f} {r['cpu']:8.2f} {r['rms']:9.1f} {r['max']:9.1f} {si[0]:8.1f}/{si[-1]:<8.1f} "
              f"{sr[0]:8.1f}/{sr[-1]:<8.1f} {r['zp_rms']:8.4f} {r['zp_max']:8.4f}")
    if "plugin" in results and "scamp" in results:
        p, s = results["plugin"], results["scamp"]
        print()
        print(f"time ratio plugin/SCAMP: wall {p['time'] / s['time']:.2f}, CPU {p['cpu'] / s['cpu']:.2f}  "
              "(target <= 1.0; SCAMP runs 2 threads, the plugin 1 BLAS thread)")
        print(f"astrometric error vs truth, rms: plugin {p['rms']:.1f} mas, SCAMP {s['rms']:.1f} mas "
              f"(target: plugin <= SCAMP and < 20 mas)")
        print(f"zero-point error vs truth, rms: plugin {p['zp_rms']:.4f} mag, SCAMP {s['zp_rms']:.4f} mag "
              "(target < 0.01)")
    print(f"files in {base}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
