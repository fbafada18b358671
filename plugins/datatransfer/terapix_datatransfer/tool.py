"""The datatransfer tool: dispatch files across the nodes of a cluster over SSH/SFTP (paramiko).

TERAPIX's DataTransfer (perl and php scripts driven from a web page) dispatched the images coming
from the CADC across the nodes of the cluster and kept the transfer history, the distribution of the
files across nodes and the free disk of each node.  This tool does the same from an instruction file
or the command line; the history, distribution and free disk go to RDBix (``transfer``, ``exposure``
``storage`` rows and ``node`` records) and show on the web pages.

Drop-in use::

    terapix tool datatransfer *.fits.fz -NODES_FILE cluster.nodes -DISPATCH FREE_SPACE -NTHREADS 4
    terapix tool datatransfer *.fits.fz -NODES n1=terapix@10.0.0.11:/data n2=terapix@10.0.0.12:/data \\
        -DISPATCH BY_KEY -DISPATCH_KEY FILTER -DISPATCH_MAP u.MP9301:n1,*:n2
    terapix tool datatransfer n1:r.MP9601/717000p.fits.fz -DIRECTION GET -NODES_FILE cluster.nodes

PUT sends every input to one node (``DISPATCH``), below ``dest_root/REMOTE_DIR`` (``{FILTER}`` and other
header keywords in ``REMOTE_DIR`` sort the files by their values); GET fetches
``node:path`` (or ``path``, from the first node that has it) into ``LOCAL_DIR``.  Uploads are atomic
(temporary name, size and SHA-256 checked on the node, then ``posix-rename``); a file already on its
node with the same SHA-256 is skipped, so an interrupted dispatch is resumed by running it again.
The default fan-out is ``all`` (round robin over the step's files); with ``fanout="file"`` each unit
sends one file and ROUND_ROBIN picks its node by a stable hash of the name.  Host keys are checked
against ``KNOWN_HOSTS`` and an unknown key is refused unless ``HOST_KEY_POLICY`` says otherwise.
"""
from __future__ import annotations

from terapix_fw.errors import ConfigError
from terapix_fw.params import Parameter, terapix_only
from terapix_fw.tool import Tool

__all__ = ["DatatransferTool"]

VERSION = "1.0.0"

_NONE = terapix_only("no AstrOmatic program moves files between nodes; TERAPIX's transfers were its own")


class DatatransferTool(Tool):
    """Dispatch files across the nodes of a cluster over SSH/SFTP (PUT), or fetch them back (GET), verifying each
    by SHA-256; TERAPIX's DataTransfer.
    """
    name = "datatransfer"
    version = VERSION
    description = "dispatch files across the nodes of a cluster over SSH/SFTP (PUT), or fetch them back (GET)"
    default_fanout = "all"
    produces = ("download",)
    parameters = [
        Parameter("DIRECTION", "keyword", "PUT", "PUT files to the nodes or GET them back",
                  choices=("PUT", "GET"), astromatic=_NONE),
        Parameter("NODES", "str", [], "nodes as name=user@host:port:/dest/root (user, port optional)",
                  nvalues=(0, None), astromatic=_NONE),
        Parameter("NODES_FILE", "path", "", "nodes file: name host port user key_file dest_root a line",
                  astromatic=_NONE),
        Parameter("KEY_FILE", "path", "", "SSH private key (empty: ssh-agent and ~/.ssh keys)", astromatic=_NONE),
        Parameter("KNOWN_HOSTS", "path", "~/.ssh/known_hosts", "known host keys of the nodes", astromatic=_NONE),
        Parameter("HOST_KEY_POLICY", "keyword", "REJECT",
                  "unknown host keys: refuse, accept with a warning, or accept silently",
                  choices=("REJECT", "WARN", "AUTO_ADD"), astromatic=_NONE),
        Parameter("DISPATCH", "keyword", "ROUND_ROBIN", "which node receives each file (PUT)",
                  choices=("ROUND_ROBIN", "FREE_SPACE", "BY_KEY"), astromatic=_NONE),
        Parameter("DISPATCH_KEY", "str", "FILTER", "FITS header keyword for DISPATCH BY_KEY", astromatic=_NONE),
        Parameter("DISPATCH_MAP", "str", [], "VALUE:NODE items for BY_KEY (* = any other value)",
                  nvalues=(0, None), astromatic=_NONE),
        Parameter("MIN_FREE", "float", 0.0, "MB left free on every node by FREE_SPACE dispatch",
                  minimum=0.0, astromatic=_NONE),
        Parameter("REMOTE_DIR", "str", "",
                  "sub-directory of dest_root receiving the files; {KEYWORD} = FITS header value", astromatic=_NONE),
        Parameter("LOCAL_DIR", "path", "", "directory receiving GET files (empty: the working directory)",
                  astromatic=_NONE),
        Parameter("NTHREADS", "int", 4, "simultaneous transfers (0 = one per core)", minimum=0, astromatic=_NONE),
        Parameter("RETRIES", "int", 3, "retries of a failed transfer, on a new connection", minimum=0,
                  astromatic=_NONE),
        Parameter("RETRY_DELAY", "float", 2.0, "delay before the n-th retry: n times this (s)", minimum=0.0,
                  astromatic=_NONE),
        Parameter("TIMEOUT", "float", 30.0, "network time-out (s)", minimum=0.001, astromatic=_NONE),
        Parameter("VERIFY", "bool", True, "check the SHA-256 of every file on the node", astromatic=_NONE),
        Parameter("CHECKSUM_METHOD", "keyword", "AUTO",
                  "remote SHA-256: sha256sum on the node (EXEC), read back over SFTP (REREAD), or EXEC "
                  "falling back to REREAD", choices=("AUTO", "EXEC", "REREAD"), astromatic=_NONE),
        Parameter("SKIP_EXISTING", "bool", True, "skip files already there with the same SHA-256", astromatic=_NONE),
        Parameter("PART_MAX_AGE", "float", 24.0,
                  "remove .part files of interrupted runs older than this (hours, 0 = never)", minimum=0.0,
                  astromatic=_NONE),
    ]

    def run(self, ctx):
        """Transfer the unit's files to or from the nodes; each transfer is logged and recorded (``transfer``).

        Parameters
        ----------
        ctx : StepContext
            The unit: inputs, configuration, output directory, log.

        Raises
        ------
        ConfigError
            Without destination node, with a bad REMOTE_DIR template or no file.
        """
        from .nodes import parse_node_spec, read_nodes_file
        from .ssh import SSHSettings
        from .transfer import run_transfers

        cfg = ctx.config
        nodes = [parse_node_spec(spec, cfg["KEY_FILE"]) for spec in cfg["NODES"]]
        if cfg["NODES_FILE"]:
            nodes += read_nodes_file(cfg["NODES_FILE"], cfg["KEY_FILE"])
        if not nodes:
            raise ConfigError("no destination node: set NODES or NODES_FILE", "datatransfer", "NODES")
        if cfg["REMOTE_DIR"]:
            from .dispatch import template_keywords
            from .nodes import check_relative
            try:
                check_relative(cfg["REMOTE_DIR"], "REMOTE_DIR")
                template_keywords(cfg["REMOTE_DIR"])
            except PermissionError as exc:
                raise ConfigError(str(exc), "datatransfer", "REMOTE_DIR") from None
        if not ctx.inputs:
            raise ConfigError("no file to transfer", "datatransfer")
        settings = SSHSettings(cfg["KNOWN_HOSTS"], cfg["HOST_KEY_POLICY"], cfg["TIMEOUT"],
                               cfg["CHECKSUM_METHOD"])
        if cfg["HOST_KEY_POLICY"] != "REJECT":
            ctx.log.warning("HOST_KEY_POLICY %s: host keys not in %s are accepted without verification",
                            cfg["HOST_KEY_POLICY"], cfg["KNOWN_HOSTS"] or "any known_hosts file")
        run_transfers(ctx, nodes, settings)
