"""Hook implementations of data ingestion: the ``ingest`` tool and the ``terapix ingest`` command."""
from __future__ import annotations

from ..hookspecs import hookimpl


@hookimpl
def register_tools(register):
    """Implements :func:`terapix_fw.hookspecs.register_tools`: the ``ingest`` tool."""
    from .tool import IngestTool

    register(IngestTool)


def _cmd_ingest(args) -> int:
    import json
    import sys

    from ..config import read_config_file
    from .session import IngestSession, expand_paths

    if not args.paths and not args.watch:
        sys.stderr.write("terapix ingest: give files or directories to ingest, or --watch DIR\n")
        return 2
    from pathlib import Path
    missing = [p for p in args.paths if not Path(p).exists()]
    if missing:
        sys.stderr.write(f"terapix ingest: {missing[0]}: no such file or directory"
                         f"{f' (and {len(missing) - 1} more)' if len(missing) > 1 else ''}\n")
        return 2
    layers = [read_config_file(args.quality_config)] if args.quality_config else []
    transfer = "copy" if args.copy else ("move" if args.move else None)
    from .site import Site
    site = Site.from_xml(args.site).with_directories(storage=args.storage, quarantine=args.quarantine)
    session = IngestSession(site, args.workdir or ".", args.db, transfer=transfer, quality=not args.no_quality,
                            quality_layers=layers, nthreads=args.threads, check_pixels=not args.no_pixels)
    outcomes = []

    def one(path):
        out = session.ingest(path)
        outcomes.append(out)
        if args.json:
            return
        print(out.line(), flush=True)

    with session:
        for path in expand_paths(args.paths):
            one(path)
        if args.watch:
            from .watch import watch_directory
            print(f"[ingest] watching {args.watch} (idle timeout {args.timeout or 'none'} s)", flush=True)
            try:
                for path in watch_directory(args.watch, idle_timeout=args.timeout, max_files=args.max_files):
                    one(path)
            except KeyboardInterrupt:
                pass
    counts = session.counts
    if args.json:
        json.dump([{"file": str(o.source), "status": o.status, "filename": o.filename,
                    "stored": str(o.stored) if o.stored else None, "checksum": o.checksum, "message": o.message}
                   for o in outcomes], sys.stdout, indent=1)
        sys.stdout.write("\n")
    else:
        print("[ingest] " + (", ".join(f"{n} {k}" for k, n in sorted(counts.items())) or "no file") +
              (f"; QualityFITS-in failed on {session.quality_failed}" if session.quality_failed else "") +
              f"; RDBix {session.run.run_id[:12]}", flush=True)
    refused = sum(counts.get(k, 0) for k in ("quarantined", "changed", "duplicate"))
    return 3 if args.strict and (refused or session.quality_failed) else 0


@hookimpl
def register_commands(subparsers):
    """Implements :func:`terapix_fw.hookspecs.register_commands`: add ``terapix ingest``."""
    p = subparsers.add_parser(
        "ingest", help="check, store, register and assess arriving exposures (data-ingestion context)",
        description="For each file: integrity checks (FITS structure, CHECKSUM/DATASUM, image extensions, "
                    "pixels), quarantine of failures with the reason, storage by filter and run id "
                    "(uncompressed if the site asks), registration in RDBix (metadata, CCD footprints, "
                    "every keyword), then QualityFITS-in.  Re-ingesting a known file does nothing; a changed "
                    "file under a known name and duplicates under another name are refused and reported.")
    p.add_argument("paths", nargs="*", help="files or directories (their *.fits, *.fz, *.gz files)")
    p.add_argument("--site", required=True, help="site configuration (XML, schemas/site.xsd)")
    p.add_argument("--db", default=None, help="database URL (default: $TERAPIX_DB_URL or WORKDIR/rdbix.sqlite); "
                                              "with $TERAPIX_DBCLIENT_URL, writes go through dbClient")
    p.add_argument("--workdir", default=None, help="QualityFITS-in products and logs (default: .)")
    p.add_argument("--storage", default=None, help="storage tree (default: the site file's)")
    p.add_argument("--quarantine", default=None, help="quarantine directory (default: the site file's)")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--copy", action="store_true", help="copy files into storage (default: the site's)")
    group.add_argument("--move", action="store_true", help="move files into storage (default: the site's)")
    p.add_argument("--no-quality", action="store_true", help="register only, no QualityFITS-in")
    p.add_argument("--quality-config", default=None, help="qualityfits configuration file for QualityFITS-in")
    p.add_argument("--no-pixels", action="store_true", help="skip reading every pixel (structure and sums only)")
    p.add_argument("--threads", type=int, default=None, help="cores for QualityFITS-in (default: all)")
    p.add_argument("--watch", metavar="DIR", default=None,
                   help="then ingest what arrives in DIR (files renamed or written into it) until interrupted")
    p.add_argument("--timeout", type=float, default=None, help="watch: stop after this many idle seconds")
    p.add_argument("--max-files", type=int, default=None, help="watch: stop after this many files")
    p.add_argument("--json", action="store_true", help="print the outcomes as JSON")
    p.add_argument("--strict", action="store_true", help="exit with status 3 if a file was refused")
    p.set_defaults(func=_cmd_ingest)
