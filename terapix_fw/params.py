"""Tool parameter declarations: one place for name, type, default, allowed values, help and AstrOmatic keyword.

A tool declares its parameters once with :class:`Parameter`; the XML checks, ``terapix config TOOL``, the
drop-in command line, the docs and the provenance record all derive from that declaration.  Values follow
the AstrOmatic conventions: lists are comma-separated, booleans are ``Y``/``N``, keywords are upper case.

Each declaration also says which keyword of which AstrOmatic program it corresponds to (its
``astromatic`` field, see :class:`AstromaticEquivalent`), so that a user who knows SExtractor or SCAMP can
map a configuration across, and a test can check every such keyword against the real program's ``-dd``.
"""
from __future__ import annotations

import dataclasses
import difflib
import re
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator, Mapping

from .errors import ConfigError

__all__ = ["Parameter", "ParameterSet", "Config", "split_values", "OUTPUT_KEYWORDS", "ASTROMATIC_PROGRAMS",
           "AstromaticEquivalent", "astromatic_keywords", "terapix_only"]

_TYPES = ("str", "int", "float", "bool", "keyword", "path")
#: the AstrOmatic programs' keywords that name files they write
OUTPUT_KEYWORDS = frozenset({"CATALOG_NAME", "CHECKIMAGE_NAME", "XML_NAME", "IMAGEOUT_NAME", "WEIGHTOUT_NAME",
                             "OUTWEIGHT_NAME", "OUTFLAG_NAME", "HEADEROUT_NAME", "MERGEDOUTCAT_NAME",
                             "FULLOUTCAT_NAME", "REFOUTCAT_NAME", "CHECKPLOT_NAME", "OUTCAT_NAME"})

#: the AstrOmatic programs a parameter may name as its equivalent -> their executables, most usual first
#: (Debian and conda names, then the names of a build from source)
ASTROMATIC_PROGRAMS: dict[str, tuple[str, ...]] = {
    "SExtractor": ("source-extractor", "sex"),
    "SCAMP": ("scamp",),
    "SWarp": ("SWarp", "swarp"),
    "PSFEx": ("psfex",),
    "WeightWatcher": ("weightwatcher", "ww"),
    "STIFF": ("stiff",),
}
_NONE_PREFIX = "none (terapix-fw only): "
_EQUIVALENT = re.compile(r"(?P<program>[A-Za-z]+)(?: (?P<keyword>[A-Z][A-Z0-9_]*))?(?: \((?P<note>[^)]+)\))?")


@dataclass(frozen=True)
class AstromaticEquivalent:
    """What a parameter corresponds to in the AstrOmatic programs, parsed from its ``astromatic`` field.

    The field is written in one of three forms:

    * ``"SExtractor"``: the keyword of the same name in that program (``DETECT_THRESH`` is SExtractor's
      ``DETECT_THRESH``);
    * ``"SWarp WEIGHT_SUFFIX"``: a keyword of another name, or of another program than the one the tool
      replaces (qualityfits' ``WEIGHT_SUFFIX`` is SWarp's);
    * ``"none (terapix-fw only): why"``: no AstrOmatic program has it, and why.

    The first two forms may end with a parenthesised note on a difference (``"STIFF (adds ASINH)"``).

    Parameters
    ----------
    program : str or None
        AstrOmatic program name, a key of :data:`ASTROMATIC_PROGRAMS`; ``None`` when there is no equivalent.
    keyword : str or None
        The program's keyword; ``None`` when there is no equivalent.
    note : str
        A difference worth knowing (for a keyword) or why there is no equivalent.

    Examples
    --------
    >>> from terapix_fw.params import AstromaticEquivalent
    >>> AstromaticEquivalent.parse("SWarp WEIGHT_SUFFIX", "WEIGHT_SUFFIX")
    AstromaticEquivalent(program='SWarp', keyword='WEIGHT_SUFFIX', note='')
    >>> AstromaticEquivalent.parse("none (terapix-fw only): a network option", "TIMEOUT").keyword is None
    True
    """

    program: str | None
    keyword: str | None
    note: str = ""

    @classmethod
    def parse(cls, text: str, name: str) -> "AstromaticEquivalent":
        """Parse an ``astromatic`` field.

        Parameters
        ----------
        text : str
            The field, in one of the forms described in the class docstring.
        name : str
            The parameter's own keyword, which the program-only form refers to.

        Returns
        -------
        AstromaticEquivalent

        Raises
        ------
        ValueError
            If ``text`` is empty, names a program not in :data:`ASTROMATIC_PROGRAMS`, or says "none" without
            a reason.
        """
        if text.startswith(_NONE_PREFIX):
            why = text[len(_NONE_PREFIX):].strip()
            if not why:
                raise ValueError(f"parameter {name}: astromatic {text!r} says none without saying why")
            return cls(None, None, why)
        match = _EQUIVALENT.fullmatch(text)
        if not match or match["program"] not in ASTROMATIC_PROGRAMS:
            raise ValueError(f"parameter {name}: astromatic {text!r} is not 'PROGRAM [KEYWORD] [(note)]' with "
                             f"PROGRAM one of {', '.join(ASTROMATIC_PROGRAMS)}, nor '{_NONE_PREFIX}<why>'")
        return cls(match["program"], match["keyword"] or name, match["note"] or "")

    def __str__(self) -> str:
        if self.program is None:
            return _NONE_PREFIX + self.note
        return f"{self.program} {self.keyword}" + (f" ({self.note})" if self.note else "")


def terapix_only(why: str) -> str:
    """The ``astromatic`` field of a parameter no AstrOmatic program has.

    Parameters
    ----------
    why : str
        Why there is no equivalent (what the parameter controls that the C programs do not do).

    Returns
    -------
    str
        ``"none (terapix-fw only): <why>"``.

    Examples
    --------
    >>> from terapix_fw.params import terapix_only
    >>> terapix_only("SSH transfers have no AstrOmatic program")
    'none (terapix-fw only): SSH transfers have no AstrOmatic program'
    """
    return _NONE_PREFIX + why


def astromatic_keywords(program: str, parameters: Iterable["Parameter"]) -> list["Parameter"]:
    """Declare parameters to be ``program``'s keywords of the same names, unless they say otherwise.

    A tool that reimplements an AstrOmatic program keeps its keywords; wrapping its declaration list in
    this call fills the ``astromatic`` field of every parameter that does not set one (the extensions of
    terapix-fw set theirs, with :func:`terapix_only`).  A keyword the program does not know is caught by
    the test that compares every declaration with the program's ``-dd`` output.

    Parameters
    ----------
    program : str
        A key of :data:`ASTROMATIC_PROGRAMS` (``"SExtractor"``).
    parameters : iterable of Parameter
        The declarations.

    Returns
    -------
    list of Parameter
        The declarations, those without an ``astromatic`` field given ``program``.

    Raises
    ------
    ValueError
        If ``program`` is not an AstrOmatic program.
    """
    if program not in ASTROMATIC_PROGRAMS:
        raise ValueError(f"unknown AstrOmatic program {program!r}; expected one of {', '.join(ASTROMATIC_PROGRAMS)}")
    return [p if p.astromatic else dataclasses.replace(p, astromatic=program) for p in parameters]


def split_values(raw: str) -> list[str]:
    """Split an AstrOmatic list value (``"3, 4"`` or ``"3,4"`` or ``"3 4"``) into its items.

    Parameters
    ----------
    raw : str
        The value as written in a configuration file or on a command line; a value in double quotes is
        one item, quotes removed.

    Returns
    -------
    list of str
        The items, stripped of blanks and quotes; empty items are dropped.

    Examples
    --------
    >>> from terapix_fw.params import split_values
    >>> split_values("3, 4 5")
    ['3', '4', '5']
    """
    raw = raw.strip()
    if raw.startswith('"') and raw.endswith('"') and len(raw) >= 2:
        return [raw[1:-1]]
    items = [item for chunk in raw.split(",") for item in chunk.split()]
    return [item.strip().strip('"') for item in items if item.strip()]


@dataclass(frozen=True)
class Parameter:
    """One configuration keyword of a tool.

    Parameters
    ----------
    name : AstrOmatic keyword, upper case (``DETECT_THRESH``).
    type : one of ``str int float bool keyword path``; ``keyword`` values must be one of ``choices``.
    default : the AstrOmatic program's default (a list for vector parameters).
    help : one line, as in ``sex -dd``.
    choices : allowed values for ``keyword`` (or any type).
    nvalues : 1 for a scalar; ``n`` for exactly n values; ``(lo, hi)`` for a range; ``hi=None`` unbounded.
    minimum, maximum : inclusive numeric bounds.
    output : the value names a file the tool writes (``terapix validate`` refuses two units of a run
        writing the same one); the AstrOmatic output keywords (:data:`OUTPUT_KEYWORDS`) are outputs
        without saying so.
    astromatic : the AstrOmatic equivalent: ``"SExtractor"`` (its keyword of the same name),
        ``"SWarp WEIGHT_SUFFIX"`` (a keyword of another name or program), or
        ``terapix_only("why")``; see :class:`AstromaticEquivalent`.  Empty means not declared, which the
        documentation shows and the test suite refuses for the installed tools.
    """

    name: str
    type: str
    default: Any
    help: str
    choices: tuple[str, ...] | None = None
    nvalues: int | tuple[int, int | None] = 1
    minimum: float | None = None
    maximum: float | None = None
    output: bool = False
    astromatic: str = ""

    @property
    def is_output(self) -> bool:
        """Whether the value names a file the tool writes."""
        return self.output or (self.type == "path" and self.name in OUTPUT_KEYWORDS)

    @property
    def equivalent(self) -> AstromaticEquivalent | None:
        """The parsed ``astromatic`` field, or ``None`` when the declaration does not give one."""
        return AstromaticEquivalent.parse(self.astromatic, self.name) if self.astromatic else None

    def __post_init__(self) -> None:
        if self.type not in _TYPES:
            raise ValueError(f"parameter {self.name}: type {self.type!r} is not one of {_TYPES}")
        if self.name != self.name.upper():
            raise ValueError(f"parameter {self.name}: names are upper case AstrOmatic keywords")
        if self.astromatic:
            AstromaticEquivalent.parse(self.astromatic, self.name)  # a malformed field fails at import

    @property
    def is_vector(self) -> bool:
        """Whether the parameter takes a list of values (``nvalues`` other than 1)."""
        return self.nvalues != 1

    def _bounds(self) -> tuple[int, int | None]:
        if isinstance(self.nvalues, tuple):
            return self.nvalues
        return (self.nvalues, self.nvalues)

    def _parse_one(self, item: Any, tool: str, where: str | None) -> Any:
        def bad(expected: str) -> ConfigError:
            return ConfigError(
                f"bad value {item!r} for parameter {self.name} of tool {tool}; expected {expected}",
                where, self.name)

        if self.type in ("str", "path"):
            value: Any = str(item)
        elif self.type == "int":
            try:
                value = int(str(item), 0) if not isinstance(item, int) else item
            except ValueError:
                raise bad("an integer") from None
        elif self.type == "float":
            try:
                value = float(item)
            except (TypeError, ValueError):
                raise bad("a number") from None
        elif self.type == "bool":
            if isinstance(item, bool):
                value = item
            else:
                text = str(item).strip().upper()
                if text in ("Y", "YES", "T", "TRUE", "1"):
                    value = True
                elif text in ("N", "NO", "F", "FALSE", "0"):
                    value = False
                else:
                    raise bad("Y or N")
        else:  # keyword
            value = str(item).strip().upper()
        if self.choices is not None and str(value).upper() not in self.choices:
            raise bad("one of " + ", ".join(self.choices))
        if self.minimum is not None and value < self.minimum:
            raise bad(f"a value >= {self.minimum}")
        if self.maximum is not None and value > self.maximum:
            raise bad(f"a value <= {self.maximum}")
        return value

    def parse(self, raw: Any, tool: str = "?", where: str | None = None) -> Any:
        """Convert ``raw`` (a string from a file or command line, or a Python value) to this type.

        Parameters
        ----------
        raw : str, list, tuple or scalar
            The value: a string is split into items as :func:`split_values` does (but a scalar ``str`` or
            ``path`` is kept whole); a list or tuple gives the items directly.
        tool : str
            Name of the tool, for the error message.
        where : str or None
            Where the value came from (``file:line``, ``command line``), for the error message.

        Returns
        -------
        Any
            A scalar of the declared type, or a list of them for a vector parameter.

        Raises
        ------
        ConfigError
            If the number of values, a value's type, its choice or its bounds is wrong; the message names the
            parameter, the tool and the value.
        """
        if isinstance(raw, str):
            scalar_text = not self.is_vector and self.type in ("str", "path")
            items: list[Any] = [raw.strip().strip('"')] if scalar_text else split_values(raw)
        elif isinstance(raw, (list, tuple)):
            items = list(raw)
        else:
            items = [raw]
        lo, hi = self._bounds()
        if not self.is_vector:
            if len(items) != 1:
                raise ConfigError(
                    f"parameter {self.name} of tool {tool} takes one value, got {len(items)}: {raw!r}",
                    where, self.name)
            return self._parse_one(items[0], tool, where)
        if len(items) < lo or (hi is not None and len(items) > hi):
            count = f"{lo}" if lo == hi else (f"{lo} to {hi}" if hi is not None else f"at least {lo}")
            raise ConfigError(
                f"parameter {self.name} of tool {tool} takes {count} values, got {len(items)}: {raw!r}",
                where, self.name)
        return [self._parse_one(item, tool, where) for item in items]

    def format(self, value: Any) -> str:
        """Format a value the AstrOmatic way (for ``-dd`` output and COMMAND records).

        Parameters
        ----------
        value : Any
            A value of this parameter's type, or a list of them.

        Returns
        -------
        str
            Booleans as ``Y``/``N``, lists comma-separated, strings with blanks in double quotes.
        """
        def one(v: Any) -> str:
            if isinstance(v, bool):
                return "Y" if v else "N"
            if isinstance(v, float):
                return repr(v) if v != int(v) or abs(v) >= 1e15 else f"{v:.1f}"
            text = str(v)
            return f'"{text}"' if (" " in text or text == "") and self.type in ("str", "path") else text
        if isinstance(value, (list, tuple)):
            return ",".join(one(v) for v in value)
        return one(value)


class Config(Mapping[str, Any]):
    """The effective, validated and frozen configuration of one step: keyword -> value.

    ``sources`` tells, for each keyword that is not a default, where its value came from.
    """

    def __init__(self, params: "ParameterSet", values: dict[str, Any], sources: dict[str, str]):
        self._params = params
        self._values = dict(values)
        self.sources = dict(sources)

    def __getitem__(self, key: str) -> Any:
        return self._values[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def non_defaults(self) -> dict[str, Any]:
        """Keywords whose value differs from the tool default (what a COMMAND record needs)."""
        return {k: v for k, v in self._values.items() if v != self._params[k].default}

    def as_strings(self) -> dict[str, str]:
        """Every keyword's value formatted the AstrOmatic way.

        Returns
        -------
        dict of str to str
            Keyword -> :meth:`Parameter.format` of its value.
        """
        return {k: self._params[k].format(v) for k, v in self._values.items()}

    def command_line(self) -> list[str]:
        """``-KEYWORD value`` arguments reproducing the non-default values."""
        out: list[str] = []
        for key, value in self.non_defaults().items():
            out += [f"-{key}", self._params[key].format(value)]
        return out

    def __repr__(self) -> str:
        return f"Config({self.non_defaults()!r})"


@dataclass
class ParameterSet:
    """The ordered parameter declarations of one tool."""

    tool: str
    parameters: list[Parameter] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._by_name = {}
        for p in self.parameters:
            if p.name in self._by_name:
                raise ValueError(f"tool {self.tool}: parameter {p.name} declared twice")
            self._by_name[p.name] = p

    def __getitem__(self, name: str) -> Parameter:
        return self._by_name[name]

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    def __iter__(self) -> Iterator[Parameter]:
        return iter(self.parameters)

    def __len__(self) -> int:
        return len(self.parameters)

    def lookup(self, name: str, where: str | None = None) -> Parameter:
        """The declaration of ``name``; an unknown name is an error suggesting the nearest keyword.

        Parameters
        ----------
        name : str
            Keyword, in any case.
        where : str or None
            Where the name was read, for the error message.

        Returns
        -------
        Parameter

        Raises
        ------
        ConfigError
            If the tool has no such keyword ("did you mean ...?" when one is close).
        """
        key = name.strip().upper()
        if key in self._by_name:
            return self._by_name[key]
        close = difflib.get_close_matches(key, list(self._by_name), n=1, cutoff=0.6)
        hint = f"; did you mean {close[0]}?" if close else ""
        raise ConfigError(f"unknown parameter {name} for tool {self.tool}{hint}", where, name)

    def defaults(self) -> dict[str, Any]:
        """The default configuration.

        Returns
        -------
        dict of str to Any
            Keyword -> declared default, in declaration order.
        """
        return {p.name: p.default for p in self.parameters}

    def resolve(self, *layers: Iterable[tuple[str, Any, str | None]]) -> Config:
        """Build the effective configuration from layers of ``(keyword, raw value, where)``.

        Later layers override earlier ones, as a command line overrides a configuration file which
        overrides the defaults in SExtractor, SCAMP and SWarp.

        Parameters
        ----------
        *layers : iterable of (str, Any, str or None)
            Each an iterable of ``(keyword, raw value, where)``: the configuration file, the instruction
            file's ``<param>`` elements, the command line...

        Returns
        -------
        Config
            The validated values, with the source of every non-default one.

        Raises
        ------
        ConfigError
            On an unknown keyword or a bad value (see :meth:`Parameter.parse`).
        """
        values = self.defaults()
        sources: dict[str, str] = {}
        for layer in layers:
            for name, raw, where in layer:
                param = self.lookup(name, where)
                values[param.name] = param.parse(raw, self.tool, where)
                sources[param.name] = where or "<api>"
        return Config(self, values, sources)

    def format_defaults(self, values: Mapping[str, Any] | None = None, header: str = "") -> str:
        """The configuration in AstrOmatic ``-dd`` format; it is accepted back as input.

        Parameters
        ----------
        values : mapping of str to Any, optional
            Values to print instead of the defaults (all keywords).
        header : str
            First line (a ``#`` comment), none if empty.

        Returns
        -------
        str
            One ``KEYWORD value # help (choices)`` line per parameter.
        """
        values = self.defaults() if values is None else values
        width = max((len(p.name) for p in self.parameters), default=10) + 1
        lines = [header] if header else []
        for p in self.parameters:
            text = p.format(values[p.name])
            comment = p.help
            if p.choices:
                comment += " (" + ", ".join(p.choices) + ")"
            lines.append(f"{p.name:<{width}}{text:<24} # {comment}")
        return "\n".join(lines) + "\n"
