"""Benchmark: start-up floor of the drop-in tools against the AstrOmatic programs on tiny inputs (issue 14).

    python benchmarks/bench_startup.py [--repeat N] [--tools sextractor,swarp,psfex,weightwatcher] [--workdir DIR]

Users run ``terapix tool sextractor cutout.fits[3]`` on thousands of cut-outs from scripts, where the
start-up is nearly all of the time.  The input is a 4-extension MEF of 256x576 CCDs, BITPIX 16 with BZERO
32768 as raw MegaCam, 40 Gaussian stars per CCD and a TAN WCS; each tool is run as a whole process
(start-up, recording in RDBix and exit included) with the same command line as its AstrOmatic
counterpart:

* sextractor: ``small.fits[3]``, FITS_LDAC catalogue of a typical parameter list (world coordinates,
  AUTO, aperture, FLUX_RADIUS, CLASS_STAR) against ``source-extractor``;
* swarp: the same CCD as a single-extension file, resampled and co-added alone, against ``SWarp``;
* psfex: the LDAC catalogue with 35x35 vignets that ``source-extractor`` makes of that CCD, against ``psfex``;
* weightwatcher: a flat weight map and a flag map of the CCD's size, against ``weightwatcher``.

Each of our tools is measured three ways, as a user sees it:

* ``off``: ``TERAPIX_TOOL_SERVER=off``, the command runs alone (Python, numpy, astropy, numba, SQLAlchemy
  loaded by every command);
* ``first``: the default with no tool server running: the command runs itself and starts the detached
  server in the background (its start-up competes with the command for the cores);
* ``next``: the default once that server answers: the command is forked from it.  Its CPU time is the
  command's plus the forked process's (read from the server's ``/proc`` accounting of its children).

Each round stops the server, runs the AstrOmatic program, ``off``, ``first``, waits for the server to
answer, then ``next`` (``--repeat`` rounds, after one unmeasured run of the program and of ``off`` that
creates the user's RDBix and fills the numba and OS caches).  Printed per tool: median wall time, median
CPU time (user + system of the process and all its children, less sensitive than wall time to the other
jobs on a shared machine) and median peak RSS (largest process), for each and the reference, the ratios,
and the CPU the server spent starting (in the background, once per idle period).  The load average is
printed: wall times on a busy machine are not the quiet-machine floor.  No server is left running.
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

TERAPIX = [sys.executable, "-c", "import sys; from terapix_fw.cli import run; sys.argv[0] = 'terapix'; run()"]

PARAMS = """NUMBER X_IMAGE Y_IMAGE XWIN_IMAGE YWIN_IMAGE ALPHA_J2000 DELTA_J2000 MAG_AUTO MAGERR_AUTO
FLUX_AUTO FLUXERR_AUTO MAG_APER(2) FLUX_APER(2) FLUX_RADIUS FWHM_IMAGE ELONGATION FLAGS CLASS_STAR""".split()
PSFEX_PARAMS = """X_IMAGE Y_IMAGE FLUX_APER(1) FLUXERR_APER(1) FLUX_RADIUS ELONGATION FLAGS SNR_WIN
VIGNET(35,35)""".split()


def make_inputs(d: Path, nccd: int = 4, shape=(576, 256), seed: int = 1) -> None:
    """small.fits (MEF), ccd.fits (its 3rd CCD alone), flat/flag maps, parameter and filter files."""
    from astropy.io import fits

    rng = np.random.default_rng(seed)
    ny, nx = shape
    y, x = np.mgrid[:ny, :nx]
    hdus = [fits.PrimaryHDU()]
    for k in range(nccd):
        img = rng.normal(1000.0, 10.0, shape)
        for _ in range(40):
            x0, y0, flux, sigma = rng.uniform(5, nx - 5), rng.uniform(5, ny - 5), rng.uniform(1e3, 1e5), 1.5
            img += flux / (2 * np.pi * sigma**2) * np.exp(-((x - x0) ** 2 + (y - y0) ** 2) / (2 * sigma**2))
        header = fits.Header({"EXTNAME": f"ccd{k:02d}", "CTYPE1": "RA---TAN", "CTYPE2": "DEC--TAN",
                              "CRPIX1": nx / 2 + 0.5 - k * nx, "CRPIX2": ny / 2 + 0.5, "CRVAL1": 150.0,
                              "CRVAL2": 2.0, "CD1_1": -5.17e-5, "CD1_2": 0.0, "CD2_1": 0.0, "CD2_2": 5.17e-5,
                              "GAIN": 1.6, "SATURATE": 60000.0, "EQUINOX": 2000.0, "RADESYS": "ICRS"})
        # raw camera integers: BITPIX 16 with BZERO 32768
        hdu = fits.ImageHDU(np.clip(np.round(img), 0, 65535).astype(np.uint16), header)
        hdus.append(hdu)
    fits.HDUList(hdus).writeto(d / "small.fits", overwrite=True)
    fits.PrimaryHDU(hdus[3].data, hdus[3].header).writeto(d / "ccd.fits", overwrite=True)
    fits.PrimaryHDU(np.ones(shape, np.float32)).writeto(d / "flat.fits", overwrite=True)
    flags = np.zeros(shape, np.int16)
    flags[:, 100] = 1  # a bad column
    fits.PrimaryHDU(flags).writeto(d / "flag.fits", overwrite=True)
    (d / "default.param").write_text("\n".join(PARAMS) + "\n")
    (d / "psfex.param").write_text("\n".join(PSFEX_PARAMS) + "\n")
    (d / "default.conv").write_text("CONV NORM\n1 2 1\n2 4 2\n1 2 1\n")
    nnw = Path("/usr/share/source-extractor/default.nnw")
    if nnw.exists():
        shutil.copy(nnw, d / "default.nnw")


def cases(d: Path) -> dict[str, tuple[list[str], list[str]]]:
    """tool -> (our command line, the AstrOmatic program's), run in ``d``."""
    sex = ["-CATALOG_TYPE", "FITS_LDAC", "-VERBOSE_TYPE", "QUIET"]
    swarp = ["-IMAGEOUT_NAME", "coadd.fits", "-WEIGHTOUT_NAME", "coadd.weight.fits", "-VERBOSE_TYPE", "QUIET",
             "-WRITE_XML", "N", "-NTHREADS", "1"]
    psfex = ["-VERBOSE_TYPE", "QUIET", "-WRITE_XML", "N"]
    psfex_c = ["-CHECKPLOT_TYPE", "NONE", "-CHECKIMAGE_TYPE", "NONE"]  # ours makes neither: the PSF only
    ww = ["-WEIGHT_NAMES", "flat.fits", "-FLAG_NAMES", "flag.fits", "-OUTWEIGHT_NAME", "w.fits",
          "-OUTFLAG_NAME", "f.fits", "-VERBOSE_TYPE", "QUIET", "-WRITE_XML", "N"]
    return {
        "sextractor": (TERAPIX + ["tool", "sextractor", "small.fits[3]"] + sex,
                       ["source-extractor", "small.fits[3]"] + sex),
        "swarp": (TERAPIX + ["tool", "swarp", "ccd.fits"] + swarp, ["SWarp", "ccd.fits"] + swarp),
        "psfex": (TERAPIX + ["tool", "psfex", "prepsfex.cat"] + psfex, ["psfex", "prepsfex.cat"] + psfex + psfex_c),
        "weightwatcher": (TERAPIX + ["tool", "weightwatcher", "ccd.fits"] + ww, ["weightwatcher"] + ww),
    }


def run_measured(cmd: list[str], cwd: Path, env: dict) -> tuple[float, float, float]:
    """(wall s, CPU s of the process and every child it waited for, peak RSS MB of the largest of them).

    Through GNU time: a child forked from this (large) Python process would report this process's
    resident size as its own peak (Linux keeps the high-water mark across exec)."""
    import time

    report = cwd / "last.time"
    with open(cwd / "last.out", "wb") as out, open(cwd / "last.err", "wb") as err:
        t0 = time.perf_counter()
        code = subprocess.run(["/usr/bin/time", "-o", str(report), "-f", "%U %S %M"] + cmd, cwd=cwd, env=env,
                              stdout=out, stderr=err).returncode
        wall = time.perf_counter() - t0
    if code != 0:
        sys.exit(f"{' '.join(cmd)} failed ({code}):\n{(cwd / 'last.err').read_text()[-2000:]}")
    user, system, rss_kb = report.read_text().split()[-3:]
    return wall, float(user) + float(system), float(rss_kb) / 1024.0


def _children_cpu(pid: int) -> float:
    """CPU seconds of the reaped children of ``pid`` (Linux /proc: cutime + cstime)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[13]) + int(fields[14])) / os.sysconf("SC_CLK_TCK")


def _own_cpu(pid: int) -> float:
    """CPU seconds of process ``pid`` itself (utime + stime)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _wait_children_reaped(pid: int, timeout: float = 30.0) -> None:
    import time

    children = Path(f"/proc/{pid}/task/{pid}/children")
    end = time.monotonic() + timeout
    while children.read_text().strip() and time.monotonic() < end:
        time.sleep(0.01)


def _server(env: dict) -> dict | None:
    """The status of the user's tool server (``terapix tool-server --status``), or None."""
    from terapix_fw.toolserver import NotServed, default_socket, query

    home = Path(env["TERAPIX_HOME"])
    try:
        return query(str(home / default_socket().name))
    except NotServed:
        return None


def _wait_server(env: dict, timeout: float = 120.0) -> dict:
    import time

    end = time.monotonic() + timeout
    while time.monotonic() < end:
        status = _server(env)
        if status:
            return status
        time.sleep(0.01)
    sys.exit(f"no tool server answered in {env['TERAPIX_HOME']} {timeout:g} s after the first command")


def _stop_server(env: dict) -> None:
    subprocess.run(TERAPIX + ["tool-server", "--stop"], env=env, stdout=subprocess.DEVNULL, check=True)


def default_round(cmd: list[str], d: Path, env: dict) -> tuple[tuple, tuple, float]:
    """With no server running: the first command (which starts one), then, once it answers, the next
    command (served).  (first figures, next figures, the server's own start-up CPU)."""
    _stop_server(env)
    first = run_measured(cmd, d, env)
    server = _wait_server(env)["pid"]
    startup_cpu = _own_cpu(server)
    before = _children_cpu(server)
    wall, cpu, rss = run_measured(cmd, d, env)
    if not Path(f"/proc/{server}").exists():  # it refused the command (and left): it did not serve it
        sys.exit(f"the tool server refused the next command (see {env['TERAPIX_HOME']}/tool-server.log): were "
                 "terapix-fw's or a plugin's source files changed during the benchmark?")
    _wait_children_reaped(server)
    return first, (wall, cpu + _children_cpu(server) - before, rss), startup_cpu


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--tools", default="sextractor,swarp,psfex,weightwatcher")
    ap.add_argument("--workdir", default=None, help="keep the inputs and outputs here (default: a temporary dir)")
    args = ap.parse_args()
    if not Path("/usr/bin/time").exists():
        sys.exit("GNU time (/usr/bin/time, Debian package 'time') is needed to measure each run's CPU and memory")
    d = Path(args.workdir or tempfile.mkdtemp(prefix="bench-startup-"))
    d.mkdir(parents=True, exist_ok=True)
    make_inputs(d)
    env = dict(os.environ, TERAPIX_HOME=str(d / "terapix-home"))  # a fresh RDBix, created by the warm-up run
    # a user's Python writes the bytecode of the editable sources once; with PYTHONDONTWRITEBYTECODE
    # set (some sandboxes do), every command would compile the edited modules again
    for var in ("TERAPIX_DB_URL", "TERAPIX_DBCLIENT_URL", "TERAPIX_TOOL_SERVER", "PYTHONDONTWRITEBYTECODE"):
        env.pop(var, None)
    env_off = dict(env, TERAPIX_TOOL_SERVER="off")
    all_cases = cases(d)
    if "psfex" in args.tools:  # its input: source-extractor's catalogue with vignets
        subprocess.run(["source-extractor", "ccd.fits", "-CATALOG_TYPE", "FITS_LDAC", "-CATALOG_NAME",
                        "prepsfex.cat", "-PARAMETERS_NAME", "psfex.param", "-VERBOSE_TYPE", "QUIET"],
                       cwd=d, check=True)
    print(f"inputs in {d}; load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}; "
          f"{os.cpu_count()} cores; {args.repeat} runs each (medians)")
    print(f"{'tool':<14} {'':>16} {'wall s':>8} {'CPU s':>8} {'peak MB':>8}")
    try:
        for tool in args.tools.split(","):
            ours, ref = all_cases[tool]
            if not shutil.which(ref[0]):
                print(f"{tool:<14} reference program {ref[0]} not installed: skipped")
                continue
            runs: dict[str, list] = {ref[0]: [], "off": [], "first": [], "next": []}
            startup: list[float] = []
            run_measured(ref, d, env)  # unmeasured: RDBix creation, caches
            run_measured(ours, d, env_off)
            for _ in range(args.repeat):
                runs[ref[0]].append(run_measured(ref, d, env))
                runs["off"].append(run_measured(ours, d, env_off))
                first, nxt, cpu = default_round(ours, d, env)
                runs["first"].append(first)
                runs["next"].append(nxt)
                startup.append(cpu)
            _stop_server(env)
            med = {label: [statistics.median(f[i] for f in r) for i in range(3)] for label, r in runs.items()}
            for label, (wall, cpu, rss) in med.items():
                print(f"{tool:<14} {label:>16} {wall:8.3f} {cpu:8.3f} {rss:8.1f}")
            w0, c0, r0 = med[ref[0]]
            for label in [k for k in med if k != ref[0]]:
                w1, c1, r1 = med[label]
                # GNU time counts CPU in 10 ms ticks: a C program's start-up often rounds to 0
                cpu_ratio = f"{c1 / c0:8.1f}" if c0 >= 0.01 else f"{'>' + format(c1 / 0.01, '.0f'):>8}"
                print(f"{tool:<14} {'ratio ' + label:>16} {w1 / w0:8.1f} {cpu_ratio} {r1 / r0:8.1f}   "
                      f"(wall spread {min(f[0] for f in runs[label]):.3f}-{max(f[0] for f in runs[label]):.3f} s)")
            print(f"{tool:<14} {'server start-up':>16} {'':>8} {statistics.median(startup):8.3f}   "
                  "(CPU of the server started by `first`, in the background, once per idle period)")
    finally:
        _stop_server(env)
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    if not args.workdir:
        shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    main()
