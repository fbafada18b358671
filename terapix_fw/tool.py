"""The tool interface every plugin implements.

A tool is a class with a name, a version, its parameter declarations, the product kinds it consumes and
produces, and one method, :meth:`Tool.run`.  The framework does everything else: configuration layering
and validation, logging, timing, atomic writes, recording, retries and error reporting.

Example
-------
>>> from terapix_fw.tool import Tool
>>> from terapix_fw.params import Parameter
>>> class Copy(Tool):
...     name = "copy"
...     version = "1.0"
...     parameters = [Parameter("SUFFIX", "str", ".copy", "suffix of the output file")]
...     def run(self, ctx):
...         for path in ctx.inputs:
...             with ctx.product(path.name + ctx.config["SUFFIX"], kind="copy") as tmp:
...                 tmp.write_bytes(path.read_bytes())
"""
from __future__ import annotations

import contextlib
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Iterator

from .atomic import atomic_path, confine, sha256_file
from .params import Config, Parameter, ParameterSet

__all__ = ["Tool", "StepContext", "Product", "UnitResult", "load_cached_kernels"]


@dataclass
class Product:
    """A file a unit produced: its final path, kind (``catalog``, ``weight``, ``head``...), checksum."""

    path: str
    kind: str
    checksum: str = ""
    size: int = 0
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class UnitResult:
    """What a unit sends back to the runner.  A tool error is a result with ``status='failed'``."""

    step: str
    unit: str
    status: str  # done | failed | skipped
    products: list[Product] = field(default_factory=list)
    records: list[tuple[str, dict]] = field(default_factory=list)
    error: str = ""
    log_path: str = ""
    host: str = ""
    start: float = 0.0
    end: float = 0.0
    key: str = ""


class StepContext:
    """Everything a tool's :meth:`Tool.run` sees of one data unit.

    Attributes
    ----------
    inputs : list of input file paths for this unit.
    extension : HDU index (1-based image extension) for per-extension fan-out, else ``None``.
    group : the group key for per-group fan-out, else ``None``.
    config : the effective :class:`~terapix_fw.params.Config`.
    outdir : directory in which relative output names are resolved.
    log : a :class:`logging.Logger` that writes to the unit's log file.
    nthreads : cores this unit may use.
    """

    def __init__(self, *, inputs: list[Path], config: Config, outdir: Path, log: logging.Logger,
                 extension: int | str | None = None, group: str | None = None, nthreads: int | None = None,
                 confine_outputs: bool = True, step: str = "", unit: str = ""):
        self.inputs = [Path(p) for p in inputs]
        self.config = config
        self.outdir = Path(outdir)
        self.log = log
        self.extension = extension
        self.group = group
        self.nthreads = nthreads or os.cpu_count() or 1
        self.confine_outputs = confine_outputs
        self.step = step
        self.unit = unit
        self.products: list[Product] = []
        self.records: list[tuple[str, dict]] = []

    def output_path(self, name: str | Path) -> Path:
        """Final path for an output name.

        In a pipeline run (XML instructions, untrusted) names are confined to ``outdir``; a drop-in
        run resolves them like the AstrOmatic programs do, relative to the working directory.

        Parameters
        ----------
        name : str or Path
            The output name, as given in the configuration.

        Returns
        -------
        Path

        Raises
        ------
        PermissionError
            In a pipeline run, if the name escapes ``outdir`` (see :func:`terapix_fw.atomic.confine`).
        """
        name = str(name)
        if self.confine_outputs:
            return confine(self.outdir, name, "output name")
        path = Path(name)
        return path if path.is_absolute() else self.outdir / path

    @contextlib.contextmanager
    def product(self, name: str | Path, kind: str, **meta: Any) -> Iterator[Path]:
        """Write a product atomically: yields a temporary path, renamed to the final name on success.

        A drop-in run writes where the command line says, as the AstrOmatic programs do; like them it
        does not create a missing directory (a typo in ``-CATALOG_NAME`` must not grow a new tree).  A
        pipeline run creates its step directories under the work directory itself.

        Parameters
        ----------
        name : str or Path
            Output name (see :meth:`output_path`).
        kind : str
            Product kind recorded in RDBix (``catalog``, ``weight``, ``head``...).
        **meta : Any
            Extra metadata recorded with the product.

        Yields
        ------
        Path
            The temporary path to write; nothing is left under the final name if the block raises.

        Raises
        ------
        ToolError
            In a drop-in run, if the output directory does not exist.
        """
        final = self.output_path(name)
        if not self.confine_outputs and not final.parent.is_dir():
            from .errors import ToolError
            raise ToolError(f"cannot write {name}: directory {final.parent} does not exist "
                            "(a drop-in run, like the AstrOmatic programs, does not create it)")
        with atomic_path(final) as tmp:
            yield tmp
        self.add_product(final, kind, **meta)

    def add_product(self, path: str | Path, kind: str, **meta: Any) -> Product:
        """Declare a file that was already written atomically (e.g. by a library) as a product.

        Parameters
        ----------
        path : str or Path
            The file, already in its final place.
        kind : str
            Product kind recorded in RDBix.
        **meta : Any
            Extra metadata recorded with the product.

        Returns
        -------
        Product
            The product, with its SHA-256 and size.
        """
        path = Path(path)
        product = Product(str(path), kind, sha256_file(path), path.stat().st_size, meta)
        self.products.append(product)
        return product

    def record(self, kind: str, **data: Any) -> None:
        """Send a record (exposure metadata, quality metrics, catalogue summary...) to RDBix.

        Parameters
        ----------
        kind : str
            Record kind (``exposure``, ``quality``, ``catalog``, ``stack``...), which decides the table.
        **data : Any
            The record's fields.
        """
        self.records.append((kind, data))


class Tool:
    """Base class of every tool.  Subclasses set the class attributes and implement :meth:`run`."""

    name: ClassVar[str] = ""
    version: ClassVar[str] = "0"
    description: ClassVar[str] = ""
    parameters: ClassVar[list[Parameter] | ParameterSet] = []
    consumes: ClassVar[tuple[str, ...]] = ()
    produces: ClassVar[tuple[str, ...]] = ()
    #: default fan-out when an instruction file does not say (file, extension, group, all)
    default_fanout: ClassVar[str] = "file"
    #: ``terapix tool``: start the tool in a forked process while the parent opens RDBix (~0.2 s), for
    #: tools often run on one CCD in about a second; off where a second process would only add memory
    #: to a long run
    dropin_overlap: ClassVar[bool] = False
    #: modules a run of the tool needs before it starts (heavy libraries, numba kernels loaded at
    #: import), imported once in a warm process that runs are forked from: the local executor's fork
    #: server (:class:`terapix_fw.executors.LocalExecutor`) and ``terapix tool-server``
    #: (:mod:`terapix_fw.toolserver`), instead of once per worker or per command.  Importing them must not
    #: start threads or open files; an import error there is ignored (the run imports what it needs as
    #: usual and reports it)
    worker_preload: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def preload_modules(cls) -> list[str]:
        """What a warm process imports for this tool: its own module and :attr:`worker_preload`.

        Returns
        -------
        list of str
            Module names, each once, in order.
        """
        return list(dict.fromkeys([cls.__module__, *cls.worker_preload]))

    @classmethod
    def parameter_set(cls) -> ParameterSet:
        """The tool's parameter declarations as a :class:`~terapix_fw.params.ParameterSet` (built once per class).

        Returns
        -------
        ParameterSet
        """
        cached = cls.__dict__.get("_parameter_set")
        if cached is None:
            params = cls.parameters
            cached = params if isinstance(params, ParameterSet) else ParameterSet(cls.name, list(params))
            cls._parameter_set = cached  # type: ignore[attr-defined]
        return cached

    def run(self, ctx: StepContext) -> None:  # pragma: no cover - abstract
        """Process one data unit: read ``ctx.inputs``, write products through ``ctx.product``.

        Parameters
        ----------
        ctx : StepContext
            The unit's inputs, configuration, output directory, log and record sink.

        Raises
        ------
        ToolError
            For bad input (the message names the file, extension or keyword); never retried.
        """
        raise NotImplementedError(f"tool {self.name} does not implement run()")

    def default_config_text(self) -> str:
        """The default configuration in AstrOmatic ``-dd`` format, with a header line naming the tool.

        Returns
        -------
        str
        """
        header = f"# Default configuration file for {self.name} {self.version} (terapix-fw)"
        return self.parameter_set().format_defaults(header=header)

    def describe_inputs(self, inputs: list[str]) -> list[str]:
        """Turn drop-in command-line inputs into file paths.

        Tools such as sextractor override this to accept ``DETECTION_IMAGE,MEASUREMENT_IMAGE``.

        Parameters
        ----------
        inputs : list of str
            The command line's input arguments.

        Returns
        -------
        list of str
            The file paths the unit reads.
        """
        return inputs


def import_preload(modules) -> None:
    """Import a tool's preload modules (:meth:`Tool.preload_modules`) with Python's cyclic garbage
    collector paused, then move every object made so far to its permanent generation (``gc.freeze``).

    Loading numpy, astropy, numba and a tool's cached kernels makes a few hundred thousand objects that
    live as long as the process; the collector, run every 700 new objects, walks them again and again:
    about 15% of the CPU time of the loading.  Frozen, they are never walked again, and a process forked
    later does not write to their pages when it collects.  The collector is on again afterwards, for the
    run.  An ImportError is ignored: the run imports what it needs and reports it.

    Parameters
    ----------
    modules : iterable of str
        Module names, imported in order.
    """
    import gc
    import importlib

    enabled = gc.isenabled()
    gc.disable()
    try:
        for module in modules:
            try:
                importlib.import_module(module)
            except ImportError:  # as multiprocessing's fork server: the run imports it and reports
                pass
    finally:
        gc.freeze()
        if enabled:
            gc.enable()


def load_cached_kernels(*modules) -> int:
    """Load, from numba's on-disk cache, every compiled version of the numba kernels of ``modules``,
    for a tool's warm module (:attr:`Tool.worker_preload`): a process forked later finds them loaded
    instead of paying numba's set-up (0.15-0.2 s for the first kernel) and about 5 ms per kernel.

    Only what the cache holds for this CPU is loaded: nothing is compiled here.  Kernels with
    ``parallel=True`` are left out (loading them may start numba's thread pool, and a process that
    forks must have no threads).  The cache's index is read through numba's internal API, so any
    failure leaves a kernel to load itself when first called.

    Parameters
    ----------
    modules : module
        Modules defining ``numba.njit(cache=True)`` functions at their top level.

    Returns
    -------
    int
        The number of compiled versions loaded.
    """
    from numba.core.registry import CPUDispatcher

    loaded = 0
    for module in modules:
        for kernel in vars(module).values():
            if not isinstance(kernel, CPUDispatcher) or kernel.targetoptions.get("parallel"):
                continue
            try:
                cache = kernel._cache
                magic = kernel.targetctx.codegen().magic_tuple()
                for key in cache._cache_file._load_index():
                    if key[1] == magic and key[0] not in kernel.overloads:
                        kernel.compile(key[0])  # found in the cache, so loaded, not compiled
                        loaded += 1
            except Exception:  # noqa: BLE001 - numba's internals moved: the kernel loads on first call
                continue
    return loaded
