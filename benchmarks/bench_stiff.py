"""Benchmark of the stiff plugin against the real STIFF (Debian's ``stiff`` 2.4) in the same run.

A synthetic stack of N x N float32 pixels (BITPIX -32, default N = 19354, 1.5 GB, as a CFHTLS Wide
stack) with sky noise and stars is written once; both programs then make a 1000-pixel thumbnail of it
(8-bit TIFF, ``BINNING = ceil(N / 1000)``, no compression, STIFF's default levels), each in its own
process, twice (the first pass of each warms the page cache for the second: the best time is kept).

Printed: wall time of each, the time ratio (terapix / stiff), the peak resident memory of each process
(GNU ``time -f %M``) and their ratio, the levels of each, and the fraction of thumbnail pixels
that differ by more than 1 DN.

Usage::

    python benchmarks/bench_stiff.py [--size 19354] [--thumb 1000] [--workdir DIR]
"""
from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def make_stack(path: Path, n: int, seed: int = 1) -> None:
    """N x N float32 stack written by strips (bounded memory): sky 0 +- 5, 20 stars per 1000 x 1000."""
    from astropy.io import fits

    header = fits.Header()
    header["SIMPLE"] = True
    header["BITPIX"] = -32
    header["NAXIS"] = 2
    header["NAXIS1"] = n
    header["NAXIS2"] = n
    header.tofile(path, overwrite=True)
    rng = np.random.default_rng(seed)
    strip = 512
    with open(path, "ab") as f:
        for y0 in range(0, n, strip):
            rows = min(strip, n - y0)
            block = rng.normal(0.0, 5.0, (rows, n)).astype(np.float32)
            nstars = max(1, int(20 * rows * n / 1e6))
            xs = rng.integers(3, n - 3, nstars)
            ys = rng.integers(0, rows, nstars)
            block[ys, xs] += rng.uniform(50, 20000, nstars).astype(np.float32)
            f.write(block.astype(">f4").tobytes())
        pad = (-(n * n * 4)) % 2880
        f.write(b"\0" * pad)


_OURS = """
import sys
from terapix_stiff import render, Settings, write_picture
pic = render(sys.argv[1], Settings(binning=(int(sys.argv[3]),) * 2))
write_picture(sys.argv[2], pic.pixels, compression="NONE")
lev = pic.levels[0]
print(f"Background level: {lev.sky:g} Min level: {lev.min:g} Max level: {lev.max:g}")
"""


def timed(cmd: list[str], cwd: Path) -> tuple[float, int, str]:
    """Wall time, peak RSS (kB) and output of a command, run under GNU time (``%M``: the high-water mark
    of the program itself; a child's ``ru_maxrss`` seen from Python would include this parent's pages
    copied at the fork)."""
    t0 = time.perf_counter()
    proc = subprocess.run(["/usr/bin/time", "-f", "MAXRSS %M", *cmd], cwd=cwd, capture_output=True, text=True)
    elapsed = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{cmd[0]} failed:\n{proc.stdout}{proc.stderr}")
    rss = int(re.findall(r"MAXRSS (\d+)", proc.stderr)[-1])
    return elapsed, rss, proc.stdout + proc.stderr


def levels(text: str) -> tuple[float, float, float]:
    m = re.search(r"Background level:\s*(\S+)\s+Min level:\s*(\S+)\s+Max level:\s*(\S+)", text)
    return tuple(float(v) for v in m.groups())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=19354)
    ap.add_argument("--thumb", type=int, default=1000)
    ap.add_argument("--workdir", type=Path, default=None)
    args = ap.parse_args()
    stiff = shutil.which("stiff")
    if stiff is None:
        raise SystemExit("the real stiff is not installed (apt-get install stiff)")
    work = Path(args.workdir or tempfile.mkdtemp(prefix="bench_stiff_"))
    work.mkdir(parents=True, exist_ok=True)
    stack = work / "stack.fits"
    n = args.size
    binning = -(-n // args.thumb)
    t0 = time.perf_counter()
    if not stack.exists() or stack.stat().st_size < n * n * 4:
        make_stack(stack, n)
    print(f"stack {n} x {n} float32 ({stack.stat().st_size / 1e9:.2f} GB) ready in {time.perf_counter() - t0:.1f} s; "
          f"BINNING {binning} -> {-(-n // binning)} pixels")
    ref_cmd = [stiff, str(stack), "-OUTFILE_NAME", str(work / "ref.tif"), "-BINNING", str(binning),
               "-COMPRESSION_TYPE", "NONE", "-WRITE_XML", "N", "-NTHREADS", "1"]
    our_cmd = [sys.executable, "-c", _OURS, str(stack), str(work / "ours.tif"), str(binning)]
    best = {}
    for attempt in range(2):
        for name, cmd in (("stiff", ref_cmd), ("terapix", our_cmd)):
            elapsed, rss, out = timed(cmd, work)
            print(f"  pass {attempt + 1} {name:8s}: {elapsed:7.2f} s, peak RSS {rss / 1024:8.1f} MB")
            if name not in best or elapsed < best[name][0]:
                best[name] = (elapsed, rss, out)
    (ts, ms, outs), (tt, mt, outt) = best["stiff"], best["terapix"]
    print(f"time: stiff {ts:.2f} s, terapix {tt:.2f} s, ratio terapix/stiff = {tt / ts:.2f}")
    print(f"peak memory: stiff {ms / 1024:.1f} MB, terapix {mt / 1024:.1f} MB (stack {stack.stat().st_size / 2**20:.0f} MB), "
          f"ratio terapix/stiff = {mt / ms:.2f}")
    ls, lt = levels(outs), levels(outt)
    print(f"levels (sky, min, max): stiff {ls}, terapix {lt}")
    import tifffile

    a = tifffile.imread(work / "ref.tif").astype(int)
    b = tifffile.imread(work / "ours.tif").astype(int)
    print(f"thumbnail {b.shape[1]} x {b.shape[0]} (stiff {a.shape[1]} x {a.shape[0]}): "
          f"{np.mean(np.abs(a - b) > 1) * 100:.3f} % of pixels differ by more than 1 DN, max {np.abs(a - b).max()}")
    if args.workdir is None:
        shutil.rmtree(work)


if __name__ == "__main__":
    main()
