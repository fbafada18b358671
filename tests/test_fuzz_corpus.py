"""Every drop-in tool on every file of the FITS fuzz corpus (issue 13).

For each file a tool either gives a correct result or fails with one line, from the framework's own
errors, naming the file; never a Python traceback on the terminal, never a hang, never a product computed
from nonsense accepted with exit 0.

How it runs (CI budget: well under 3 minutes on 2 busy cores)
    The corpus (``terapix_testdata.fuzz``, a couple of hundred small files) is made once per session.  Each
    tool runs in one Python process of its own through :func:`terapix_fw.execute.execute_unit`, the function a
    drop-in ``terapix tool`` run executes, with ``echo`` on and the terminal (stderr) captured per file; two
    tools run at a time, each in a fresh interpreter.  A few files go through the real ``terapix tool`` command in a subprocess to show
    the terminal behaviour and the exit code.

Outcome classes (columns of the table printed at the end)
    correct      exit 0 and the product passes the checks of :func:`_check` (same catalogue/maps/stack/grade
                 as the control file holding the same pixels; no source in a masked block; no source, or
                 grade D, for an image where nothing can be measured; finite coordinates)
    clean error  the unit failed with a TerapixError (ToolError, FitsReadError, ConfigError) whose message
                 is one line naming the file
    traceback    any other exception, an error line that does not name the file, or "Traceback" on the
                 terminal
    hang         the tool spent more than :data:`BOUND_CPU_S` seconds of CPU on the file (a loop), or was
                 not done after :data:`BOUND_WALL_S` seconds (blocked); CPU time, not wall time, is the
                 bound that matters, so that a busy machine cannot turn a slow correct run into a "hang"
    wrong        exit 0 where the case requires an error, or a product that fails its checks
"""
from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import pytest

BOUND_CPU_S = 120  # CPU seconds no file may take (the slowest correct case, SCAMP's fit, takes ~20 s)
BOUND_WALL_S = 900  # a tool blocked (not computing) on a file: generous, the machine may be very busy
OUTCOMES = ("correct", "clean error", "traceback", "hang", "wrong")
IMAGE_TOOLS = ("sextractor", "weightwatcher", "qualityfits", "swarp", "skywatcher")
CATALOG_TOOLS = ("psfex", "scamp")
TOOLS = IMAGE_TOOLS + CATALOG_TOOLS
CLEAN_ERRORS = ("ToolError", "FitsReadError", "ConfigError", "InstructionError")

PARAMS = ("NUMBER X_IMAGE Y_IMAGE XWIN_IMAGE YWIN_IMAGE XWIN_WORLD YWIN_WORLD FLUX_AUTO FLUXERR_AUTO "
          "MAG_AUTO FLUX_RADIUS FLAGS SNR_WIN").split()


def _argv(tool, case, workdir, outdir=None):
    """The drop-in command line of ``tool`` on ``case`` (outputs relative to the case's directory)."""
    arg = case.argument
    if tool == "sextractor":
        return [arg, "-CATALOG_NAME", "cat.ldac", "-CATALOG_TYPE", "FITS_LDAC", "-PARAMETERS_NAME",
                str(workdir / "fuzz.param"), "-NTHREADS", "1", "-WRITE_XML", "N"]
    if tool == "weightwatcher":
        return [arg, "-OUTWEIGHT_NAME", "w.fits", "-OUTFLAG_NAME", "f.fits", "-WRITE_XML", "N", "-NTHREADS", "1"]
    if tool == "qualityfits":
        return [arg, "-WRITE_PLOTS", "N"]
    if tool == "swarp":
        return [arg, "-IMAGEOUT_NAME", "coadd.fits", "-WEIGHTOUT_NAME", "coadd.weight.fits", "-WRITE_XML", "N",
                "-NTHREADS", "1", "-RESAMPLE_DIR", "."]
    if tool == "skywatcher":
        return [arg, "-CHECKPLOT_TYPE", "NONE", "-NSIDE", "1024"]
    if tool == "psfex":
        return [arg, "-WRITE_XML", "N", "-NTHREADS", "1", "-PSF_DIR", str(outdir)]
    if tool == "scamp":
        return [arg, "-ASTREF_CATALOG", "FILE", "-ASTREFCAT_NAME", str(workdir / "corpus" / "ldac-good.ldac"),
                "-ASTREFCENT_KEYS", "XWIN_WORLD,YWIN_WORLD",
                "-ASTREFERR_KEYS", "ERRAWIN_WORLD,ERRBWIN_WORLD,ERRTHETAWIN_WORLD",
                "-ASTREFMAG_KEY", "MAG_AUTO", "-ASTREFMAGERR_KEY", "MAGERR_AUTO",
                "-CHECKPLOT_TYPE", "NONE", "-WRITE_XML", "N", "-SOLVE_PHOTOM", "N", "-NTHREADS", "1",
                "-HEADER_NAME", "out.head"]
    raise AssertionError(tool)


def expected(tool: str, case) -> set[str]:
    """The outcomes allowed for ``tool`` on ``case`` ("correct" / "clean error"), by case class."""
    k, name = case.klass, case.name
    if tool in CATALOG_TOOLS:
        if k != "ldac":
            return {"clean error"}  # an image is not a catalogue
        if name.endswith("/good"):
            return {"correct"} if tool == "psfex" else {"correct", "clean error"}
        if name.endswith("/zero-rows"):
            return {"correct", "clean error"}
        return {"clean error"}
    if k == "ldac":
        if tool != "skywatcher":
            return {"clean error"}
        # skywatcher reads the LDAC_IMHEAD headers only
        return {"clean error"} if name.endswith("/truncated") else {"correct", "clean error"}
    if k in ("truncated", "wrong_bitpix", "naxis_zero", "huge_naxis", "missing_end"):
        return {"clean error"}
    if k == "header_bytes":
        return {"correct", "clean error"}
    if k == "valid":
        return {"correct"}
    if k in ("nan_inf", "flat"):
        if tool == "swarp" and case.meta.get("unmeasurable"):
            return {"correct", "clean error"}  # nothing to resample: an empty stack or a refusal
        return {"correct"}
    if k == "tiny":
        return {"correct", "clean error"}
    if k == "many_extensions":
        return {"clean error"} if "2000" in name else {"correct", "clean error"}  # 2000: over the limit
    if k == "extname":
        return {"clean error"} if "/select-" in name else {"correct"}
    if k == "broken_wcs":
        # world coordinates or a sky grid need the WCS: refused naming the keyword; weightwatcher does not
        # use it; qualityfits grades the exposure D (n_ccd_nowcs)
        return {"correct"} if tool in ("weightwatcher", "qualityfits") else {"clean error"}
    if k in ("bad_gain", "bad_saturate"):
        if tool == "skywatcher":
            return {"correct"}
        if k == "bad_gain" and case.meta["value"] == "0.0":
            return {"correct"}  # GAIN 0 = infinite gain, as SExtractor's and SWarp's
        return {"clean error"}
    if k == "bad_exptime":
        if tool == "qualityfits":
            return {"clean error"}
        if tool in ("swarp", "skywatcher") and case.meta["value"] != "0.0":
            return {"clean error"}
        return {"correct"}
    raise AssertionError(f"no expectation for class {k}")


# ------------------------------------------------------------------------------------------------------
# checks of a product accepted with exit 0

def _image_count(case):
    if case.selector:
        return 1
    if "nimages" in case.meta:  # damaged headers: astropy may merge HDUs (an END card with garbage)
        return case.meta["nimages"]
    from astropy.io import fits

    with fits.open(case.path) as hdul:
        return sum(1 for h in hdul if h.is_image and h.header.get("NAXIS", 0) >= 2 or
                   h.header.get("ZIMAGE"))


def _sextractor(outdir, case):
    from astropy.io import fits

    cats = []
    with fits.open(outdir / "cat.ldac") as hdul:
        for hdu in hdul:
            if hdu.name == "LDAC_OBJECTS":
                cats.append({c: np.asarray(hdu.data[c]) for c in ("X_IMAGE", "Y_IMAGE", "XWIN_WORLD",
                                                                  "YWIN_WORLD", "FLUX_AUTO")})
    return cats


class _Bad(Exception):
    """A product accepted with exit 0 that is wrong (the message says why)."""


def _check(tool, case, outdir, records, controls):
    """What to compare other files with when the product of an exit-0 run is right; raises :class:`_Bad`
    saying why when it is not."""
    from astropy.io import fits

    unmeasurable = case.meta.get("unmeasurable", False)
    control = controls.get((tool, case.control)) if case.control else None
    if tool == "sextractor":
        cats = _sextractor(outdir, case)
        n = sum(len(c["X_IMAGE"]) for c in cats)
        if unmeasurable and n:
            raise _Bad(f"{n} sources in an image with nothing to detect")
        for c in cats:
            for key in ("X_IMAGE", "Y_IMAGE", "XWIN_WORLD", "YWIN_WORLD"):
                if not np.all(np.isfinite(c[key])):
                    raise _Bad(f"non-finite {key}")
            if len(c["YWIN_WORLD"]) and np.abs(c["YWIN_WORLD"]).max() > 90:
                raise _Bad("declination beyond 90 deg")
            if "masked" in case.meta:
                ys, xs = case.meta["masked"]
                inside = ((c["X_IMAGE"] - 1 >= xs.start) & (c["X_IMAGE"] - 1 < xs.stop)
                          & (c["Y_IMAGE"] - 1 >= ys.start) & (c["Y_IMAGE"] - 1 < ys.stop))
                if inside.any():
                    raise _Bad(f"{int(inside.sum())} source(s) centred in the masked block")
        if case.klass == "valid" and n == 0:
            raise _Bad("no source in a good image")
        if control is not None:
            if len(control) != len(cats) or any(len(a["X_IMAGE"]) != len(b["X_IMAGE"]) for a, b in zip(control, cats)):
                raise _Bad("catalogue differs from the control (same pixels)")
            for a, b in zip(control, cats):
                for key in a:
                    if not np.allclose(a[key], b[key], rtol=1e-6, atol=1e-9):
                        raise _Bad(f"{key} differs from the control (same pixels)")
        return cats
    if tool == "weightwatcher":
        with fits.open(outdir / "w.fits") as w, fits.open(outdir / "f.fits") as f:
            ws = [h.data for h in w if h.data is not None]
            fs = [h.data for h in f if h.data is not None]
        if len(ws) != _image_count(case) or len(fs) != len(ws):
            raise _Bad(f"{len(ws)} weight extensions for {_image_count(case)} images")
        for wd in ws:
            if not np.all(np.isfinite(wd)) or wd.min() < 0:
                raise _Bad("weights not finite or negative")
        if unmeasurable and any(wd.max() > 0 for wd in ws) and case.klass != "tiny":
            raise _Bad("weight > 0 in an image with no usable pixel")
        if control is not None and not all(np.array_equal(a, b) for a, b in zip(control, ws)):
            raise _Bad("weight map differs from the control (same pixels)")
        return ws
    if tool == "qualityfits":
        grades = [d for kind, d in records if kind == "qualityfits"]
        if not grades:
            raise _Bad("no qualityfits record")
        grade = grades[0]["grade"]
        if (unmeasurable or case.klass == "broken_wcs") and grade != "D":
            raise _Bad(f"grade {grade} for an exposure that cannot be assessed (expected D)")
        if control is not None and grade != control:
            raise _Bad(f"grade {grade}, the control (same pixels) got {control}")
        return grade
    if tool == "swarp":
        with fits.open(outdir / "coadd.fits") as img, fits.open(outdir / "coadd.weight.fits") as wgt:
            data, weight = img[0].data, wgt[0].data
        if data is None or weight is None:
            raise _Bad("empty stack")
        if not np.all(np.isfinite(data[weight > 0])):
            raise _Bad("non-finite stack pixels with weight > 0")
        if control is not None and (control.shape != data.shape or not np.allclose(control, data, atol=1e-3)):
            raise _Bad("stack differs from the control (same pixels)")
        return data
    if tool == "skywatcher":
        if not list(outdir.glob("*.fits")):
            raise _Bad("no coverage map")
        return None
    if tool == "psfex":
        psf = list(outdir.glob("*.psf"))
        if not psf:
            raise _Bad("no .psf written")
        with fits.open(psf[0]) as hdul:
            if not any(h.name == "PSF_DATA" for h in hdul):
                raise _Bad("no PSF_DATA")
        return None
    if tool == "scamp":
        if not list(outdir.glob("*.head")):
            raise _Bad("no .head written")
        return None
    raise AssertionError(tool)


# ------------------------------------------------------------------------------------------------------
# running one tool on every case, in one forked process

class _Timeout(BaseException):
    pass


def _alarm(signum, frame):
    raise _Timeout()


def _run_case(tool, case, workdir, controls):
    from terapix_fw.config import parse_command_line
    from terapix_fw.dropin import _split_extension
    from terapix_fw.execute import UnitSpec, execute_unit

    outdir = workdir / "out" / tool / case.name.replace("/", "-")
    outdir.mkdir(parents=True, exist_ok=True)
    cmd = parse_command_line(_argv(tool, case, workdir, outdir))
    inputs, extension = _split_extension(cmd.inputs)
    spec = UnitSpec(step=tool, unit="1", tool=tool, config_layers=[cmd.overrides], inputs=inputs,
                    outdir=str(outdir), log_path=str(outdir / "unit.log"), nthreads=1, confine_outputs=False,
                    extension=extension)
    terminal = io.StringIO()
    saved, sys.stderr = sys.stderr, terminal
    signal.signal(signal.SIGALRM, _alarm)
    signal.signal(signal.SIGPROF, _alarm)
    signal.alarm(BOUND_WALL_S)
    signal.setitimer(signal.ITIMER_PROF, BOUND_CPU_S)  # this process's CPU time, all threads
    start = time.perf_counter()
    try:
        result = execute_unit(spec, echo=True)
    except _Timeout:
        return "hang", f"more than {BOUND_CPU_S} s of CPU or {BOUND_WALL_S} s in all", None
    finally:
        signal.setitimer(signal.ITIMER_PROF, 0)
        signal.alarm(0)
        sys.stderr = saved
    elapsed = time.perf_counter() - start
    text = terminal.getvalue()
    if "Traceback" in text:
        return "traceback", "a traceback on the terminal", elapsed
    if result.status == "failed":
        line = result.error
        kind = line.split(":", 1)[0]
        if kind not in CLEAN_ERRORS:
            return "traceback", line, elapsed
        if "\n" in line or case.path.name not in line:
            return "traceback", f"error line does not name {case.path.name}: {line}", elapsed
        return "clean error", line, elapsed
    if "correct" not in expected(tool, case):
        return "wrong", "exit 0 where an error is required", elapsed
    try:
        checked = _check(tool, case, outdir, result.records, controls)
    except _Bad as exc:
        return "wrong", str(exc), elapsed
    except Exception as exc:  # noqa: BLE001 - an unreadable product is a wrong result
        return "wrong", f"product unreadable: {type(exc).__name__}: {exc}", elapsed
    if case.klass == "valid" and case.control is None and checked is not None:
        controls[(tool, case.name)] = checked
    return "correct", "", elapsed


def _run_tool(tool, workdir, cases):
    """All cases through one tool (in a child interpreter): [(case name, class, outcome, detail, seconds)]."""
    import logging

    logging.getLogger().setLevel(logging.WARNING)
    controls: dict = {}
    rows = []
    for case in sorted(cases, key=lambda c: (c.klass != "valid", c.control is not None)):
        outcome, detail, elapsed = _run_case(tool, case, workdir, controls)
        rows.append((case.name, case.klass, outcome, detail[:400], elapsed))
    (workdir / f"rows-{tool}.json").write_text(json.dumps(rows, indent=0))
    return tool, rows


@pytest.fixture(scope="module")
def fuzz_results(tmp_path_factory):
    from terapix_testdata.fuzz import make_corpus

    workdir = tmp_path_factory.mktemp("fuzz")
    cases = make_corpus(workdir / "corpus")  # written once: the tools' processes only read it
    (workdir / "fuzz.param").write_text("\n".join(PARAMS) + "\n")
    # one fresh interpreter per tool, two at a time: a fork of this test process (which earlier tests
    # left with threads: Dask, dbClient senders) can deadlock in the child on a lock held at fork time
    import pickle
    from concurrent.futures import ThreadPoolExecutor

    with open(workdir / "cases.pickle", "wb") as handle:
        pickle.dump(cases, handle)
    env = dict(os.environ, TERAPIX_HOME=str(workdir / "home"))  # the tools record nothing in the user's home

    def run(tool):
        done = subprocess.run([sys.executable, "-c", _CHILD, __file__, tool, str(workdir)], env=env,
                              capture_output=True, text=True, timeout=BOUND_WALL_S * len(cases))
        assert done.returncode == 0, f"fuzz runner of {tool} died ({done.returncode}): {done.stderr[-3000:]}"
        return tool, [tuple(row) for row in json.loads((workdir / f"rows-{tool}.json").read_text())]

    # the longest first (qualityfits: about as long as the others together), so that the two runners end together
    with ThreadPoolExecutor(2) as pool:
        results = dict(pool.map(run, sorted(TOOLS, key=lambda tool: tool != "qualityfits")))
    return workdir, {c.name: c for c in cases}, results


#: the child interpreter of one tool: load this file as a module, run _run_tool on the pickled corpus
_CHILD = """
import importlib.util, pathlib, pickle, sys
spec = importlib.util.spec_from_file_location("fuzz_corpus_runner", sys.argv[1])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
workdir = pathlib.Path(sys.argv[3])
with open(workdir / "cases.pickle", "rb") as handle:
    cases = pickle.load(handle)
module._run_tool(sys.argv[2], workdir, cases)
"""


def _table(results, cases):
    counts = defaultdict(Counter)
    for tool, rows in results.items():
        for name, klass, outcome, _, _ in rows:
            counts[klass][outcome] += 1
    lines = [f"{'class':<16} {'files':>5} " + " ".join(f"{o:>12}" for o in OUTCOMES) + "   (tool runs)"]
    total = Counter()
    for klass in sorted(counts, key=lambda k: list(dict.fromkeys(c.klass for c in cases.values())).index(k)):
        files = sum(1 for c in cases.values() if c.klass == klass)
        lines.append(f"{klass:<16} {files:>5} " + " ".join(f"{counts[klass][o]:>12}" for o in OUTCOMES))
        total.update(counts[klass])
    lines.append(f"{'all':<16} {len(cases):>5} " + " ".join(f"{total[o]:>12}" for o in OUTCOMES))
    return "\n".join(lines), total


def test_every_tool_on_every_file(fuzz_results, capsys):
    workdir, cases, results = fuzz_results
    table, total = _table(results, cases)
    slowest = max((r for rows in results.values() for r in rows if r[4] is not None), key=lambda r: r[4])
    report = (f"\nFITS fuzz corpus: {len(cases)} files x {len(TOOLS)} tools ({', '.join(TOOLS)})\n{table}\n"
              f"slowest file: {slowest[0]} ({slowest[4]:.1f} s wall; bound {BOUND_CPU_S} s of CPU)\n")
    with capsys.disabled():
        print(report)
    (workdir / "fuzz_table.txt").write_text(report)
    problems = []
    for tool, rows in results.items():
        assert len(rows) == len(cases), tool
        for name, klass, outcome, detail, _ in rows:
            allowed = expected(tool, cases[name])
            if outcome not in allowed:
                problems.append(f"{tool} on {name}: {outcome} (expected {' or '.join(sorted(allowed))}) {detail}")
    assert not problems, "\n".join(problems)
    assert total["traceback"] == total["hang"] == total["wrong"] == 0


def test_errors_name_the_keyword_at_fault(fuzz_results):
    """The one line names the keyword where the keyword is the cause."""
    _, cases, results = fuzz_results
    for tool, rows in results.items():
        if tool in CATALOG_TOOLS:  # they refuse every image as "not a FITS_LDAC catalogue" first
            continue
        for name, klass, outcome, detail, _ in rows:
            case = cases[name]
            if outcome != "clean error":
                continue
            if klass in ("bad_gain", "bad_saturate", "bad_exptime"):
                assert case.meta["keyword"] in detail, (tool, name, detail)
            if klass == "broken_wcs":
                assert "broken WCS" in detail and any(k in detail for k in ("CRVAL2", "CD1_1", "CTYPE1")), \
                    (tool, name, detail)
            if klass == "wrong_bitpix":
                assert "BITPIX" in detail, (tool, name, detail)
            if klass == "extname" and "select-absent" in name:
                assert "ccd99" in detail, (tool, name, detail)


#: cases run through the real ``terapix tool`` command: its terminal and exit code
TERMINAL_SAMPLE = ("truncated/cut-at-header-boundary", "bad_gain/gain=-1.0", "many_extensions/2000-tiny",
                   "valid/u16-rice_1")


@pytest.mark.parametrize("name", TERMINAL_SAMPLE)
def test_terminal_of_the_real_command(fuzz_results, name, tmp_path):
    workdir, cases, results = fuzz_results
    case = cases[name]
    outcome = dict((r[0], r[2]) for r in results["sextractor"])[name]
    env = dict(os.environ, TERAPIX_HOME=str(tmp_path / "home"))
    proc = subprocess.run([sys.executable, "-m", "terapix_fw.cli", "tool", "sextractor",
                           *_argv("sextractor", case, workdir)], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=BOUND_WALL_S * 2)
    assert "Traceback" not in proc.stderr + proc.stdout
    if outcome == "correct":
        assert proc.returncode == 0, proc.stderr
        assert (tmp_path / "cat.ldac").exists()
    else:
        assert proc.returncode == 1, proc.stderr
        errors = [line for line in proc.stderr.splitlines() if not line.startswith("> ")]
        assert len(errors) == 1, proc.stderr  # one line, besides the tool's own progress lines
        assert errors[0].startswith("terapix tool sextractor: ") and case.path.name in errors[0]
        assert "(log: " in errors[0]
        log = Path(errors[0].rsplit("(log: ", 1)[1].rstrip(")"))
        assert "failed:" in log.read_text()  # the details (and any traceback) are in the unit log
