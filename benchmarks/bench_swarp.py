"""swarp plugin vs SWarp, measured in the same run with the same keywords and NTHREADS.

Simulated MegaCam exposures (terapix_fw.sim: 36 CCDs, the true TPV WCS copied from truth/ to ``.head`` files
as SCAMP would leave a calibration beside each input, weight maps = flat
field with bad pixels at 0) are

1. resampled (one exposure, COMBINE N): wall time and peak memory of both;
2. co-added (N exposures dithered by up to ~1', COMBINE_TYPE WEIGHTED, WEIGHT_TYPE MAP_WEIGHT, automatic
   output grid): wall time, peak memory (of the whole process tree: ``terapix tool`` runs the tool in a
   forked child while its parent opens RDBix; see :func:`measure`), pixel
   agreement in full-weight regions (median and rms of (plugin - SWarp) / sigma, sigma from SWarp's
   weight map), and the fluxes of the truth stars in 2.5" radius apertures measured on both stacks
   (median and scatter of the plugin/SWarp ratio).

Both programs run as command-line drop-ins (``SWarp`` and ``terapix tool swarp``); the plugin's numba
kernels are compiled (cached) by a warm-up run first, so start-up costs the Python imports only.

    python benchmarks/bench_swarp.py [--nexp 10] [--ccd-scale 0.25] [--nthreads 2] [--workdir DIR]

``--ccd-scale 1`` gives full 2048x4612 CCDs (about 1.3 GB of simulated pixels per exposure).  With
``--workdir``, exposures simulated by an earlier run there (same seeds) are reused.  Also printed: the
peak RSS of the bare runtime the plugin needs (numpy, astropy.io.fits, astropy.wcs and numba imported;
then with numba's machinery loaded by a first call of a cached kernel).
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
from types import SimpleNamespace
from typing import NamedTuple

class Measured(NamedTuple):
    wall: float  # s
    rss: float  # MB: peak of the summed resident sizes of the process tree (see measure)
    rss_sampled: float  # MB: largest sum of the current resident sizes seen by the sampler
    nproc: int  # most processes alive at once in the tree


def _children(pid: int) -> list[int]:
    """Direct children of ``pid`` (from /proc/<pid>/task/<tid>/children: no scan of every process)."""
    out = []
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/children") as fh:
                out += [int(c) for c in fh.read().split()]
    except OSError:
        pass
    return out


def _rss_hwm(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) of a process in kB; (0, 0) once it is gone."""
    rss = hwm = 0
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    rss = int(line.split()[1])
                elif line.startswith("VmHWM:"):
                    hwm = int(line.split()[1])
    except OSError:
        pass
    return rss, hwm


#: runs the measured command: a small process, so that what the command inherits before its exec (vfork
#: shares the spawning process's memory, which the kernel then counts in the child's peak) stays small
SPAWNER = ("import os, resource, subprocess, sys; r = subprocess.run(sys.argv[1:]); "
           "print(r.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr)")


def measure(cmd: list[str], cwd: Path, progress: bool = False, period: float = 0.05) -> Measured:
    """Wall time and peak memory of ``cmd`` and every process it starts (all count, e.g. a tool forked by
    ``terapix tool`` while its parent opens RDBix).

    A thread follows the process tree every ``period`` s.  ``rss`` is the largest, over the samples, of the
    sum of the per-process peaks (VmHWM) of the processes alive together: it misses no short spike of a
    process (the kernel keeps each one's peak) and may over-count when two processes peak at different
    times, so it is an upper bound of the true peak; ``rss_sampled`` (sum of the current sizes) a lower
    bound.  Both are at least the largest single process's maximum RSS (getrusage of the spawner's
    children).  Pages shared between processes (a fork's copy-on-write pages, libraries) count in each
    process, as RSS does.  The command runs under :data:`SPAWNER`, itself not counted.  Standard error
    (the plugin's log) is passed through with ``progress``, else kept for the error message."""
    import threading

    t0 = time.time()
    proc = subprocess.Popen([sys.executable, "-c", SPAWNER, *cmd], cwd=cwd, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    peak = {"hwm": 0, "rss": 0, "n": 0}
    done = threading.Event()

    def sample():
        while not done.is_set():
            pids, todo = [], _children(proc.pid)
            while todo:
                p = todo.pop()
                pids.append(p)
                todo += _children(p)
            mem = [_rss_hwm(p) for p in pids]
            peak["rss"] = max(peak["rss"], sum(m[0] for m in mem))
            peak["hwm"] = max(peak["hwm"], sum(m[1] for m in mem))
            peak["n"] = max(peak["n"], sum(1 for m in mem if m[0]))
            done.wait(period)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    lines = []
    for line in proc.stderr:  # the command's standard error, then the spawner's last line
        if progress:
            sys.stderr.write(line)
        lines.append(line)
        del lines[:-200]
    proc.wait()
    wall = time.time() - t0
    done.set()
    sampler.join()
    code, maxrss = (int(v) for v in lines[-1].split()) if lines and len(lines[-1].split()) == 2 else (-1, 0)
    if proc.returncode != 0 or code != 0:
        raise RuntimeError(f"{' '.join(map(str, cmd[:3]))}... exited with {code}: {''.join(lines[-30:])}")
    single = maxrss / 1024.0  # kB on Linux
    return Measured(wall, max(single, peak["hwm"] / 1024.0), max(single, peak["rss"] / 1024.0), max(1, peak["n"]))


#: the runtime every plugin run holds: its imports and numba's machinery, loaded by a first cached kernel
RUNTIME_FLOOR = ("import numpy, astropy.io.fits, astropy.wcs\n"
                 "from terapix_swarp.kernels import mesh_variance\n"
                 "mesh_variance(numpy.ones((8, 8), numpy.float32), 4, 4)")


def flat_weight(res, path: Path) -> Path:
    """The weight map of a simulated exposure: its flat field, 0 on the bad pixels (one HDU per CCD)."""
    import numpy as np
    from astropy.io import fits

    with fits.open(res.flat_path) as flat, fits.open(res.bpm_path) as bpm:
        hdus = [fits.PrimaryHDU()]
        for k in range(1, len(flat)):
            hdus.append(fits.ImageHDU(np.where(bpm[k].data > 0, 0.0, flat[k].data).astype(np.float32)))
        fits.HDUList(hdus).writeto(path, overwrite=True)
    return path


def simulate(workdir: Path, nexp: int, scale: float, density: float):
    import numpy as np
    from astropy.io import fits

    from terapix_fw.sim import megacam_focal_plane, simulate_exposure

    fp = megacam_focal_plane(nx=int(round(2048 * scale)), ny=int(round(4612 * scale)))
    rng = np.random.default_rng(42)
    results = []
    weight_file = None
    for i in range(nexp):
        dra, ddec = (0.0, 0.0) if i == 0 else rng.uniform(-60, 60, 2) * scale / 3600
        name = f"bexp{i:02d}"
        truth_table = workdir / "truth" / f"{name}.truth.fits"
        if (workdir / f"{name}.fits").exists() and truth_table.exists() and weight_file is None \
                and (workdir / "flatweight.fits").exists():
            weight_file = workdir / "flatweight.fits"  # an earlier run's simulation (same seeds), reused
        if weight_file is not None and truth_table.exists() and (workdir / f"{name}.head").exists():
            from astropy.table import Table

            results.append(SimpleNamespace(path=workdir / f"{name}.fits",
                                           truth=Table.read(truth_table)))
            continue
        res = simulate_exposure(workdir, seed=100 + i, focal_plane=fp, density=density, name=name,
                                ra=36.5 + dra, dec=-4.5 + ddec, expnum=710000 + i, write_refcat=False)
        shutil.copyfile(res.true_wcs_path, workdir / f"{name}.head")  # the calibration SWarp reads
        if weight_file is None:
            weight_file = flat_weight(res, workdir / "flatweight.fits")
        link = workdir / f"bexp{i:02d}.weight.fits"
        if not link.exists():
            link.symlink_to(weight_file.name)
        results.append(res)
    return results


def compare(workdir: Path, truth_tables, radius_arcsec: float = 2.5):
    import numpy as np
    import sep
    from astropy.io import fits
    from astropy.table import vstack
    from astropy.wcs import WCS

    # rows read through memory maps, every ``step``-th row for the pixel statistics, so that full-size stacks
    # (~1.5 GB per float32 image) need only the two images in memory (for the apertures)
    maps = [fits.open(workdir / n, memmap=True) for n in ("plugin.fits", "swarp.fits", "plugin.weight.fits",
                                                          "swarp.weight.fits")]
    o_m, r_m, wo_m, wr_m = (h[0].data for h in maps)
    header = maps[1][0].header.copy()
    assert o_m.shape == r_m.shape, "output grids differ"
    ny = o_m.shape[0]
    step = max(1, ny // 4000)
    rows = slice(0, ny, step)
    wr_s = np.asarray(wr_m[rows], dtype=np.float64)
    wo_s = np.asarray(wo_m[rows], dtype=np.float64)
    med_w = np.median(wr_s[wr_s > 0])
    full_s = (wr_s > 0.8 * med_w) & (wo_s > 0)
    dev = (np.asarray(o_m[rows], dtype=np.float64)[full_s] - np.asarray(r_m[rows], dtype=np.float64)[full_s]) \
        * np.sqrt(wr_s[full_s])
    stats = {"npix_full": int(full_s.sum()), "row_step": step, "dev_median": float(np.median(dev)),
             "dev_rms": float(np.sqrt(np.mean(dev ** 2))), "dev_absmedian": float(np.median(np.abs(dev))),
             "weight_ratio_median": float(np.median(wo_s[full_s] / wr_s[full_s]))}
    del wr_s, wo_s, full_s, dev
    truth = vstack(truth_tables)
    stars = truth[(truth["IS_STAR"] == 1) & (~truth["SATURATED"]) & (truth["MAG"] < 21.5)]
    # one entry per star (it appears in every exposure's truth)
    _, first = np.unique(np.asarray(stars["ID"]), return_index=True)
    stars = stars[first]
    x, y = WCS(header).all_world2pix(np.asarray(stars["RA"]), np.asarray(stars["DEC"]), 0)
    r = radius_arcsec / (abs(header["CD2_2"]) * 3600)
    ny, nx = r_m.shape
    inside = (x > r + 2) & (x < nx - r - 3) & (y > r + 2) & (y < ny - r - 3)
    x, y = x[inside], y[inside]
    ix, iy = np.round(x).astype(int), np.round(y).astype(int)
    ok = (wr_m[iy, ix] > 0.8 * med_w) & (wo_m[iy, ix] > 0)
    x, y = x[ok], y[ok]
    f_ours, _, flag_o = sep.sum_circle(np.ascontiguousarray(o_m, dtype=np.float32), x, y, r)
    f_ref, _, flag_r = sep.sum_circle(np.ascontiguousarray(r_m, dtype=np.float32), x, y, r)
    for h in maps:
        h.close()
    good = (f_ref > 0) & (flag_o == 0) & (flag_r == 0)
    ratio = f_ours[good] / f_ref[good]
    stats.update(nstars=int(good.sum()), flux_ratio_median=float(np.median(ratio)) if good.any() else float("nan"),
                 flux_ratio_scatter=float(1.4826 * np.median(np.abs(ratio - np.median(ratio))))
                 if good.any() else float("nan"))
    return stats


def _bands_equal(workdir: Path, wall: float, rss: float) -> str:
    import numpy as np
    from astropy.io import fits

    same = []
    for a, b in (("plugin.fits", "bands.fits"), ("plugin.weight.fits", "bands.weight.fits")):
        x, y = fits.getdata(workdir / a), fits.getdata(workdir / b)
        same.append(f"{'identical' if np.array_equal(x, y) else f'max |diff| {np.abs(x - y).max():.3g}'}")
    h = fits.getheader(workdir / "bands.fits")
    return (f"co-add in bands of rows (RESAMPLE_DISKMAX = 1/4 of the resampled images): image {same[0]}, weight "
            f"{same[1]} to the single pass; EXPTIME {h['EXPTIME']}, GAIN {h['GAIN']:.5g}; {wall:.1f} s, {rss:.0f} MB")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nexp", type=int, default=10)
    parser.add_argument("--ccd-scale", type=float, default=0.25, help="CCD size / MegaCam's (1 = 2048x4612)")
    parser.add_argument("--density", type=float, default=0.3)
    parser.add_argument("--nthreads", type=int, default=2)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--keep", action="store_true", help="keep the working directory")
    parser.add_argument("--bands-check", action="store_true", help="co-add again in bands of rows (plugin) and "
                        "compare with the single pass")
    args = parser.parse_args(argv)
    swarp = shutil.which("SWarp") or shutil.which("swarp")
    terapix = shutil.which("terapix") or str(Path(sys.executable).with_name("terapix"))
    if swarp is None:
        print("SWarp is not installed: nothing to compare with")
        return 1
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="bench_swarp_"))
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        t0 = time.time()
        results = simulate(workdir, args.nexp, args.ccd_scale, args.density)
        images = [r.path.name for r in results]
        print(f"simulated {args.nexp} exposures of 36 CCDs {int(2048 * args.ccd_scale)}x{int(4612 * args.ccd_scale)} "
              f"in {time.time() - t0:.1f} s ({workdir})")
        common = ["-WEIGHT_TYPE", "MAP_WEIGHT", "-RESAMPLING_TYPE", "LANCZOS3", "-NTHREADS", str(args.nthreads),
                  "-WRITE_XML", "N"]
        env_home = workdir / "terapix_home"
        os.environ["TERAPIX_HOME"] = str(env_home)
        # warm-up: compile (and cache) the numba kernels outside the timings
        subprocess.run([terapix, "tool", "swarp", images[0], "-IMAGE_SIZE", "200", "-IMAGEOUT_NAME", "warm.fits",
                        "-WEIGHTOUT_NAME", "warm.weight.fits", *common], cwd=workdir, check=True,
                       capture_output=True)
        (workdir / "rs_swarp").mkdir(exist_ok=True)
        (workdir / "rs_plugin").mkdir(exist_ok=True)
        resample_only = ["-COMBINE", "N", "-DELETE_TMPFILES", "N"]
        def timed(what, cmd):
            m = measure(cmd, workdir)
            print(f"  {what}: {m.wall:.1f} s, peak RSS {m.rss:.0f} MB (process tree of {m.nproc}; current sizes "
                  f"summed: {m.rss_sampled:.0f} MB), load {os.getloadavg()}", flush=True)
            return m

        rs_swarp = timed("SWarp resample 1 exposure", [swarp, images[0], *common, *resample_only, "-RESAMPLE_DIR",
                                                       "rs_swarp", "-VERBOSE_TYPE", "QUIET"])
        rs_plug = timed("plugin resample 1 exposure", [terapix, "tool", "swarp", images[0], *common, *resample_only,
                                                       "-RESAMPLE_DIR", "rs_plugin"])
        for d in ("rs_swarp", "rs_plugin"):  # only timed: full-size resampled exposures take 2.7 GB each
            for f in (workdir / d).iterdir():
                f.unlink()
        coadd = ["-COMBINE_TYPE", "WEIGHTED"]
        co_swarp = timed("SWarp co-add", [swarp, *images, *common, *coadd, "-IMAGEOUT_NAME", "swarp.fits",
                                          "-WEIGHTOUT_NAME", "swarp.weight.fits", "-RESAMPLE_DIR", "rs_swarp",
                                          "-VERBOSE_TYPE", "QUIET"])
        co_plug = timed("plugin co-add", [terapix, "tool", "swarp", *images, *common, *coadd, "-IMAGEOUT_NAME",
                                          "plugin.fits", "-WEIGHTOUT_NAME", "plugin.weight.fits", "-RESAMPLE_DIR",
                                          "rs_plugin"])
        floors = [(what, measure([sys.executable, "-c", code], workdir).rss) for what, code in (
            ("numpy, astropy.io.fits, astropy.wcs, numba imported", "import numpy, astropy.io.fits, astropy.wcs, numba"),
            ("... and a first (cached) numba kernel called", RUNTIME_FLOOR))]
        bands_note = ""
        if args.bands_check:
            # the same co-addition made in bands of rows (RESAMPLE_DISKMAX a quarter of the resampled images)
            need = args.nexp * 36 * 8 * int(2048 * args.ccd_scale) * int(4612 * args.ccd_scale)
            band = measure([terapix, "tool", "swarp", *images, *common, *coadd, "-IMAGEOUT_NAME", "bands.fits",
                                "-WEIGHTOUT_NAME", "bands.weight.fits", "-RESAMPLE_DIR", "rs_plugin",
                                "-RESAMPLE_DISKMAX", str(max(1, need // 4 // 2 ** 20))], workdir)
            bands_note = _bands_equal(workdir, band.wall, band.rss)
        stats = compare(workdir, [r.truth for r in results])
        from astropy.io import fits

        h = fits.getheader(workdir / "swarp.fits")
        print(f"output stack {h['NAXIS1']}x{h['NAXIS2']}, NTHREADS {args.nthreads}")
        print(f"{'':34s}{'plugin':>10s}{'SWarp':>10s}{'ratio':>8s}")
        rows = [("resample 1 exposure, wall (s)", rs_plug.wall, rs_swarp.wall, ".2f"),
                ("resample 1 exposure, peak RSS (MB)", rs_plug.rss, rs_swarp.rss, ".0f"),
                (f"co-add {args.nexp} exposures, wall (s)", co_plug.wall, co_swarp.wall, ".2f"),
                (f"co-add {args.nexp} exposures, peak RSS (MB)", co_plug.rss, co_swarp.rss, ".0f")]
        for what, ours, ref, fmt in rows:
            print(f"{what:34s}{ours:10{fmt}}{ref:10{fmt}}{ours / ref:8.2f}")
        for what, rss in floors:
            print(f"runtime floor, {what}: peak RSS {rss:.0f} MB")
        print(f"load average after the runs: {os.getloadavg()}")
        print(f"pixels in full-weight regions (every {stats['row_step']}th row): {stats['npix_full']}; "
              f"(plugin - SWarp)/sigma median "
              f"{stats['dev_median']:+.2e}, median |.| {stats['dev_absmedian']:.2e}, rms {stats['dev_rms']:.2e}; "
              f"weight ratio median {stats['weight_ratio_median']:.6f}")
        if bands_note:
            print(bands_note)
        print(f"truth stars (r < 21.5, unsaturated) in 2.5\" apertures: {stats['nstars']}; flux ratio plugin/SWarp "
              f"median {stats['flux_ratio_median']:.6f}, scatter (1.48 MAD) {stats['flux_ratio_scatter']:.2e}")
    finally:
        if not args.keep and args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
