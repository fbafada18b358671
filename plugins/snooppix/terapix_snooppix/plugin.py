"""Registers the snooppix tool and its report page with terapix-fw (entry point group ``terapix_fw.plugins``).

Only the tool class is imported here; its algorithms are imported inside ``run`` so that
``terapix plugins`` and drop-in start-up stay fast.
"""
from pathlib import Path

from terapix_fw.hookspecs import hookimpl

TEMPLATES = Path(__file__).parent / "templates"


@hookimpl
def register_tools(register):
    from .tool import SnooppixTool

    register(SnooppixTool)


def transfers_context(db):
    """Transfer history (every tool's transfers) and snooppix's own download records."""
    from terapix_fw.web import data

    history = data.transfers(db)
    downloads = [r for r in data.records(db, "transfer") if "url" in r["data"]]
    return {**history, "downloads": downloads}


def _cmd_watch(args) -> int:
    """Run the snooppix tool every ``--every`` seconds, each pass a recorded drop-in run."""
    import sys
    import time

    from terapix_fw.dropin import run_tool_command

    argv = args.arguments[1:] if args.arguments[:1] == ["--"] else args.arguments
    failures = 0
    n = 0
    while True:
        n += 1
        started = time.monotonic()
        code = run_tool_command("snooppix", argv)
        failures += code != 0
        print(f"terapix snooppix: pass {n} {'done' if code == 0 else 'failed'}", file=sys.stderr)
        if args.count and n >= args.count:
            return 1 if failures else 0
        time.sleep(max(0.0, args.every - (time.monotonic() - started)))


@hookimpl
def register_commands(subparsers):
    import argparse

    p = subparsers.add_parser(
        "snooppix", help="watch an archive like the Snooppix daemon: run the snooppix tool every N seconds",
        description="terapix snooppix [--every S] [--count N] URL [-c FILE] [-KEYWORD value ...]: each pass "
                    "is a drop-in run of the snooppix tool (recorded in RDBix); a failed pass (archive "
                    "unreachable) is reported and the next pass tries again.")
    p.add_argument("--every", type=float, default=600.0, help="seconds between the starts of two passes")
    p.add_argument("--count", type=int, default=0, help="stop after N passes (default: until interrupted)")
    p.add_argument("arguments", nargs=argparse.REMAINDER, help="URL and tool options, as for terapix tool")
    p.set_defaults(func=_cmd_watch)


@hookimpl
def web_pages(register):
    register("transfers", TEMPLATES / "snooppix_transfers.html", transfers_context, title="Transfers", order=40)
