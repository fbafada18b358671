"""The XML documents of terapix-fw, recognised by their root element, for ``terapix validate``.

Each kind of document registers a checker that makes every check its loader makes (schema, then the
document's own rules) and returns a one-line summary; a fault raises a :class:`~terapix_fw.errors.TerapixError`
whose ``all_errors`` lists every fault found.  Packages with documents of their own (Spica's selection
and release files) call :func:`register` when imported; :data:`PROVIDERS` names those modules so that
``terapix validate`` imports them lazily.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

__all__ = ["DocType", "register", "doctype_of", "check_document", "PROVIDERS"]


@dataclass(frozen=True)
class DocType:
    """A type of XML document of the project, recognised by its root element.

    Attributes
    ----------
    root : str
        Local name of the root element.
    label : str
        What a person calls it.
    check : callable
        ``check(path, *, overrides, workdir) -> summary``; raises on faults.
    """
    root: str                      # local name of the root element
    label: str                     # what a person calls it
    check: Callable[..., str]      # check(path, *, overrides, workdir) -> summary


_REGISTRY: dict[str, DocType] = {}

#: modules that register document types of their own when imported
PROVIDERS = ("terapix_fw.spica.doctypes",)


def register(root: str, label: str, check: Callable[..., str]) -> None:
    """Register a document type for ``terapix validate``.

    Parameters
    ----------
    root : str
        Local name of the root element.
    label : str
        What a person calls it.
    check : callable
        ``check(path, *, overrides, workdir) -> summary``.
    """
    _REGISTRY[root] = DocType(root, label, check)


def _load_providers() -> None:
    for module in PROVIDERS:
        importlib.import_module(module)


def doctype_of(path: str | Path) -> DocType:
    """The document type of ``path`` from its root element (parsed with the one safe parser).

    Parameters
    ----------
    path : str or Path

    Returns
    -------
    DocType

    Raises
    ------
    ConfigError
        If the root element is not one of the registered types.
    """
    from lxml import etree

    from .errors import ConfigError
    from .xmlutil import parse_xml
    _load_providers()
    root = parse_xml(Path(path), str(path), error_class=ConfigError).getroot()
    name = etree.QName(root).localname
    if name not in _REGISTRY:
        known = ", ".join(f"<{r}> ({d.label})" for r, d in sorted(_REGISTRY.items()))
        raise ConfigError(f"root element <{name}> is not a terapix-fw document; expected one of: {known}",
                          f"{path}:{root.sourceline or 1}")
    return _REGISTRY[name]


def check_document(path: str | Path, *, overrides: dict[str, str] | None = None,
                   workdir: str | None = None) -> tuple[DocType, str]:
    """Check one document of any known type.

    Parameters
    ----------
    path : str or Path
    overrides : dict of str to str, optional
        Instruction parameters to override.
    workdir : str, optional
        Work directory against which output names are checked.

    Returns
    -------
    tuple of (DocType, str)
        Its type and a summary.

    Raises
    ------
    TerapixError
        On any fault (each error found attached to the first).
    """
    doctype = doctype_of(path)
    return doctype, doctype.check(path, overrides=overrides or {}, workdir=workdir)


# ---------------------------------------------------------------------------------------------------
# the core's documents

def _check_instructions(path, *, overrides, workdir) -> str:
    from .errors import InstructionError
    from .graph import build_graph, check_outputs
    from .instructions import load_instructions
    doc = load_instructions(path, overrides=overrides, workdir=workdir)
    # the units and the files they are configured to write: two units writing one file is an error
    try:
        graph = build_graph(doc)
    except InstructionError as exc:  # inputs not there yet (or an RDBix query): said, not fatal
        outputs = f"units not expanded ({exc})"
    else:
        outputs = f"{len(graph.units)} units, {check_outputs(graph)} configured output names, no clash"
    return f"{len(doc.steps)} steps: {', '.join(s.id for s in doc.steps)}; {outputs}"


def _check_survey(path, **_) -> str:
    from .sim.survey import SurveySpec
    spec = SurveySpec.from_xml(path)
    return f"survey {getattr(spec, 'name', '') or Path(path).stem}"


def _check_site(path, **_) -> str:
    from .ingest.site import Site
    site = Site.from_xml(path)
    return f"site configuration ({len(getattr(site, 'rules', []) or [])} rule(s))"


def _check_dbclient(path, **_) -> str:
    from .dbclient.xmldoc import parse_documents
    docs = parse_documents(Path(path).read_bytes(), str(path))
    rows = sum(len(d.instructions) for d in docs)
    return f"{len(docs)} dbClient document(s), {rows} instruction(s)"


register("instructions", "instruction file", _check_instructions)
register("survey", "simulated survey description", _check_survey)
register("site", "ingestion site configuration", _check_site)
register("document", "dbClient document", _check_dbclient)
register("batch", "batch of dbClient documents", _check_dbclient)
