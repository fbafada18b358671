"""``terapix spica select|plan|generate|run|status|grade|release|reproduce``."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

__all__ = ["register"]


def _url(args) -> str:
    from ..db.engine import resolve_url
    return resolve_url(args.db, args.workdir)


def _db_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--db", default=None, help="database URL (default: $TERAPIX_DB_URL or WORKDIR/rdbix.sqlite)")
    p.add_argument("--workdir", default=None, help="release work directory (default: .)")


def _priority(text: str) -> tuple[str, int]:
    target, sep, value = text.rpartition("=")
    try:
        if not sep or not target:
            raise ValueError
        return target, int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--priority {text!r}: expected TARGET=N with an integer N "
                                         f"(e.g. image=8 or 'CFHTLS_D_*=12')") from None


def _cmd_select(args) -> int:
    from .criteria import load_criteria
    from .selection import select_exposures
    result = select_exposures(_url(args), load_criteria(args.criteria))
    text = result.report()
    print(text if args.verbose_list else text.splitlines()[0])
    if not args.verbose_list:
        for name, (crit, why) in sorted(result.rejected.items()):
            print(f"  rejected {name}: {crit}: {why}")
    return 0


def plan_from_file(db, release_file):
    """Select the exposures of a release file's criteria and plan its jobs (``terapix spica plan``).

    Parameters
    ----------
    db : Engine, str or None
        RDBix.
    release_file : str or Path
        The release file.

    Returns
    -------
    tuple of (ReleaseSpec, Selection, Plan)
    """
    from .criteria import load_criteria
    from .planning import plan_release, record_plan
    from .release import load_release
    from .selection import select_exposures
    spec = load_release(release_file)
    selection = select_exposures(db, load_criteria(spec.criteria_path))
    plan = plan_release(db, spec, set(selection.filenames))
    record_plan(db, plan)
    return spec, selection, plan


def _cmd_plan(args) -> int:
    spec, selection, plan = plan_from_file(_url(args), args.release)
    print(f"release {spec.name} ({spec.version}): {len(selection.selected)} exposures selected, "
          f"{len(selection.rejected)} rejected; {len(plan.stacks())} stacks in {len(plan.fields)} fields, "
          f"{len(plan.images())} image-by-image exposures")
    print(f"  {'stack':<42} {'astrometric':>11} {'stack':>6}  release date")
    for job in plan.jobs:
        date = f"{job.release_date:%Y-%m-%d}" if job.release_date else "-"
        print(f"  {job.name:<42} {len(job.astrometric):>11} {len(job.stack):>6}  {date}")
    return 0


def _cmd_generate(args) -> int:
    from .generation import generate_jobs
    from .release import load_release
    spec = load_release(args.release)
    if args.refcat:
        spec.refcat = str(Path(args.refcat).resolve())
    workdir = Path(args.workdir or ".")
    outdir = Path(args.outdir) if args.outdir else workdir / "spica" / spec.version
    files = generate_jobs(_url(args), spec, outdir, workdir)
    print(f"{len(files)} instruction files and command files in {outdir}")
    for f in files:
        print(f"  {f.instruction_file.name}  {f.command_file.name}")
    return 0


def _cmd_run(args) -> int:
    from .jobs import reset_job, run_jobs, set_priority
    from .release import load_release
    from .status import format_status, status_summary
    spec = load_release(args.release)
    modes = ("release", "image") if args.mode == "all" else (args.mode,)
    for target, value in args.priority or []:
        changed = set_priority(_url(args), spec.version, target, value)
        print(f"priority {value}: {', '.join(changed)}")
    for name in args.rerun or []:
        reset_job(_url(args), name, spec.version)
    finished = run_jobs(_url(args), spec.version, modes=modes, parallel=args.parallel, executor=args.executor,
                        jobs=args.jobs, scheduler=args.scheduler, names=args.only or args.rerun or None,
                        force=bool(args.rerun) or args.force, progress=not args.quiet)
    for row in finished:
        print(f"{row['name']}: {row['status']}" + (f" ({row['error']})" if row["error"] else ""))
    print(format_status(status_summary(_url(args), spec.version)).splitlines()[0])
    return 1 if any(r["status"] != "done" for r in finished) else 0


def _cmd_status(args) -> int:
    from .status import format_status, status_summary
    summary = status_summary(_url(args), args.release)
    if args.json:
        json.dump(summary, sys.stdout, indent=1, default=str)
        print()
    else:
        print(format_status(summary))
    return 0


def _cmd_grade(args) -> int:
    from .grading import grade_stack
    result = grade_stack(_url(args), args.stack, args.grade, args.author, args.comment, args.version)
    print(f"{args.stack} ({result['version']}): grade {result['grade']} recorded"
          + (f"; supersedes {', '.join(result['superseded'])}" if result["superseded"] else ""))
    return 0


def _cmd_release(args) -> int:
    from .manifest import read_manifest, write_manifest
    from .release import load_release
    spec = load_release(args.release)
    path = write_manifest(_url(args), spec, args.output)
    root = read_manifest(path)
    stacks = root.findall("stack")
    print(f"release {spec.version}: manifest {path} ({len(stacks)} accepted stacks and fields, "
          f"{sum(len(s.findall('file')) for s in stacks)} files with SHA-256)")
    return 0


def _cmd_reproduce(args) -> int:
    from .reproduce import reproduce
    results = reproduce(args.manifest, args.workdir, args.db or f"sqlite:///{Path(args.workdir).resolve()}/rdbix.sqlite",
                        stacks=args.stack or None, inputs=args.inputs or None, jobs=args.jobs)
    for r in results:
        print(f"{r.name}: {'identical pixels' if r.identical else 'PIXELS DIFFER'} (sha256 {r.obtained[:16]}...; "
              f"manifest {r.expected[:16]}...) {r.image}")
    return 0 if all(r.identical for r in results) else 1


def register(subparsers) -> None:
    """Add ``terapix spica`` (select, plan, generate, run, grade, release, reproduce, status).

    Parameters
    ----------
    subparsers : argparse._SubParsersAction
    """
    sp = subparsers.add_parser("spica", help="release planning: select, plan, generate, run, grade, release")
    sub = sp.add_subparsers(dest="spica_command", required=True)

    p = sub.add_parser("select", help="apply a criteria file to RDBix's exposures; record and print the result")
    p.add_argument("criteria")
    p.add_argument("--list", dest="verbose_list", action="store_true", help="also list every selected exposure")
    _db_options(p)
    p.set_defaults(func=_cmd_select)

    p = sub.add_parser("plan", help="select, then plan the stacks of a release file (astrometric and stack lists)")
    p.add_argument("release")
    _db_options(p)
    p.set_defaults(func=_cmd_plan)

    p = sub.add_parser("generate", help="write one instruction file and one command file per planned job")
    p.add_argument("release")
    p.add_argument("--outdir", default=None, help="where the files go (default: WORKDIR/spica/VERSION)")
    p.add_argument("--refcat", default=None, help="astrometric reference catalogue (overrides <astrometry refcat=>)")
    _db_options(p)
    p.set_defaults(func=_cmd_generate)

    p = sub.add_parser("run", help="run the generated jobs by priority (image-by-image and release modes)")
    p.add_argument("release")
    p.add_argument("--mode", choices=["all", "release", "image"], default="all")
    p.add_argument("--parallel", type=int, default=1,
                   help="worker slots: jobs (of both modes) running at once, highest priority first (default 1)")
    p.add_argument("--priority", type=_priority, action="append", metavar="TARGET=N",
                   help="set the priority of the jobs named TARGET (a glob) or of a mode/kind (image, release, "
                        "stack, field); recorded in RDBix, higher starts first")
    p.add_argument("--jobs", "-j", type=int, default=None, help="units at once within a job")
    p.add_argument("--executor", choices=["local", "dask"], default="local")
    p.add_argument("--scheduler", default=None, help="Dask scheduler address: jobs go to the node of their data")
    p.add_argument("--only", nargs="*", help="run only these jobs")
    p.add_argument("--rerun", nargs="*", help="run these jobs again after a fix (their units are re-made)")
    p.add_argument("--force", action="store_true", help="re-run every unit")
    p.add_argument("--quiet", action="store_true")
    _db_options(p)
    p.set_defaults(func=_cmd_run)

    p = sub.add_parser("status", help="pending, running and remaining jobs (by component, node, filter)")
    p.add_argument("--release", default=None, help="release version (default: every release)")
    p.add_argument("--json", action="store_true", help="the same data as JSON (for scripts and web pages)")
    _db_options(p)
    p.set_defaults(func=_cmd_status)

    p = sub.add_parser("grade", help="grade a stack A|B|C|D (C/D need a problem report)")
    p.add_argument("stack")
    p.add_argument("grade", choices=["A", "B", "C", "D"])
    p.add_argument("--comment", default=None, help="the problem report")
    p.add_argument("--author", default=None)
    p.add_argument("--version", default=None, help="release version (default: the stack's latest)")
    _db_options(p)
    p.set_defaults(func=_cmd_grade)

    p = sub.add_parser("release", help="write the release manifest (A/B stacks only)")
    p.add_argument("release")
    p.add_argument("--output", default=None, help="manifest path (default: WORKDIR/release/VERSION/VERSION_manifest.xml)")
    _db_options(p)
    p.set_defaults(func=_cmd_release)

    p = sub.add_parser("reproduce", help="re-make released stacks from a manifest; check identical pixels")
    p.add_argument("manifest")
    p.add_argument("--workdir", required=True, help="a new work directory")
    p.add_argument("--db", default=None, help="a new database (default: WORKDIR/rdbix.sqlite)")
    p.add_argument("--stack", nargs="*", help="only these stacks")
    p.add_argument("--inputs", nargs="*", help="directories where inputs are looked for by name")
    p.add_argument("--jobs", "-j", type=int, default=None)
    p.set_defaults(func=_cmd_reproduce)
