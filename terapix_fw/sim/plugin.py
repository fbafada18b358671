"""Hook implementations of terapix_fw.sim: the ``simulate`` tool and the ``terapix simulate`` command.

Heavy modules (numpy, astropy, numba) are imported only when a simulation runs.
"""
from __future__ import annotations

from ..hookspecs import hookimpl


@hookimpl
def register_tools(register):
    """Implements :func:`terapix_fw.hookspecs.register_tools`: the ``simulate`` tool."""
    from .tool import SimulateTool

    register(SimulateTool)


def _cmd_simulate(args) -> int:
    import time
    from pathlib import Path

    from .survey import SurveySpec, simulate_survey

    spec = SurveySpec.from_xml(args.survey)
    if args.compress:
        from dataclasses import replace
        spec.exposures = [replace(e, compress=True) for e in spec.exposures]
    start = time.perf_counter()

    def progress(i, n, res):
        print(f"[{i}/{n}] {res.path}  {res.meta['filter']}  {len(res.truth)} sources  "
              f"ZP {res.zeropoint:.3f} (MAGZP {res.header_zeropoint:.3f})  seeing {res.seeing:.2f}\"  "
              f"{time.perf_counter() - start:.1f} s", flush=True)

    result = simulate_survey(spec, Path(args.outdir), seed=args.seed, nthreads=args.threads,
                             only=args.exposure or None, progress=progress)
    print(f"reference catalogue: {result.reference_catalog}")
    print(f"truth (zero points, sources, true WCS): {result.zeropoints_path.parent}")
    return 0


@hookimpl
def register_commands(subparsers):
    """Implements :func:`terapix_fw.hookspecs.register_commands`: add ``terapix simulate``."""
    p = subparsers.add_parser("simulate", help="simulate a survey's exposures with known truth",
                              description="Write MegaCam-like exposures (first-guess WCS in the headers), "
                                          "calibration maps and an astrometric reference catalogue of a "
                                          "survey description; the truth (tables, true WCS in .head format, "
                                          "zero points) goes under OUTDIR/truth/ only, where no tool looks.")
    p.add_argument("survey", help="survey description (XML, schemas/survey.xsd)")
    p.add_argument("--outdir", required=True, help="output directory")
    p.add_argument("--seed", type=int, default=None, help="random seed (default: the survey's, else 1)")
    p.add_argument("--threads", type=int, default=None, help="CCDs rendered in parallel (default: cores)")
    p.add_argument("--exposure", action="append", help="simulate only this exposure (repeatable)")
    p.add_argument("--compress", action="store_true", help="RICE-compress the images")
    p.set_defaults(func=_cmd_simulate)
