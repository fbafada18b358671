"""The task graph: every (step, data unit) pair, built from an instruction file before anything runs.

Data items carry their *origin* (the raw file they descend from) so that a per-file step downstream of a
per-file step pairs the right products, and so that per-group fan-out can group promised products by the
origin's header keywords.
"""
from __future__ import annotations

import glob
import re
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from .errors import ConfigError, InstructionError
from .instructions import InputRef, Instructions, StepDef

__all__ = ["Item", "Unit", "TaskGraph", "build_graph", "unit_tokens", "check_outputs", "file_stem"]


@dataclass(frozen=True)
class Item:
    """A data item: a concrete ``path``, or a promise of the products of ``kind`` of unit ``unit``."""

    origin: str
    path: str | None = None
    unit: str | None = None  # "step/unit" of the producing unit
    kind: str | None = None
    extension: int | None = None
    group: str | None = None
    #: the producing unit combined several inputs (fan-out group/all): ``origin`` (its first input) says
    #: nothing of this item, which is named after the product itself (a stack's catalogue after the stack)
    merged: bool = False


@dataclass
class Unit:
    """One data unit of a step: the inputs one execution of the tool processes.

    Attributes
    ----------
    step : StepDef
        Its step.
    id : str
        Its id within the step (a file stem, an extension, a group value...).
    items : list of Item
        Its inputs.
    param_items : dict of str to list of Item
        Files passed as values of tool parameters (``<input param="...">``).
    extension : int or None
        Image extension, for per-extension fan-out.
    group : str or None
        Group value, for per-group fan-out.
    deps : set of str
        Keys of the units it waits for.
    """
    step: StepDef
    id: str
    items: list[Item] = field(default_factory=list)
    param_items: dict[str, list[Item]] = field(default_factory=dict)
    extension: int | None = None
    group: str | None = None
    deps: set[str] = field(default_factory=set)
    #: how many of ``items`` are detection images put first (role="detection")
    ndetection: int = 0

    @property
    def origin(self) -> str:
        """The origin file of the unit's first measurement item (its {stem}), "" without inputs."""
        rest = self.items[self.ndetection:] or self.items
        return rest[0].origin if rest else ""

    @property
    def key(self) -> str:
        """The unit's key, ``step/unit``, unique in a run."""
        return f"{self.step.id}/{self.id}"

    @property
    def priority(self) -> int:
        """The priority of its step."""
        return self.step.priority


@dataclass
class TaskGraph:
    """Every unit of an instruction file, in submission order (dependencies first).

    Attributes
    ----------
    units : OrderedDict of str to Unit
        Unit key -> unit.
    """
    units: "OrderedDict[str, Unit]"

    def by_step(self, step_id: str) -> list[Unit]:
        """The units of one step.

        Parameters
        ----------
        step_id : str

        Returns
        -------
        list of Unit
        """
        return [u for u in self.units.values() if u.step.id == step_id]

    def order(self) -> list[Unit]:
        """A topological order, higher priority first among units that are ready together."""
        import heapq

        indeg = {k: len(u.deps) for k, u in self.units.items()}
        children: dict[str, list[str]] = {k: [] for k in self.units}
        for k, u in self.units.items():
            for d in u.deps:
                children[d].append(k)
        seq = {k: i for i, k in enumerate(self.units)}
        heap = [(-self.units[k].priority, seq[k], k) for k, n in indeg.items() if n == 0]
        heapq.heapify(heap)
        out = []
        while heap:
            _, _, k = heapq.heappop(heap)
            out.append(self.units[k])
            for c in children[k]:
                indeg[c] -= 1
                if indeg[c] == 0:
                    heapq.heappush(heap, (-self.units[c].priority, seq[c], c))
        return out


def _image_extensions(path: str) -> list[int]:
    """HDU indices holding image data (an MEF's CCDs; a simple FITS file gives [0])."""
    from astropy.io import fits

    with fits.open(path, memmap=True, lazy_load_hdus=True) as hdul:
        found = [i for i, hdu in enumerate(hdul)
                 if hdu.header.get("NAXIS", 0) >= 2 and hdu.header.get("XTENSION", "IMAGE") in ("IMAGE", "BINTABLE")
                 and (i == 0 or hdu.header.get("XTENSION") == "IMAGE" or hdu.header.get("ZIMAGE", False))]
    return found or [0]


def _header_values(path: str, keys: list[str]) -> str:
    from astropy.io import fits

    with fits.open(path, memmap=True, lazy_load_hdus=True) as hdul:
        headers = [hdul[0].header] + ([hdul[1].header] if len(hdul) > 1 else [])
        values = []
        for key in keys:
            value = next((h[key] for h in headers if key in h), None)
            if value is None:
                raise InstructionError(f"cannot group {path}: header keyword {key} is missing", path, key)
            values.append(str(value).strip())
    return "_".join(values)


def _safe_id(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.+\-]", "_", text) or "_"


def file_stem(path: str) -> str:
    """A file's name without its FITS or catalogue suffix.

    The ``{stem}`` of instruction files, and the name tools give a unit's default outputs so that the
    units of one step do not share a file.

    Parameters
    ----------
    path : str

    Returns
    -------
    str
    """
    name = Path(path).name
    for suffix in (".fits.fz", ".fits.gz", ".fits", ".fit", ".fz", ".cat", ".ldac"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return Path(name).stem


class _Builder:
    def __init__(self, doc: Instructions, query_db=None):
        self.doc = doc
        self.query_db = query_db
        self.units: "OrderedDict[str, Unit]" = OrderedDict()
        self._ext_cache: dict[str, list[int]] = {}
        self._group_cache: dict[tuple[str, tuple[str, ...]], str] = {}

    def extensions(self, path: str) -> list[int]:
        if path not in self._ext_cache:
            self._ext_cache[path] = _image_extensions(path)
        return self._ext_cache[path]

    def group_of(self, item: Item, keys: list[str]) -> str:
        cache_key = (item.origin, tuple(keys))
        if cache_key not in self._group_cache:
            self._group_cache[cache_key] = _header_values(item.origin, keys)
        return self._group_cache[cache_key]

    def glob(self, pattern: str, where: str) -> list[str]:
        base = self.doc.base_dir
        full = pattern if Path(pattern).is_absolute() else str(base / pattern)
        return sorted(str(Path(p).resolve()) for p in glob.glob(full) if Path(p).is_file())

    def items_for(self, ref: InputRef) -> list[Item]:
        if ref.files:
            return [Item(origin=p, path=p) for p in self.glob(ref.files, ref.where)]
        if ref.set:
            iset = self.doc.inputsets[ref.set]
            paths: list[str] = []
            for pattern in iset.patterns:
                paths += self.glob(pattern, iset.where)
            for query in iset.queries:
                if self.query_db is None:
                    raise InstructionError(f"input set {iset.id} holds a database query but no RDBix database "
                                           "is configured (--db or TERAPIX_DB_URL)", iset.where)
                paths += self.query_db(query)
            seen = set()
            unique = [p for p in paths if not (p in seen or seen.add(p))]
            return [Item(origin=p, path=p) for p in unique]
        upstream = [u for u in self.units.values() if u.step.id == ref.step]
        return [Item(origin=u.origin or u.id, unit=u.key, kind=ref.kind, extension=u.extension, group=u.group,
                     merged=(u.step.fanout or "file") in ("group", "all")
                     or any(i.merged for i in u.items[u.ndetection:u.ndetection + 1]))
                for u in upstream]

    def build(self) -> TaskGraph:
        for step in self._steps_in_dependency_order():
            self.add_step(step)
        return TaskGraph(self.units)

    def _steps_in_dependency_order(self) -> Iterator[StepDef]:
        done: list[str] = []
        remaining = list(self.doc.steps)
        while remaining:
            for step in remaining:
                needs = set(step.depends) | {r.step for r in step.inputs if r.step}
                if needs <= set(done):
                    done.append(step.id)
                    remaining.remove(step)
                    yield step
                    break

    def add_step(self, step: StepDef) -> None:
        # the measurement input drives the fan-out; detection inputs (role="detection") are paired like any
        # secondary input and then put first, as in SExtractor's DETECTION,MEASUREMENT
        primary_refs = ([r for r in step.inputs if not r.param and r.role != "detection"]
                        + [r for r in step.inputs if not r.param and r.role == "detection"])
        param_refs = [r for r in step.inputs if r.param]
        primary: list[Item] = []
        for ref in primary_refs[:1]:
            primary = self.items_for(ref)
            if not primary:
                raise InstructionError(f"step {step.id}: input {ref.files or ref.set or ref.step} matches nothing",
                                       ref.where)
        others = [(ref, self.items_for(ref)) for ref in primary_refs[1:] + param_refs]
        explicit = {u.key for d in step.depends for u in self.units.values() if u.step.id == d}

        def new_unit(uid: str, items: list[Item], extension=None, group=None) -> None:
            uid = _safe_id(uid)
            base, n = uid, 1
            while f"{step.id}/{uid}" in self.units:
                n += 1
                uid = f"{base}~{n}"
            unit = Unit(step=step, id=uid, items=list(items), extension=extension, group=group)
            first: dict[str, list[Item]] = {}
            for ref, candidates in others:
                matched = self._pair(step, ref, candidates, items, len(primary))
                target = (unit.param_items.setdefault(ref.param.upper(), []) if ref.param else unit.items)
                if ref.role == "detection":
                    first.setdefault(ref.param.upper() if ref.param else "", []).extend(matched)
                else:
                    target.extend(matched)
            for name, matched in first.items():
                if name:
                    unit.param_items[name] = matched + unit.param_items[name]
                else:
                    unit.items = matched + unit.items
                    unit.ndetection = len(matched)
            unit.deps = {i.unit for i in unit.items if i.unit}
            unit.deps |= {i.unit for lst in unit.param_items.values() for i in lst if i.unit}
            unit.deps |= explicit
            self.units[unit.key] = unit

        fanout = step.fanout or "file"
        if not step.inputs:
            new_unit("all", [])
        elif fanout == "file":
            for item in primary:
                new_unit(file_stem(item.path) if item.path else item.unit.split("/", 1)[1], [item],
                         item.extension, item.group)
        elif fanout == "extension":
            for item in primary:
                if item.extension is not None:
                    new_unit(item.unit.split("/", 1)[1], [item], item.extension, item.group)
                    continue
                for ext in self.extensions(item.origin):
                    new_unit(f"{file_stem(item.origin)}.{ext}", [item], ext, item.group)
        elif fanout == "group":
            groups: "OrderedDict[str, list[Item]]" = OrderedDict()
            for item in primary:
                groups.setdefault(self.group_of(item, step.group_by), []).append(item)
            for key, items in groups.items():
                new_unit(key, items, None, key)
        else:  # all
            new_unit("all", primary)

    @staticmethod
    def _pair(step: StepDef, ref: InputRef, candidates: list[Item], items: list[Item], nprimary: int) -> list[Item]:
        """The items of a secondary input that go with a unit's primary items."""
        if len(candidates) == 1:
            return candidates  # e.g. one reference catalogue for every unit
        origins = {(i.origin, i.extension) for i in items}
        by_origin = [c for c in candidates if (c.origin, c.extension) in origins]
        if not by_origin:
            by_origin = [c for c in candidates if c.origin in {i.origin for i in items}]
        if by_origin:
            return by_origin
        # files named after the primary file (a stack's "<stem>_weight.fits", "<stem>.weight.fits")
        stems = {file_stem(i.path) for i in items if i.path}
        by_name = [c for c in candidates if c.path and any(
            Path(c.path).name.startswith(stem) and Path(c.path).name[len(stem):len(stem) + 1] in ("_", ".")
            for stem in stems)]
        if by_name and not (len(items) == nprimary and len(by_name) < len(candidates)):
            return by_name
        if len(items) == nprimary:  # fan-out "all"/"group" with every primary item: take everything
            return candidates
        raise InstructionError(f"step {step.id}: cannot pair input {ref.files or ref.set or ref.step} with the "
                               f"primary input (no common origin file); give one file or products of a step "
                               f"that descends from the same files", ref.where)


def unit_tokens(unit: Unit, inputs: list[str] | None = None) -> dict[str, str]:
    """The per-unit name tokens of ``unit`` (``instructions.UNIT_TOKENS``).

    ``{stem}``/``{name}`` come from the unit's first input: a raw file, or the raw file a per-file
    product descends from; for a product of a unit that combined several inputs (a stack), from the
    product itself (``inputs``, known when the unit runs; before that, from the producing unit's key,
    which is unique as the product will be).

    Parameters
    ----------
    unit : Unit
    inputs : list of str, optional
        The unit's input paths, known when it runs.

    Returns
    -------
    dict of str to str
        Token -> value.
    """
    # the first measurement item: detection images (role="detection") come before it
    rest = unit.items[unit.ndetection:] or unit.items
    first = rest[0] if rest else None
    if first is not None and first.merged:
        index = unit.ndetection if rest is not unit.items and inputs and len(inputs) > unit.ndetection else 0
        source = inputs[index] if inputs else f"{first.unit.replace('/', '.')}.product"
    else:
        source = first.origin if first is not None else ""
    return {"stem": file_stem(source) if source else unit.id, "name": Path(source).name if source else unit.id,
            "ext": "" if unit.extension is None else str(unit.extension), "group": unit.group or "",
            "unit": unit.id, "step": unit.step.id}


def check_outputs(graph: TaskGraph, workdir: str | Path = ".") -> int:
    """Refuse two units writing the same file.

    The output names each unit is configured with (values of output parameters given in the
    instruction or configuration file, tokens substituted) are resolved in the step's directory.  Names a
    tool derives itself are the tool's concern.

    Parameters
    ----------
    graph : TaskGraph
    workdir : str or Path
        The run's work directory.

    Returns
    -------
    int
        The number of names checked.

    Raises
    ------
    InstructionError
        If two units would write the same file.
    """
    from .instructions import substitute_unit_tokens
    from .plugins import get_tool

    seen: dict[str, tuple[str, str]] = {}
    count = 0
    for unit in graph.units.values():
        step = unit.step
        params = get_tool(step.tool).cls.parameter_set()
        tokens = unit_tokens(unit)
        values: dict[str, tuple[str, str]] = {}
        for layer in step.config_layers():
            for name, value, where in layer:
                try:
                    param = params.lookup(name)
                except ConfigError:  # an unknown keyword is reported by the instruction file's validation
                    continue
                if param.is_output:
                    values[param.name] = (value, where)
        for name, (value, where) in values.items():
            base = Path(workdir) / (step.outdir or step.id)
            for item in (v.strip().strip('"') for v in substitute_unit_tokens(value, tokens).split(",")):
                if not item:
                    continue
                path = str((base / item).resolve()) if not Path(item).is_absolute() else str(Path(item).resolve())
                count += 1
                other = seen.setdefault(path, (unit.key, name))
                if other[0] != unit.key:
                    raise InstructionError(
                        f"units {other[0]} and {unit.key} would both write {item} ({other[1]}"
                        f"{'' if other[1] == name else ' / ' + name} = {value!r}); give each unit its own "
                        f"name with a per-unit token ({{stem}}, {{group}}, {{ext}}, {{unit}})", where, name)
    return count


def build_graph(doc: Instructions, query_db=None) -> TaskGraph:
    """Expand steps into units.

    Parameters
    ----------
    doc : Instructions
    query_db : callable, optional
        ``query_db(criteria) -> [paths]`` resolves RDBix input sets.

    Returns
    -------
    TaskGraph
    """
    return _Builder(doc, query_db).build()
