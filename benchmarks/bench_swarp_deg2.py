"""The CFHTLS 1 deg^2 stack with the swarp plugin: 100 dithered full MegaCam exposures -> 19354 x 19354 at 0.186".

100 full exposures (36 CCDs of 2048 x 4612) are ~136 GB of float32 pixels; the disk cannot hold them.  The
bench simulates ``--ndistinct`` exposures with the project's simulator (terapix_fw.sim) and presents each of
the ``--nexp`` inputs as a differently named symbolic link to one of them, with its own ``.head`` file
beside it (the true TPV astrometry of the source exposure with CRVAL moved by that input's dither offset)
and its own weight link: exactly how SWarp and the plugin read ``IMAGE.head`` beside each input.  Each input
therefore lands on a different part of the sky; its noise pixels are different pixels of the output
(the reused files' noise is not correlated at any output pixel unless two dithers are identical), but its
sources are not the true sky's: the check uses the weight map and the noise, not the truth stars.

The co-addition (COMBINE_TYPE WEIGHTED, LANCZOS3, WEIGHT_TYPE MAP_WEIGHT) runs as ``terapix tool swarp``
with RESAMPLE_DISKMAX limiting the temporary resampled images: the output is made in bands of rows (see
plugins/swarp/terapix_swarp/coadd.py), the pieces of each band deleted after it.  The peak RSS is the
runtime plus ~12 kB per input CCD plus the larger of one CCD's pixels and variances (~2.3 x 38 MB) in
phase 1 and the strip buffers (at most 32 MB) in phase 2.

Printed: wall time, peak RSS (of the process tree, see bench_swarp.measure), peak disk used by the temporary
files (sampled), weight-map coverage and depth against the depth predicted from the inputs' footprints, and the noise of the
stack (robust rms of stack x sqrt(weight)) against that of one resampled exposure.  ``--swarp-check N``
also co-adds an N x N cutout of the quantum with the real SWarp on the same 100 inputs (output grid given
by a ``.head`` beside its output, same tangent point) and prints the pixel agreement.

    python benchmarks/bench_swarp_deg2.py --workdir DIR [--nexp 100] [--ndistinct 4] [--ccd-scale 1]
        [--diskmax 40000] [--rice] [--swarp-check 2048]

``--ccd-scale s`` shrinks the CCDs and enlarges the pixels by 1/s (same 1 deg^2, 19354 s pixels a side).
"""
from __future__ import annotations

import argparse
import math
import os
import shutil
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_swarp import flat_weight, measure  # noqa: E402

RA0, DEC0 = 36.5, -4.5


def build_inputs(workdir: Path, nexp: int, ndistinct: int, scale: float, seed: int = 7) -> list[str]:
    """Simulate ``ndistinct`` exposures; expose ``nexp`` dithered inputs as links with their own ``.head``."""
    import numpy as np

    from terapix_fw.headfile import read_head_file, write_head_file
    from terapix_fw.sim import megacam_focal_plane, simulate_exposure

    fp = megacam_focal_plane(nx=int(round(2048 * scale)), ny=int(round(4612 * scale)), pixscale=0.186 / scale)
    src = []
    for i in range(ndistinct):
        name = f"src{i:02d}"
        if not (workdir / f"{name}.fits").exists():
            t0 = time.time()
            # larger pixels (scale < 1): shorter exposure, so that the sky per pixel stays that of 300 s
            res = simulate_exposure(workdir, seed=300 + i, focal_plane=fp, density=0.3, name=name, ra=RA0, dec=DEC0,
                                    expnum=720000 + i, write_refcat=False, exptime=300.0 * min(1.0, scale) ** 2)
            print(f"  simulated {name} in {time.time() - t0:.0f} s", flush=True)
            if not (workdir / "flatweight.fits").exists():
                flat_weight(res, workdir / "flatweight.fits")
        src.append(name)
    # dithers: uniform within +-3' (wider than MegaCam's 507-pixel = 94" gaps), the first input undithered
    rng = np.random.default_rng(seed)
    offsets = rng.uniform(-180.0, 180.0, (nexp, 2)) / 3600.0
    offsets[0] = 0.0
    names = []
    for j in range(nexp):
        s = src[j % ndistinct]
        name = f"q{j:03d}"
        for suffix, target in ((".fits", f"{s}.fits"), (".weight.fits", "flatweight.fits")):
            link = workdir / f"{name}{suffix}"
            if link.is_symlink() or link.exists():
                link.unlink()
            link.symlink_to(target)
        heads = read_head_file(workdir / "truth" / f"{s}.wcs.truth")  # calibrated input: the true WCS
        for h in heads:
            h["CRVAL1"] = h["CRVAL1"] + offsets[j, 0] / math.cos(math.radians(DEC0))
            h["CRVAL2"] = h["CRVAL2"] + offsets[j, 1]
        write_head_file(workdir / f"{name}.head", heads)
        names.append(f"{name}.fits")
    return names


class DiskSampler(threading.Thread):
    """Peak size of the files under a directory, sampled every few seconds."""

    def __init__(self, path: Path, period: float = 5.0):
        super().__init__(daemon=True)
        self.path, self.period, self.peak, self.stop = path, period, 0, threading.Event()

    def run(self):
        while not self.stop.is_set():
            total = 0
            for entry in os.scandir(self.path):
                try:
                    if entry.is_file(follow_symlinks=False):
                        total += entry.stat(follow_symlinks=False).st_blocks * 512
                except FileNotFoundError:
                    pass
            self.peak = max(self.peak, total)
            self.stop.wait(self.period)


def predicted_depth(workdir: Path, names: list[str], header, ccd_shape, npts: int = 400, seed: int = 3):
    """Number of input CCDs covering random output pixels, from the inputs' ``.head`` WCS."""
    import warnings

    import numpy as np
    from astropy.wcs import WCS, FITSFixedWarning

    from terapix_fw.headfile import read_head_file

    rng = np.random.default_rng(seed)
    xs = rng.uniform(50, int(header["NAXIS1"]) - 50, npts)
    ys = rng.uniform(50, int(header["NAXIS2"]) - 50, npts)
    ny, nx = ccd_shape
    depth = np.zeros(npts, dtype=int)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FITSFixedWarning)
        ra, dec = WCS(header).all_pix2world(xs, ys, 1)
        for name in names:
            for h in read_head_file(workdir / f"{name[:-5]}.head"):
                x, y = WCS(h).all_world2pix(ra, dec, 1)
                depth += (x >= 0.5) & (x <= nx + 0.5) & (y >= 0.5) & (y <= ny + 0.5)
    return xs, ys, depth


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--nexp", type=int, default=100)
    parser.add_argument("--ndistinct", type=int, default=4)
    parser.add_argument("--ccd-scale", type=float, default=1.0)
    parser.add_argument("--diskmax", type=int, default=40000, help="RESAMPLE_DISKMAX (MB)")
    parser.add_argument("--nthreads", type=int, default=2)
    parser.add_argument("--rice", action="store_true", help="TILE_COMPRESS Y")
    parser.add_argument("--swarp-check", type=int, default=0, help="cutout size co-added by SWarp too (0: none)")
    parser.add_argument("--keep", action="store_true", help="keep the stack")
    args = parser.parse_args(argv)
    workdir = args.workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    scale = args.ccd_scale
    size = int(round(19354 * scale))
    pixscale = 0.186 / scale
    t0 = time.time()
    names = build_inputs(workdir, args.nexp, args.ndistinct, scale)
    print(f"{args.nexp} inputs of 36 CCDs {int(round(2048 * scale))}x{int(round(4612 * scale))} from "
          f"{args.ndistinct} simulated exposures, ready in {time.time() - t0:.0f} s", flush=True)
    terapix = shutil.which("terapix") or str(Path(sys.executable).with_name("terapix"))
    os.environ["TERAPIX_HOME"] = str(workdir / "terapix_home")
    tmpdir = workdir / "resamp"
    tmpdir.mkdir(exist_ok=True)
    common = ["-WEIGHT_TYPE", "MAP_WEIGHT", "-RESAMPLING_TYPE", "LANCZOS3", "-COMBINE_TYPE", "WEIGHTED",
              "-CENTER_TYPE", "MANUAL", "-CENTER", f"{RA0},{DEC0}", "-PIXELSCALE_TYPE", "MANUAL",
              "-PIXEL_SCALE", f"{pixscale}", "-IMAGE_SIZE", str(size), "-NTHREADS", str(args.nthreads),
              "-WRITE_XML", "N"]
    cmd = [terapix, "tool", "swarp", *names, *common, "-IMAGEOUT_NAME", "deg2.fits", "-WEIGHTOUT_NAME",
           "deg2.weight.fits", "-RESAMPLE_DIR", "resamp", "-RESAMPLE_DISKMAX", str(args.diskmax),
           "-TILE_COMPRESS", "Y" if args.rice else "N"]
    print("running:", " ".join(cmd[:3]), f"<{len(names)} inputs>", " ".join(cmd[3 + len(names):]), flush=True)
    print("load before:", os.getloadavg(), flush=True)
    sampler = DiskSampler(tmpdir)
    sampler.start()
    # the plugin's log goes to stderr: let it through for the progress
    wall, rss, *_ = measure(cmd, workdir, progress=True)
    sampler.stop.set()
    sampler.join()
    print(f"plugin: {size}x{size} stack of {args.nexp} exposures in {wall:.0f} s, peak RSS {rss:.0f} MB, "
          f"peak temporary disk {sampler.peak / 1024 ** 3:.1f} GB, load after {os.getloadavg()}", flush=True)
    leftovers = list(tmpdir.iterdir())
    print(f"temporary files left in {tmpdir}: {len(leftovers)}")
    check(workdir, names, args.rice, (int(round(4612 * scale)), int(round(2048 * scale))))
    if args.swarp_check:
        swarp_check(workdir, names, common, args.swarp_check, size)
    if not args.keep:
        for name in ("deg2.fits", "deg2.weight.fits", "deg2.fits.fz", "deg2.weight.fits.fz"):
            (workdir / name).unlink(missing_ok=True)
    return 0


def _open_stack(workdir: Path, rice: bool):
    from astropy.io import fits

    if rice:
        return fits.open(workdir / "deg2.fits.fz")[1], fits.open(workdir / "deg2.weight.fits.fz")[1]
    return fits.open(workdir / "deg2.fits", memmap=True)[0], fits.open(workdir / "deg2.weight.fits", memmap=True)[0]


def check(workdir: Path, names, rice: bool, ccd_shape) -> None:
    """Coverage, depth against the footprints, noise of the stack."""
    import numpy as np

    img, wgt = _open_stack(workdir, rice)
    header = img.header
    n = int(header["NAXIS2"])
    frac_cov = 0.0
    rows = range(0, n, 16)  # every 16th row
    wmed = []
    for y in rows:
        w = np.asarray(wgt.data[y], dtype=np.float64)
        frac_cov += (w > 0).mean()
        wmed.append(np.median(w[w > 0]) if (w > 0).any() else 0.0)
    frac_cov /= len(rows)
    xs, ys, depth = predicted_depth(workdir, names, header, ccd_shape)
    wv = np.array([float(wgt.data[int(round(y)) - 1, int(round(x)) - 1]) for x, y in zip(xs, ys)])
    ok = depth > 0
    per = wv[ok] / depth[ok]  # stack weight per covering input: constant if the weights add up
    print(f"weight map: {100 * frac_cov:.2f}% of the {n}x{n} pixels covered; predicted depth at {len(xs)} random "
          f"pixels median {np.median(depth):.0f} (min {depth.min()}, max {depth.max()}); stack weight / depth: "
          f"median {np.median(per):.4g}, 1.48 MAD / median "
          f"{1.4826 * np.median(np.abs(per - np.median(per))) / np.median(per):.3f}; "
          f"zero weight where depth > 0: {(wv[ok] == 0).sum()}, non-zero where depth 0: {(wv[~ok] > 0).sum()}")
    # noise: robust rms of stack * sqrt(weight) in a central 2000x2000 box
    c = n // 2
    h = min(1000, n // 4)
    data = np.asarray(img.data[c - h:c + h, c - h:c + h], dtype=np.float64)
    ww = np.asarray(wgt.data[c - h:c + h, c - h:c + h], dtype=np.float64)
    chi = (data * np.sqrt(ww))[ww > 0]
    mad = 1.4826 * np.median(np.abs(chi - np.median(chi)))
    print(f"stack noise in a central {2 * h}x{2 * h} box: robust rms of pixel x sqrt(weight) = {mad:.3f} "
          f"(1 for uncorrelated noise; LANCZOS3 resampling correlates neighbouring pixels and lowers it), "
          f"median sky {np.median(data[ww > 0]):+.3g}, EXPTIME {header['EXPTIME']}, GAIN {header['GAIN']:.4g}",
          flush=True)


def swarp_check(workdir: Path, names, common, cut: int, size: int) -> None:
    """Co-add a ``cut`` x ``cut`` cutout at the quantum's centre with SWarp (grid from a .head beside its
    output) and compare with the plugin's stack there."""
    import numpy as np
    from astropy.io import fits

    swarp = shutil.which("SWarp") or shutil.which("swarp")
    if swarp is None:
        print("SWarp is not installed: no check against it")
        return
    img, wgt = _open_stack(workdir, False)
    h = img.header.copy()
    x0 = (size - cut) // 2  # 0-based first column/row of the cutout
    sub = fits.Header()
    for key in ("CTYPE1", "CTYPE2", "CRVAL1", "CRVAL2", "CD1_1", "CD1_2", "CD2_1", "CD2_2", "EQUINOX", "RADESYS"):
        if key in h:
            sub[key] = h[key]
    sub["NAXIS1"] = sub["NAXIS2"] = cut
    sub["CRPIX1"] = h["CRPIX1"] - x0
    sub["CRPIX2"] = h["CRPIX2"] - x0
    (workdir / "swarpcut.head").write_text(sub.tostring(sep="\n", endcard=True) + "\n")
    (workdir / "swarp_rs").mkdir(exist_ok=True)
    args = [a for a in common]
    for key in ("-CENTER_TYPE", "-CENTER", "-PIXELSCALE_TYPE", "-PIXEL_SCALE", "-IMAGE_SIZE"):
        i = args.index(key)
        del args[i:i + 2]
    print(f"SWarp on a {cut}x{cut} cutout of the quantum ({len(names)} inputs), load {os.getloadavg()}", flush=True)
    wall, rss, *_ = measure([swarp, *names, *args, "-IMAGEOUT_NAME", "swarpcut.fits", "-WEIGHTOUT_NAME",
                         "swarpcut.weight.fits", "-RESAMPLE_DIR", "swarp_rs", "-VERBOSE_TYPE", "QUIET"], workdir)
    ref = fits.getdata(workdir / "swarpcut.fits").astype(np.float64)
    wr = fits.getdata(workdir / "swarpcut.weight.fits").astype(np.float64)
    ours = np.asarray(img.data[x0:x0 + cut, x0:x0 + cut], dtype=np.float64)
    wo = np.asarray(wgt.data[x0:x0 + cut, x0:x0 + cut], dtype=np.float64)
    full = (wr > 0.8 * np.median(wr[wr > 0])) & (wo > 0)
    dev = (ours[full] - ref[full]) * np.sqrt(wr[full])
    print(f"SWarp cutout: {wall:.0f} s, peak RSS {rss:.0f} MB; pixels with full weight {full.sum()}: "
          f"(plugin - SWarp)/sigma median {np.median(dev):+.2e}, median |.| {np.median(np.abs(dev)):.2e}, "
          f"rms {np.sqrt(np.mean(dev ** 2)):.2e}; weight ratio median {np.median(wo[full] / wr[full]):.6f}",
          flush=True)
    shutil.rmtree(workdir / "swarp_rs", ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
