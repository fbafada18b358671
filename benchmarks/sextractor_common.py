"""What the two sextractor benchmarks share (``bench_sextractor.py``, ``bench_sextractor_throughput.py``):
the CFHTLS-like configuration given to both programs, the catalogue columns, reading LDAC catalogues,
matching sources by position, and running commands with their CPU time and memory measured.

CPU time is the user + system time of every process a command started, its orphans included: the
benchmark process makes itself the "child subreaper" of its descendants (Linux ``prctl``), so that a
process left to end after the command returned (the runner's fork server, ending as its client
exits) is reaped here and counted, instead of escaping the command's rusage.
"""
from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

__all__ = ["PARAMS", "write_config", "read_cat", "nearest", "run_pool", "TreeSampler"]

#: catalogue columns of both benchmarks (SCAMP's and PSFEx's needs, the CFHTLS photometry)
PARAMS = """NUMBER X_IMAGE Y_IMAGE XWIN_IMAGE YWIN_IMAGE ERRAWIN_IMAGE ERRBWIN_IMAGE ERRTHETAWIN_IMAGE
ALPHA_J2000 DELTA_J2000 MAG_AUTO MAGERR_AUTO FLUX_AUTO FLUXERR_AUTO MAG_APER(2) MAGERR_APER(2) FLUX_APER(2)
FLUX_RADIUS KRON_RADIUS FLAGS CLASS_STAR SNR_WIN ELONGATION FWHM_IMAGE""".split()


def write_config(d: Path, *, zeropoint: float, nnw: str, params=PARAMS, extra: str = "") -> Path:
    """``d/bench.sex`` (with ``bench.param`` and ``default.conv`` beside it): CFHTLS choices at
    0.186"/px, 256-pixel background meshes, 3" and 4" apertures; ``extra`` keyword lines appended."""
    cfg = d / "bench.sex"
    cfg.write_text(f"""CATALOG_TYPE FITS_LDAC
PARAMETERS_NAME {d / 'bench.param'}
DETECT_THRESH 1.5
ANALYSIS_THRESH 1.5
DETECT_MINAREA 5
FILTER_NAME {d / 'default.conv'}
BACK_SIZE 256
PHOT_APERTURES 16.13,21.51
SEEING_FWHM 0.8
PIXEL_SCALE 0.186
MAG_ZEROPOINT {zeropoint:.4f}
STARNNW_NAME {nnw}
VERBOSE_TYPE QUIET
{extra}""")
    (d / "bench.param").write_text("\n".join(params) + "\n")
    (d / "default.conv").write_text("CONV NORM\n1 2 1\n2 4 2\n1 2 1\n")
    return cfg


def read_cat(path) -> list:
    """The LDAC_OBJECTS table of each extension of a FITS_LDAC catalogue."""
    from terapix_fw.ldac import read_ldac

    return [ext.objects for ext in read_ldac(path)]


def nearest(ax, ay, bx, by):
    """(distance, index in b) of the nearest b source of each a source (inf, 0 when b is empty)."""
    from scipy.spatial import cKDTree

    if not len(bx):
        return np.full(len(ax), np.inf), np.zeros(len(ax), int)
    return cKDTree(np.c_[bx, by]).query(np.c_[ax, ay])


class TreeSampler:
    """Peak summed RSS of processes and their descendants (``roots``), sampled every ``interval`` s."""

    def __init__(self, interval=0.05):
        import psutil

        self.psutil, self.interval, self.peak = psutil, interval, 0
        self.roots: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        ps = self.psutil
        while not self._stop.is_set():
            total = 0
            for pid in list(self.roots):
                try:
                    root = ps.Process(pid)
                    for p in [root] + root.children(recursive=True):
                        total += p.memory_info().rss
                except ps.Error:
                    pass
            self.peak = max(self.peak, total)
            self._stop.wait(self.interval)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def _become_subreaper() -> bool:
    """Make orphaned descendants children of this process (Linux), so that they are waited for here."""
    try:
        import ctypes

        return ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0) == 0  # PR_SET_CHILD_SUBREAPER
    except (OSError, AttributeError):
        return False


def run_pool(commands, cwd, slots):
    """Run ``commands`` with at most ``slots`` at a time: (wall time until the last command returned,
    CPU user + system of every process they started, max RSS of one process, peak summed RSS)."""
    _become_subreaper()
    pending = list(commands)
    running = {}
    cpu, maxrss, wall = 0.0, 0, None
    t0 = time.perf_counter()
    with TreeSampler() as sampler:
        while True:
            while pending and len(running) < slots:
                p = subprocess.Popen(pending.pop(0), cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
                running[p.pid] = p
                sampler.roots.append(p.pid)
            try:
                pid, status, ru = os.wait4(-1, 0)  # the commands, and orphans of theirs that ended
            except ChildProcessError:
                break
            cpu += ru.ru_utime + ru.ru_stime
            maxrss = max(maxrss, ru.ru_maxrss * 1024)
            p = running.pop(pid, None)
            if p is None:
                continue
            sampler.roots.remove(pid)
            if status != 0:
                sys.exit(f"{' '.join(map(str, p.args))} failed:\n{p.stderr.read().decode()[-3000:]}")
            if not pending and not running:
                wall = time.perf_counter() - t0
    return wall, cpu, maxrss, sampler.peak
