"""Running the AstrOmatic reference programs (and the same command lines for terapix-fw's drop-ins) on a
``galsim_survey`` directory, for regression tests and benchmarks that compare both on the same inputs.

Nothing here imports ``terapix_fw``: the framework's tools are run as users run them, through the
``terapix tool NAME`` command line.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

__all__ = ["SCAMP_PARAMS", "SCAMP_CONFIG", "program", "float32_copy", "sextractor_catalogs", "run_scamp",
           "terapix_command"]

#: the catalogue columns SCAMP reads (and a few it can use)
SCAMP_PARAMS = ["XWIN_IMAGE", "YWIN_IMAGE", "ERRAWIN_IMAGE", "ERRBWIN_IMAGE", "ERRTHETAWIN_IMAGE", "FLUX_AUTO",
                "FLUXERR_AUTO", "MAG_AUTO", "FLAGS", "FLAGS_WEIGHT", "FLUX_RADIUS", "ELONGATION", "SNR_WIN"]

#: issue 14's configuration, identical for SCAMP and the scamp drop-in
SCAMP_CONFIG = {"ASTREF_CATALOG": "FILE", "MOSAIC_TYPE": "UNCHANGED", "DISTORT_DEGREES": "3",
                "ASTRINSTRU_KEY": "FILTER,QRUNID", "STABILITY_TYPE": "INSTRUMENT", "SOLVE_PHOTOM": "Y",
                "MAGZERO_OUT": "30", "CHECKPLOT_DEV": "NULL", "WRITE_XML": "Y"}

DEFAULT_CONV = "CONV NORM\n1 2 1\n2 4 2\n1 2 1\n"


def program(name: str) -> str | None:
    """Path of an AstrOmatic program, or None."""
    return shutil.which(name)


def terapix_command() -> list[str]:
    """The ``terapix`` command of the running interpreter's environment."""
    exe = Path(sys.executable).with_name("terapix")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "terapix_fw.cli"]


def float32_copy(src: Path, dst: Path) -> Path:
    """A float32 copy of a raw 16-bit MEF (for readers that cannot take scaled integers)."""
    import numpy as np
    from astropy.io import fits

    with fits.open(src) as h:
        out = [fits.PrimaryHDU(header=h[0].header)]
        for hdu in h[1:]:
            img = fits.ImageHDU(hdu.data.astype(np.float32), header=hdu.header)
            for key in ("BZERO", "BSCALE"):
                img.header.remove(key, ignore_missing=True)
            out.append(img)
        fits.HDUList(out).writeto(dst, overwrite=True)
    return dst


def _env(workdir: Path) -> dict:
    """The environment of a drop-in run: its own TERAPIX_HOME (drop-in runs record in
    $TERAPIX_HOME/rdbix.sqlite; a shared one may be at another schema revision)."""
    env = dict(os.environ)
    env["TERAPIX_HOME"] = str(Path(workdir).resolve() / ".terapix")
    env.pop("TERAPIX_DB_URL", None)
    return env


def _setup(workdir: Path) -> None:
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "scamp.param").write_text("\n".join(SCAMP_PARAMS) + "\n")
    (workdir / "default.conv").write_text(DEFAULT_CONV)


def sextractor_catalogs(survey: Path, workdir: Path, ours: bool = False, extra_params: tuple = (),
                        extra_args: tuple = ()) -> tuple[list[Path], float]:
    """FITS_LDAC catalogues of every exposure of ``survey`` in ``workdir`` (weight maps on), made by the
    real ``source-extractor`` or, with ``ours``, by ``terapix tool sextractor`` (on float32 copies), with
    :data:`SCAMP_PARAMS` + ``extra_params`` and ``extra_args`` (e.g. ``("-PHOT_APERTURES", "40")``) on
    the command line.  Returns the catalogues and the wall time (s)."""
    survey, workdir = Path(survey), Path(workdir)
    _setup(workdir)
    if extra_params:
        (workdir / "scamp.param").write_text("\n".join(SCAMP_PARAMS + list(extra_params)) + "\n")
    images = sorted(p for p in survey.iterdir() if p.name.endswith(("p.fits", "p.fits.fz")))
    cats = []
    t0 = time.perf_counter()
    for img in images:
        stem = img.name.split(".")[0]
        cat = workdir / f"{stem}.cat"
        args = ["-CATALOG_NAME", str(cat), "-CATALOG_TYPE", "FITS_LDAC",
                "-PARAMETERS_NAME", str(workdir / "scamp.param"), "-FILTER_NAME", str(workdir / "default.conv"),
                "-WEIGHT_TYPE", "MAP_WEIGHT", "-WEIGHT_IMAGE", str(survey / f"{stem}.weight.fits"),
                "-VERBOSE_TYPE", "QUIET", *extra_args]
        if ours:
            src = float32_copy(img, workdir / f"{stem}.f32.fits")
            cmd = terapix_command() + ["tool", "sextractor", str(src)] + args
        else:
            cmd = [program("source-extractor") or "source-extractor", str(img)] + args
        res = subprocess.run(cmd, capture_output=True, text=True, cwd=workdir, env=_env(workdir))
        if res.returncode != 0 or not cat.exists():
            raise RuntimeError(f"{' '.join(cmd[:4])}: failed on {img}: {res.stderr.strip()[-500:]}")
        cats.append(cat)
    return cats, time.perf_counter() - t0


def run_scamp(cats: list[Path], refcat: Path, workdir: Path, ours: bool, extra: dict | None = None,
              nthreads: int | None = None) -> dict:
    """SCAMP (or ``terapix tool scamp``) on copies of ``cats`` in ``workdir`` with :data:`SCAMP_CONFIG`.
    Returns {"ok", "seconds", "heads", "xml", "stdout", "stderr"}."""
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    local = []
    for c in cats:
        dst = workdir / Path(c).name
        if Path(c).resolve() != dst.resolve():
            shutil.copyfile(c, dst)
        dst.with_suffix(".head").unlink(missing_ok=True)
        local.append(dst)
    conf = dict(SCAMP_CONFIG, ASTREFCAT_NAME=str(Path(refcat).resolve()), XML_NAME="scamp.xml")
    if nthreads:
        conf["NTHREADS"] = str(nthreads)
    conf.update(extra or {})
    args = []
    for k, v in conf.items():
        args += [f"-{k}", v]
    if ours:
        cmd = terapix_command() + ["tool", "scamp"] + [p.name for p in local] + args
    else:
        exe = program("scamp") or "scamp"
        dd = subprocess.run([exe, "-dd"], capture_output=True, text=True).stdout
        (workdir / "default.scamp").write_text(dd)
        cmd = [exe] + [p.name for p in local] + ["-c", "default.scamp"] + args
    env = _env(workdir)
    t0 = time.perf_counter()
    res = subprocess.run(cmd, capture_output=True, text=True, cwd=workdir, env=env)
    seconds = time.perf_counter() - t0
    heads = [p.with_suffix(".head") for p in local]
    ok = res.returncode == 0 and all(h.exists() for h in heads)
    return {"ok": ok, "seconds": seconds, "heads": heads, "xml": workdir / "scamp.xml", "stdout": res.stdout,
            "stderr": res.stderr, "returncode": res.returncode}
