"""Instruction files: parsing, schema validation, parameter substitution and checks against the tools.

Every check runs before anything executes; each error names the file, line and column, the element and
what was expected, e.g. ``release.xml:14:7: element <param>: unknown parameter DETECT_TRESH for tool
sextractor; did you mean DETECT_THRESH?``.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from .config import read_config_file
from .errors import ConfigError, ErrorCollector, InstructionError, UnknownTool
from .xmlutil import parse_xml, validate

__all__ = ["Instructions", "StepDef", "InputRef", "InputSet", "load_instructions", "UNIT_TOKENS",
           "substitute_unit_tokens"]

#: instruction files larger than this are refused before they are read (the demo's is 6 kB)
MAX_INSTRUCTION_BYTES = 4 << 20
#: the longest value parameter substitution may produce (``${P1}`` = ten ``${P0}``... grows geometrically)
MAX_SUBSTITUTED = 1 << 16
#: keywords that name a tool's output files, the AstrOmatic way (the runner confines them to the step's
#: outdir; ``terapix validate`` checks them first)
OUTPUT_KEYWORDS = frozenset({
    "CATALOG_NAME", "CHECKIMAGE_NAME", "XML_NAME", "IMAGEOUT_NAME", "WEIGHTOUT_NAME", "HEADEROUT_NAME",
    "OUTWEIGHT_NAME", "OUTFLAG_NAME", "OUTPUT_NAME", "MERGEDOUTCAT_NAME", "FULLOUTCAT_NAME", "CHECKPLOT_NAME",
    "COVERAGE_NAME", "FOOTPRINT_NAME", "LEDGER_NAME", "CLIP_LOGNAME", "PSF_DIR", "RESAMPLE_DIR", "DOWNLOAD_DIR",
    "OUTPUT_DIR"})
_PARAM_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
#: tokens replaced per data unit in step parameter values: {stem} of the first input, its {name},
#: the {ext}ension number, the {group} key, the {unit} id and the {step} id
UNIT_TOKENS = ("stem", "name", "ext", "group", "unit", "step")
_UNIT_TOKEN = re.compile(r"\{(" + "|".join(UNIT_TOKENS) + r")\}")


def substitute_unit_tokens(value: str, tokens: dict[str, str]) -> str:
    """Replace the per-unit tokens (``{stem}``, ``{name}``...) of an output name or parameter value.

    Parameters
    ----------
    value : str
        The text with tokens.
    tokens : dict of str to str
        Token name -> value for the unit; unknown tokens are left as they are.

    Returns
    -------
    str
    """
    return _UNIT_TOKEN.sub(lambda m: tokens.get(m.group(1), m.group(0)), value)


@dataclass
class InputSet:
    """An ``<inputset>``: files matched by glob patterns and RDBix queries.

    Attributes
    ----------
    id : str
        Its id, referred to by ``<input set="...">``.
    patterns : list of str
        Glob patterns, relative to the instruction file.
    queries : list of dict
        RDBix queries (attributes of each ``<query>``).
    where : str
        ``file:line`` of the element.
    """
    id: str
    patterns: list[str] = field(default_factory=list)
    queries: list[dict[str, str]] = field(default_factory=list)
    where: str = ""


@dataclass
class InputRef:
    """One ``<input>`` of a step: an input set, files, another step's products, or a parameter's value.

    Attributes
    ----------
    set : str or None
        Input set id.
    files : str or None
        Glob pattern.
    step : str or None
        Id of the step whose products are used.
    kind : str or None
        Product kind taken from that step.
    param : str or None
        Instruction parameter whose value names the files.
    """
    set: str | None = None
    files: str | None = None
    step: str | None = None
    kind: str | None = None
    param: str | None = None
    where: str = ""
    #: "detection": these paths go first (SExtractor's dual-image ``DETECTION,MEASUREMENT`` order)
    role: str | None = None


@dataclass
class StepDef:
    """One ``<step>`` of an instruction file, as parsed and checked.

    Attributes
    ----------
    id, tool, fanout : str
        Step id, tool name and fan-out (``file``, ``extension``, ``group``, ``all``).
    priority : int
        Higher runs first when workers are scarce.
    group_by : list of str
        Header keywords of ``group`` fan-out.
    depends : list of str
        Steps that must finish first.
    outdir : str or None
        Output directory under the work directory.
    threads : int or None
        Cores per unit.
    config_file : str or None
        AstrOmatic configuration file of the tool.
    params : list of (str, str, str)
        ``(keyword, value, where)`` of each ``<param>``.
    inputs : list of InputRef
    outputs : list of str
        Output names (with per-unit tokens).
    """
    id: str
    tool: str
    fanout: str
    priority: int = 0
    group_by: list[str] = field(default_factory=list)
    depends: list[str] = field(default_factory=list)
    outdir: str | None = None
    threads: int | None = None
    config_file: str | None = None
    params: list[tuple[str, str, str]] = field(default_factory=list)  # (keyword, value, where)
    inputs: list[InputRef] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)
    where: str = ""

    def config_layers(self) -> list[list[tuple[str, str, str]]]:
        """The configuration layers of the step: its configuration file (if any), then its ``<param>`` elements.

        Returns
        -------
        list of list of (str, str, str)
            For :meth:`terapix_fw.params.ParameterSet.resolve`.
        """
        layers = []
        if self.config_file:
            layers.append(read_config_file(self.config_file))
        layers.append(list(self.params))
        return layers


@dataclass
class Instructions:
    """A parsed, validated instruction file.

    Attributes
    ----------
    path : Path
        The file.
    name, version, description : str
        From the root element.
    parameters : dict of str to str
        Declared parameters after overrides.
    inputsets : dict of str to InputSet
    steps : list of StepDef
    """
    path: Path
    name: str
    version: str
    description: str = ""
    parameters: dict[str, str] = field(default_factory=dict)
    inputsets: dict[str, InputSet] = field(default_factory=dict)
    steps: list[StepDef] = field(default_factory=list)

    def step(self, step_id: str) -> StepDef:
        """The step of id ``step_id``.

        Parameters
        ----------
        step_id : str

        Returns
        -------
        StepDef

        Raises
        ------
        KeyError
            If there is no such step.
        """
        for step in self.steps:
            if step.id == step_id:
                return step
        raise KeyError(step_id)

    @property
    def base_dir(self) -> Path:
        """The directory of the instruction file, against which relative names are read."""
        return self.path.parent


class _Locator:
    """Finds the column of an element or attribute on its source line, for error messages."""

    def __init__(self, path: Path, text: str):
        self.path = path
        self.lines = text.splitlines()

    def where(self, element, attribute: str | None = None) -> str:
        line = element.sourceline or 0
        column = 1
        if 0 < line <= len(self.lines):
            source = self.lines[line - 1]
            needle = f"{attribute}=" if attribute else f"<{element.tag}"
            index = source.find(needle)
            if index < 0 and attribute:
                index = source.find(f"<{element.tag}")
            column = index + 1 if index >= 0 else 1
        return f"{self.path}:{line}:{column}"


def _substitute(text: str | None, params: dict[str, str], where: str, element: str) -> str | None:
    if text is None:
        return None

    def replace(match: re.Match) -> str:
        name = match.group(1)
        if name not in params:
            known = ", ".join(sorted(params)) or "none declared"
            raise InstructionError(f"element <{element}>: unknown parameter ${{{name}}} (parameters: {known})",
                                   where)
        return params[name]

    # the output's length is known before it is built: refuse a geometric expansion instead of building it
    matches = list(_PARAM_REF.finditer(text))
    size = len(text) + sum(len(params.get(m.group(1), "")) - len(m.group(0)) for m in matches)
    if size > MAX_SUBSTITUTED:
        raise InstructionError(f"element <{element}>: substituting parameters gives more than {MAX_SUBSTITUTED} "
                               f"characters ({size})", where)
    return _PARAM_REF.sub(replace, text) if matches else text


def load_instructions(path: str | Path, overrides: dict[str, str] | None = None,
                      check_tools: bool = True, workdir: str | Path | None = None) -> Instructions:
    """Parse, validate and check an instruction file.

    Step outdirs and output names are checked against ``workdir`` (default ``./work/<name>``, as for
    ``terapix run``): the names the runner would refuse (absolute, ``..``, a link out) are refused here.

    Parameters
    ----------
    path : str or Path
        The instruction file.
    overrides : dict of str to str, optional
        Values replacing the declared ``<parameter>`` defaults (``terapix run -p NAME=VALUE``).
    check_tools : bool
        Check that every step's tool is installed and its parameters valid.
    workdir : str or Path, optional
        The run's work directory.

    Returns
    -------
    Instructions

    Raises
    ------
    InstructionError
        On malformed XML, a schema violation or an inconsistency (every error found is attached, the
        first raised), each naming the file, line and element.
    ConfigError
        On an unknown keyword or bad value of a step's tool.
    """
    path = Path(path)
    tree = parse_xml(path, max_bytes=MAX_INSTRUCTION_BYTES)
    validate(tree, "instructions.xsd", str(path))
    loc = _Locator(path, path.read_text(encoding="utf-8", errors="replace"))
    root = tree.getroot()

    # ${INSTRUCTIONS_DIR} is always defined, so that files beside the instruction file can be named
    params: dict[str, str] = {"INSTRUCTIONS_DIR": str(path.resolve().parent)}
    for el in root.findall("parameters/param"):
        params[el.get("name")] = _substitute(el.text or "", params, loc.where(el), "param") or ""
    for name, value in (overrides or {}).items():
        params[name] = value

    def sub(el, attr: str | None = None) -> str | None:
        raw = el.get(attr) if attr else el.text
        return _substitute(raw, params, loc.where(el, attr), el.tag)

    doc = Instructions(path=path.resolve(), name=root.get("name"), version=root.get("version"),
                       description=(root.findtext("description") or "").strip(), parameters=params)
    for el in root.findall("inputs/inputset"):
        iset = InputSet(id=el.get("id"), where=loc.where(el))
        for child in el:
            if child.tag == "files":
                iset.patterns.append(sub(child, "pattern"))
            elif child.tag == "query":
                iset.queries.append({k: _substitute(v, params, loc.where(child, k), "query")
                                     for k, v in child.attrib.items()})
        doc.inputsets[iset.id] = iset

    for el in root.findall("steps/step"):
        step = StepDef(id=el.get("id"), tool=sub(el, "tool"), fanout=el.get("fanout") or "",
                       priority=int(el.get("priority") or 0), where=loc.where(el),
                       group_by=[k.strip().upper() for k in (el.get("group-by") or "").split(",") if k.strip()],
                       depends=(sub(el, "depends") or "").split(), outdir=sub(el, "outdir"),
                       threads=int(el.get("threads")) if el.get("threads") else None)
        config = el.find("config")
        if config is not None:
            if config.get("file"):
                step.config_file = str((doc.base_dir / sub(config, "file")).resolve())
            for p in config.findall("param"):
                step.params.append((p.get("name"), sub(p) or "", loc.where(p, "name")))
        for i in el.findall("input"):
            step.inputs.append(InputRef(set=i.get("set"), files=sub(i, "files"), step=i.get("step"),
                                        kind=i.get("kind"), param=i.get("param"), where=loc.where(i),
                                        role=i.get("role")))
        step.outputs = [o.get("kind") for o in el.findall("output")]
        doc.steps.append(step)

    errors = ErrorCollector()  # independent faults are all reported, not only the first
    _check_structure(doc, root, loc, errors)
    if check_tools:
        _check_tools(doc, root, loc, errors)
    with errors.check():
        _check_outputs(doc, Path(workdir) if workdir else Path.cwd() / "work" / (doc.name or "run"))
    errors.raise_if_any()
    return doc


def _check_outputs(doc: Instructions, workdir: Path) -> None:
    """Refuse what the runner's confinement would refuse at run time: a step outdir or an output name
    (:data:`OUTPUT_KEYWORDS`) that is absolute, climbs out with ``..`` or goes through a link out."""
    from .atomic import confine

    tokens = {t: "x" for t in UNIT_TOKENS}
    for step in doc.steps:
        try:
            outdir = confine(workdir, step.outdir or step.id, "step outdir")
        except PermissionError as exc:
            raise InstructionError(f"element <step id=\"{step.id}\">: {exc}", step.where) from None
        for layer in step.config_layers():
            for name, value, where in layer:
                if name.upper() not in OUTPUT_KEYWORDS:
                    continue
                for item in substitute_unit_tokens(value, tokens).split(","):
                    if item.strip():
                        try:
                            confine(outdir, item.strip(), f"output name {name}")
                        except PermissionError as exc:
                            raise InstructionError(f"element <param>: {exc}", where, name) from None


def _check_structure(doc: Instructions, root, loc: _Locator, errors: ErrorCollector) -> None:
    ids = [s.id for s in doc.steps]
    for step, el in zip(doc.steps, root.findall("steps/step")):
        if step.fanout == "group" and not step.group_by:
            errors.add(InstructionError("element <step>: fanout=\"group\" needs a group-by attribute "
                                        "(header keywords such as FILTER,OBJECT)", loc.where(el, "fanout")))
        for dep in step.depends:
            if dep not in ids:
                errors.add(InstructionError(f"element <step>: depends on unknown step {dep!r} "
                                            f"(steps: {', '.join(ids)})", loc.where(el, "depends")))
        for ref, iel in zip(step.inputs, el.findall("input")):
            with errors.check():
                _check_input_ref(doc, step, ref, iel, ids, loc)
        if step.inputs and not [r for r in step.inputs if not r.param and r.role != "detection"]:
            errors.add(InstructionError("element <step>: role=\"detection\" inputs need a measurement input "
                                        "too (an <input> without role and param)", step.where))
    if errors.errors:  # a cycle search over unknown steps would only add noise
        return
    # dependency cycles
    graph = {s.id: set(s.depends) | {r.step for r in s.inputs if r.step} for s in doc.steps}
    state: dict[str, int] = {}

    def visit(node: str, trail: list[str]) -> None:
        if state.get(node) == 1:
            cycle = " -> ".join(trail[trail.index(node):] + [node])
            raise InstructionError(f"steps depend on each other in a cycle: {cycle}", doc.step(node).where)
        if state.get(node) == 2:
            return
        state[node] = 1
        for nxt in sorted(graph[node]):
            visit(nxt, trail + [node])
        state[node] = 2

    for node in graph:
        visit(node, [])


def _check_input_ref(doc: Instructions, step: StepDef, ref: InputRef, iel, ids: list[str], loc: _Locator) -> None:
    given = [x for x in (ref.set, ref.files, ref.step) if x]
    if len(given) != 1:
        raise InstructionError("element <input>: give exactly one of set=, files= or step=", ref.where)
    if ref.set and ref.set not in doc.inputsets:
        known = ", ".join(doc.inputsets) or "none"
        raise InstructionError(f"element <input>: unknown input set {ref.set!r} (input sets: {known})",
                               loc.where(iel, "set"))
    if ref.step:
        if ref.step not in ids:
            raise InstructionError(f"element <input>: unknown step {ref.step!r} (steps: {', '.join(ids)})",
                                   loc.where(iel, "step"))
        if ref.step == step.id:
            raise InstructionError("element <input>: a step cannot consume its own products", loc.where(iel, "step"))
        if not ref.kind:
            raise InstructionError("element <input>: an input from a step needs kind= (the product kind)",
                                   loc.where(iel))


def _check_tools(doc: Instructions, root, loc: _Locator, errors: ErrorCollector) -> None:
    from .plugins import get_tool

    for step, el in zip(doc.steps, root.findall("steps/step")):
        try:
            info = get_tool(step.tool, loc.where(el, "tool"))
        except UnknownTool as exc:
            errors.add(UnknownTool(f"element <step id=\"{step.id}\">: {exc.reason}", exc.where, step.tool))
            continue
        params = info.cls.parameter_set()
        if not step.fanout:
            step.fanout = info.cls.default_fanout
        if step.config_file:
            try:
                entries = read_config_file(step.config_file)
            except ConfigError as exc:
                entries = []
                errors.add(InstructionError(f"element <config>: {exc.reason}", exc.where))
            for name, value, where in entries:
                with errors.check():
                    _check_value(params, name, value, where, "config file")
        for name, value, where in step.params:
            with errors.check():
                _check_value(params, name, value, where, "<param>")
        for ref in step.inputs:
            with errors.check():
                if ref.param:
                    try:
                        params.lookup(ref.param.upper(), ref.where)
                    except ConfigError as exc:
                        raise InstructionError(f"element <input>: {exc.reason}", exc.where, exc.keyword) from None
                if ref.step and ref.step in {s.id for s in doc.steps}:
                    try:
                        upstream = get_tool(doc.step(ref.step).tool)
                    except UnknownTool:  # reported once, at its own step
                        upstream = None
                    if upstream and upstream.cls.produces and ref.kind not in upstream.cls.produces:
                        raise InstructionError(
                            f"element <input>: step {ref.step} (tool {upstream.name}) produces "
                            f"{', '.join(upstream.cls.produces)}, not {ref.kind!r}", ref.where)
        for kind in step.outputs:
            if info.cls.produces and kind not in info.cls.produces:
                errors.add(InstructionError(f"element <output>: tool {info.name} produces "
                                            f"{', '.join(info.cls.produces)}, not {kind!r}", step.where))


def _check_value(params, name: str, value: str, where: str, element: str) -> None:
    try:
        param = params.lookup(name, where)
        if not _UNIT_TOKEN.search(value):  # per-unit values are checked when the unit is built
            param.parse(value, params.tool, where)
    except ConfigError as exc:
        label = "element <param>" if element == "<param>" else element
        raise InstructionError(f"{label}: {exc.reason}", exc.where, exc.keyword) from None
