"""AstrOmatic-style configuration files and command lines.

Configuration files hold one ``KEYWORD value`` per line, ``#`` starting a comment, as in ``default.sex``,
``default.scamp`` and ``default.swarp``.  Command lines take ``-c FILE`` and ``-KEYWORD value`` pairs.
Precedence is the AstrOmatic one: command line > configuration file > defaults.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .errors import ConfigError

__all__ = ["read_config_file", "parse_config_text", "parse_command_line", "CommandLine"]

Entry = tuple[str, str, str]  # (keyword, raw value, "file:line")


def _strip_comment(line: str) -> str:
    """Remove a trailing ``#`` comment that is not inside double quotes."""
    in_quotes = False
    for i, char in enumerate(line):
        if char == '"':
            in_quotes = not in_quotes
        elif char == "#" and not in_quotes:
            return line[:i]
    return line


def parse_config_text(text: str, source: str) -> list[Entry]:
    """Parse AstrOmatic configuration text (``KEYWORD value # comment`` lines).

    Parameters
    ----------
    text : str
        The content.
    source : str
        Name of the file, for ``source:line`` in every entry.

    Returns
    -------
    list of Entry
        ``(keyword, value, where)`` for :meth:`terapix_fw.params.ParameterSet.resolve`.

    Raises
    ------
    ConfigError
        On a line that does not start with a keyword.
    """
    entries: list[Entry] = []
    for number, line in enumerate(text.splitlines(), start=1):
        body = _strip_comment(line).strip()
        if not body:
            continue
        parts = body.split(None, 1)
        keyword = parts[0]
        if not keyword.replace("_", "").replace("-", "").isalnum():
            raise ConfigError(f"cannot read {keyword!r} as a keyword; expected 'KEYWORD value'",
                              f"{source}:{number}", keyword)
        entries.append((keyword.upper(), parts[1].strip() if len(parts) > 1 else "", f"{source}:{number}"))
    return entries


def read_config_file(path: str | Path) -> list[Entry]:
    """Read an AstrOmatic configuration file (latin-1 tolerant: such files circulate from old systems).

    Parameters
    ----------
    path : str or Path

    Returns
    -------
    list of Entry

    Raises
    ------
    ConfigError
        If the file cannot be read or a line is not ``KEYWORD value``.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read configuration file: {exc.strerror}", str(path)) from None
    return parse_config_text(raw.decode("utf-8", errors="replace"), str(path))


@dataclass
class CommandLine:
    """A parsed drop-in command line: ``INPUT... [-c FILE] [-KEYWORD value ...]``."""

    inputs: list[str] = field(default_factory=list)
    config_file: str | None = None
    overrides: list[Entry] = field(default_factory=list)
    dump_defaults: bool = False
    #: ``-h``/``--help``: print the usage and the parameters; ``-v``/``--version``: print the version
    help: bool = False
    version: bool = False


def parse_command_line(argv: list[str]) -> CommandLine:
    """Parse AstrOmatic command-line conventions.

    ``-c FILE`` names the configuration file; ``-d``/``-dd`` asks for the default configuration;
    ``-h``/``--help`` for the usage, ``-v``/``--version`` for the version (as ``sex -v``);
    ``-KEYWORD value`` overrides a keyword; anything else is an input.  Keywords are checked later,
    against the tool's declarations, so that the message can name the tool.

    Parameters
    ----------
    argv : list of str
        The arguments after the tool's name.

    Returns
    -------
    CommandLine

    Raises
    ------
    ConfigError
        If ``-c`` or ``-KEYWORD`` has no value.
    """
    cmd = CommandLine()
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg in ("-d", "-dd"):
            cmd.dump_defaults = True
        elif arg in ("-h", "--help", "-help"):
            cmd.help = True
        elif arg in ("-v", "--version", "-version"):
            cmd.version = True
        elif arg == "-c":
            if i + 1 >= len(argv):
                raise ConfigError("option -c needs a configuration file name", "command line", "-c")
            cmd.config_file = argv[i + 1]
            i += 1
        elif arg.startswith("-") and len(arg) > 1 and not _is_number(arg):
            keyword = arg[1:].upper()
            if i + 1 >= len(argv):
                raise ConfigError(f"option {arg} needs a value", "command line", keyword)
            cmd.overrides.append((keyword, argv[i + 1], "command line"))
            i += 1
        else:
            cmd.inputs.append(arg)
        i += 1
    return cmd


def _is_number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False
