"""Benchmark of the simulator: seconds per full MegaCam exposure (36 CCDs of 2048x4612, ~1e5 sources).

Target (issue 4): under 60 s on a 2-core machine.  SkyMaker (the C reference) is not packaged for this
system, so the ratio printed is against the target.  Wall time depends on what else runs on the machine;
the CPU time divided by the threads is what an otherwise idle machine would take.  Usage::

    python benchmarks/bench_simulate.py [--nccd 36] [--threads 2] [--density 1.0] [--keep DIR]

``--nccd`` < 36 simulates only the first CCDs of the mosaic and extrapolates per CCD (for a quick run).
"""
from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nccd", type=int, default=36)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--density", type=float, default=1.0)
    ap.add_argument("--keep", default=None, help="write into this directory and keep the files")
    args = ap.parse_args()

    from terapix_fw.sim import ExposureSpec, FocalPlane, megacam_focal_plane, simulate_exposure
    from terapix_fw.sim.render import render_mixtures  # noqa: F401 - numba cache warm-up below

    full = megacam_focal_plane()
    fp = FocalPlane(full.ccds[: args.nccd], full.pixscale, full.name) if args.nccd < 36 else full
    outdir = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="bench_sim_"))
    try:
        # warm-up on a tiny exposure so numba compilation (cached after the first run) is not timed
        from terapix_fw.sim import small_focal_plane
        simulate_exposure(outdir / "warm", seed=1, focal_plane=small_focal_plane(1, 256, 256), density=0.2)
        spec = ExposureSpec(exptime=600.0, density=args.density, satellite=True)
        load0 = os.getloadavg()[0]
        t0, c0 = time.perf_counter(), time.process_time()
        res = simulate_exposure(outdir, spec, seed=1, focal_plane=fp, nthreads=args.threads,
                                write_calibration=False)
        dt, cpu = time.perf_counter() - t0, time.process_time() - c0
        load1 = os.getloadavg()[0]
        nsrc_fp = len(res.truth)
        per_ccd = dt / fp.nccd
        full_time = per_ccd * 36
        print(f"CCDs simulated: {fp.nccd} of 36 ({fp.ccds[0].nx}x{fp.ccds[0].ny}), threads {args.threads}")
        print(f"sources on these CCDs: {nsrc_fp} (mag <= {spec.maglim}, density x{args.density})")
        print(f"wall time: {dt:.1f} s  -> {per_ccd:.2f} s per CCD, {full_time:.1f} s per 36-CCD exposure")
        print(f"CPU time (all threads): {cpu:.1f} s -> {cpu / fp.nccd * 36 / args.threads:.1f} s per 36-CCD "
              f"exposure on {args.threads} otherwise idle cores")
        print(f"load average during the run: {load0:.1f} -> {load1:.1f} (machine shared: wall time inflates)")
        print(f"MEF size: {res.path.stat().st_size / 1e6:.0f} MB")
        cpu_full = cpu / fp.nccd * 36 / args.threads
        print(f"ratio to the 60 s target: {full_time / 60.0:.2f} (wall, this load), "
              f"{cpu_full / 60.0:.2f} (CPU / threads); below 1 meets it")
    finally:
        if not args.keep:
            shutil.rmtree(outdir, ignore_errors=True)


if __name__ == "__main__":
    main()
