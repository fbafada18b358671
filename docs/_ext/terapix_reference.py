"""Sphinx extension: the reference pages generated from the code, so that they cannot drift.

Three directives, each reading its source at build time:

* ``.. terapix-tools::`` — every installed tool (pluggy entry points) with each parameter's type,
  default, allowed values, bounds, help and AstrOmatic equivalent, from the tool's own
  :class:`terapix_fw.params.Parameter` declarations (the same ones ``terapix config TOOL`` prints);
* ``.. terapix-hooks::`` — every hook specification of :mod:`terapix_fw.hookspecs`, its arguments and
  its docstring;
* ``.. terapix-xsd:: NAME.xsd`` — every element of one of the project's XML schemas, with its
  attributes (type, required or not, default) and the documentation annotations of the schema;
* ``.. terapix-api::`` — an autodoc section for every public module of terapix_fw (no part of its path
  starting with an underscore; Alembic revision scripts left out), and ``.. terapix-plugin-api::`` one for
  each installed plugin package (its tool class and what its ``__all__`` exports): a new module is in the
  reference without anyone adding it.
"""
from __future__ import annotations

import inspect
from pathlib import Path

from docutils import nodes
from docutils.parsers.rst import Directive, directives
from docutils.statemachine import StringList

XS = "{http://www.w3.org/2001/XMLSchema}"


def _rst_literal(value) -> str:
    text = ", ".join(str(v) for v in value) if isinstance(value, (list, tuple)) else str(value)
    return f"``{text}``" if text.strip() else "(empty)"


def _one_line(text: str) -> str:
    return " ".join((text or "").split()).replace("|", "\\|")


def _equivalent(param) -> str:
    """The AstrOmatic column: the program's keyword, or why there is none."""
    equivalent = param.equivalent
    if equivalent is None:
        return "**not declared**"
    if equivalent.program is None:
        return _one_line(f"none (terapix-fw only): {equivalent.note}")
    same = " (same)" if equivalent.keyword == param.name else ""
    note = f"; {equivalent.note}" if equivalent.note else ""
    return _one_line(f"{equivalent.program} ``{equivalent.keyword}``{same}{note}")


class _Generated(Directive):
    """A directive whose body is reStructuredText built by :meth:`lines`."""

    def lines(self) -> list[str]:  # pragma: no cover - abstract
        raise NotImplementedError

    def run(self):
        from sphinx.util.nodes import nested_parse_with_titles
        holder = nodes.section()  # generated text has section titles of its own
        holder.document = self.state.document
        source = self.state_machine.input_lines.source(self.lineno - self.state_machine.input_offset - 1)
        nested_parse_with_titles(self.state, StringList(self.lines(), source=source), holder)
        return holder.children


class ToolsDirective(_Generated):
    def lines(self) -> list[str]:
        from terapix_fw.plugins import get_tools
        out: list[str] = []
        for name, info in sorted(get_tools().items()):
            cls = info.cls
            title = f"{name} ({info.distribution} {info.version})"
            out += [title, "~" * len(title), ""]
            doc = inspect.getdoc(cls) or cls.description or ""
            if doc:
                out += [_one_line(doc.split("\n\n")[0]), ""]
            consumes = ", ".join(cls.consumes) or "files"
            produces = ", ".join(cls.produces) or "nothing recorded"
            out += [f"Consumes: {consumes}. Produces: {produces}. Default fan-out: ``{cls.default_fanout}``.", ""]
            params = list(cls.parameter_set())
            if not params:
                out += ["No parameters.", ""]
                continue
            out += [".. list-table::", "   :header-rows: 1", "   :widths: 20 7 15 18 22 18", "",
                    "   * - keyword", "     - type", "     - default", "     - allowed", "     - meaning",
                    "     - AstrOmatic"]
            for p in params:
                allowed = []
                if p.choices:
                    allowed.append(" ".join(p.choices))
                if p.minimum is not None or p.maximum is not None:
                    lo = "" if p.minimum is None else f"{p.minimum:g}"
                    hi = "" if p.maximum is None else f"{p.maximum:g}"
                    allowed.append(f"[{lo}, {hi}]")
                if p.is_vector:
                    lo, hi = p._bounds()
                    allowed.append(f"{lo}..{'n' if hi is None else hi} values")
                out += [f"   * - ``{p.name}``", f"     - {p.type}", f"     - {_rst_literal(p.default)}",
                        f"     - {_one_line('; '.join(allowed)) or '-'}", f"     - {_one_line(p.help) or '-'}",
                        f"     - {_equivalent(p)}"]
            out.append("")
        return out


class HooksDirective(_Generated):
    def lines(self) -> list[str]:
        from terapix_fw import hookspecs
        out: list[str] = []
        for name, func in inspect.getmembers(hookspecs, inspect.isfunction):
            if not hasattr(func, "terapix_fw_spec"):
                continue
            # autodoc renders the numpydoc Parameters section of each hook (through napoleon)
            out += [f".. autofunction:: terapix_fw.hookspecs.{name}", "   :no-index:", ""]
        return out


class XsdDirective(_Generated):
    required_arguments = 1
    option_spec = {"title": directives.unchanged}

    def lines(self) -> list[str]:
        from lxml import etree

        from terapix_fw.xmlutil import schema_path
        path = Path(schema_path(self.arguments[0]))
        tree = etree.parse(str(path))
        out: list[str] = []
        for element in tree.iter(f"{XS}element"):
            name = element.get("name")
            if not name:
                continue
            doc = " ".join(_one_line(d.text or "") for d in element.iterfind(f"{XS}annotation/{XS}documentation"))
            out += [f"``<{name}>``", "^" * (len(name) + 6), ""]
            if doc:
                out += [doc, ""]
            attributes = list(element.iter(f"{XS}attribute"))
            if attributes:
                out += [".. list-table::", "   :header-rows: 1", "   :widths: 20 20 15 45", "",
                        "   * - attribute", "     - type", "     - use", "     - meaning"]
                for attr in attributes:
                    attr_doc = " ".join(_one_line(d.text or "")
                                        for d in attr.iterfind(f"{XS}annotation/{XS}documentation"))
                    use = attr.get("use", "optional")
                    if attr.get("default") is not None:
                        use += f", default ``{attr.get('default')}``"
                    out += [f"   * - ``{attr.get('name') or attr.get('ref')}``",
                            f"     - {attr.get('type', 'restricted string')}", f"     - {use}",
                            f"     - {attr_doc or '-'}"]
                out.append("")
        return out


def public_modules(package: str = "terapix_fw") -> list[str]:
    """Dotted names of the package's public modules (sub-packages' ``__init__`` only re-export: left out)."""
    import importlib

    root = Path(importlib.import_module(package).__file__).parent
    names = []
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root).with_suffix("")
        # the Alembic environment and revision scripts are run by Alembic, not imported
        if any(part.startswith("_") for part in rel.parts) or rel.parts[:2] == ("db", "migrations"):
            continue
        names.append(".".join((package, *rel.parts)))
    return names


class ApiDirective(_Generated):
    def lines(self) -> list[str]:
        out: list[str] = []
        for name in public_modules():
            # :ignore-module-all: documents what a module defines, not what its __all__ re-exports (each
            # object once, so that cross-references are not ambiguous)
            out += [f"``{name}``", "~" * (len(name) + 4), "", f".. automodule:: {name}", "   :members:",
                    "   :ignore-module-all:", ""]
        return out


class PluginApiDirective(_Generated):
    def lines(self) -> list[str]:
        import importlib

        from terapix_fw.plugins import get_tools
        out: list[str] = []
        tools = sorted((info.cls.__module__, name, info) for name, info in get_tools().items()
                       if not info.cls.__module__.startswith("terapix_fw."))
        for module, name, info in tools:
            package = importlib.import_module(module.split(".")[0])
            title = f"{name} ({info.distribution} {info.version})"
            out += [title, "~" * len(title), "", f".. automodule:: {package.__name__}", "",
                    f".. autoclass:: {module}.{info.cls.__name__}", "   :members: run", ""]
            # what the package exports, documented where it is defined (packages load their modules lazily,
            # which autodoc's own member listing does not see)
            for export in getattr(package, "__all__", ()):
                obj = getattr(package, export)
                if obj is info.cls or not (inspect.isclass(obj) or inspect.isfunction(obj)):
                    continue
                kind = "autoclass" if inspect.isclass(obj) else "autofunction"
                out += [f".. {kind}:: {obj.__module__}.{obj.__qualname__}", ""]
        return out


def setup(app):
    app.add_directive("terapix-tools", ToolsDirective)
    app.add_directive("terapix-hooks", HooksDirective)
    app.add_directive("terapix-xsd", XsdDirective)
    app.add_directive("terapix-api", ApiDirective)
    app.add_directive("terapix-plugin-api", PluginApiDirective)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
