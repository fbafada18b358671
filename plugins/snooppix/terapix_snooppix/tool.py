"""The snooppix tool: watch a remote index page (HTTP, HTTPS) or directory (FTP) and download the new
files it lists.

Like the TERAPIX Snooppix daemon (which sent simultaneous ``wget`` on the links of a CADC web page and
kept the downloaded names in a DBM file), one run scans the index, skips every file already recorded
in the download directory's ledger, and fetches the others concurrently.  Run it from cron or from an
instruction file to poll an archive.

Drop-in use::

    terapix tool snooppix https://archive.example.org/megacam/ -PATTERN "*.fits.fz" -NTHREADS 8

Every transfer is logged and sent to RDBix as a ``transfer`` record (direction, node, bytes, status,
start/end times), every downloaded file becomes a ``download`` product.
"""
from __future__ import annotations

import re
from urllib.parse import urlsplit

from terapix_fw.errors import ConfigError, ToolError
from terapix_fw.params import Parameter, terapix_only
from terapix_fw.tool import Tool

__all__ = ["SnooppixTool"]

VERSION = "1.0.0"


def url_from_input(text: str) -> str:
    """Undo what turning a URL into a path does to it (``http://h/`` -> ``http:/h``).

    The trailing slash of a directory URL is lost on the way too; servers redirect ``/dir`` to
    ``/dir/`` and the redirected address is the base of relative links.  Set URL to be exact.
    """
    return re.sub(r"^([A-Za-z][A-Za-z0-9+.-]*):/(?!/)", r"\1://", text)

_NONE = terapix_only("no AstrOmatic program downloads from archives; Snooppix was a TERAPIX daemon")


class SnooppixTool(Tool):
    """Download the new files listed by a remote HTTP(S) index page or FTP directory, once each (TERAPIX's
    Snooppix).
    """
    name = "snooppix"
    version = VERSION
    description = "download the files listed by a remote HTTP(S) index page or FTP directory, once each"
    default_fanout = "all"
    produces = ("download",)
    parameters = [
        Parameter("URL", "str", "", "index page or FTP directory to scan (the first input if empty)",
                  astromatic=_NONE),
        Parameter("PATTERN", "str", ["*.fits.fz"], "shell patterns of the file names to fetch",
                  nvalues=(1, None), astromatic=_NONE),
        Parameter("DOWNLOAD_DIR", "path", ".", "directory where files are downloaded", astromatic=_NONE),
        Parameter("LEDGER_NAME", "str", "snooppix.sqlite",
                  "record of downloaded files, in DOWNLOAD_DIR", astromatic=_NONE),
        Parameter("NTHREADS", "int", 4, "simultaneous transfers (0 = one per core)", minimum=0, astromatic=_NONE),
        Parameter("RETRIES", "int", 3, "retries of a failed transfer (resumed)", minimum=0, astromatic=_NONE),
        Parameter("RETRY_DELAY", "float", 5.0, "delay before the n-th retry: n times this (s)",
                  minimum=0.0, astromatic=_NONE),
        Parameter("TIMEOUT", "float", 60.0, "network time-out (s)", minimum=0.001, astromatic=_NONE),
        Parameter("RESUME", "bool", True, "resume interrupted transfers (HTTP Range, FTP REST)", astromatic=_NONE),
        Parameter("VERIFY", "bool", True, "check sizes and server or published checksums", astromatic=_NONE),
        Parameter("CHECKSUM_FILES", "str", ["MD5SUMS", "SHA1SUMS", "SHA256SUMS", "SHA512SUMS"],
                  "checksum lists read from the index, if linked", nvalues=(0, None), astromatic=_NONE),
        Parameter("RECURSE_DEPTH", "int", 0, "levels of sub-directories scanned (0 = the index only)",
                  minimum=0, maximum=20, astromatic=_NONE),
        Parameter("ALLOWED_HOSTS", "str", [], "other hosts links may point to (* = any)",
                  nvalues=(0, None), astromatic=_NONE),
        Parameter("MAX_FILES", "int", 0, "most files fetched in one run (0 = no limit)", minimum=0, astromatic=_NONE),
        Parameter("CA_FILE", "path", "", "certificate authorities for HTTPS (empty: the system's)", astromatic=_NONE),
        Parameter("USER_AGENT", "str", f"terapix-snooppix/{VERSION}", "HTTP User-Agent", astromatic=_NONE),
    ]

    def run(self, ctx):
        """Scan the index, fetch the files not yet in the ledger, record each transfer.

        Parameters
        ----------
        ctx : StepContext
            The unit: inputs, configuration, output directory, log.

        Raises
        ------
        ConfigError
            Without URL, or with a URL that is not http, https or ftp.
        ToolError
            With more than one input.
        """
        from .download import snoop

        cfg = ctx.config
        url = cfg["URL"] or (url_from_input(str(ctx.inputs[0])) if ctx.inputs else "")
        if not url:
            raise ConfigError("no index page to scan: set URL or give the URL as input", "snooppix", "URL")
        if not re.match(r"^(https?|ftp)://", url, re.IGNORECASE):
            raise ConfigError(f"URL {url!r} is not an http://, https:// or ftp:// address", "snooppix", "URL")
        if url.lower().startswith("ftp://") and not url.endswith("/"):
            url += "/"  # an FTP URL names the directory to list
        if urlsplit(url).password is not None:
            ctx.log.warning("URL carries a password, which is recorded with the step configuration; "
                            "put FTP credentials in ~/.netrc instead")
        if len(ctx.inputs) > 1 and not cfg["URL"]:
            raise ToolError(f"snooppix scans one index page per run, got {len(ctx.inputs)} inputs")
        snoop(ctx, url)
