"""Numpydoc checks of a package's public API, by walking its source (nothing is imported).

Public means a module whose path has no part with a leading underscore, and a function, class or
method whose name has none.  Each needs a docstring; a function or method that takes parameters needs a
numpydoc ``Parameters`` section naming exactly its parameters (nothing missing, nothing the signature
does not have).  A method that overrides a documented method of a base class of the same module inherits
its docstring (as :func:`inspect.getdoc` and Sphinx do), and a pluggy ``@hookimpl`` needs a docstring but
no Parameters section: its hook specification documents the arguments.  Used by terapix-fw's own tests; a plugin can
run it on its package.
"""
from __future__ import annotations

import ast
import re
from pathlib import Path

__all__ = ["public_modules", "documented_parameters", "problems"]

_SECTION = re.compile(r"^(?P<indent>[ \t]*)Parameters\n(?P=indent)-{3,}\n", re.M)
_ENTRY = re.compile(r"(\*{0,2}[A-Za-z_]\w*(?:\s*,\s*\*{0,2}[A-Za-z_]\w*)*)\s*(?::|$)")


def public_modules(package: Path, exclude: tuple[str, ...] = ()) -> list[Path]:
    """The package's public source files.

    Parameters
    ----------
    package : Path
        The package directory.
    exclude : tuple of str
        Relative path prefixes (``db/migrations/versions/``) left out.

    Returns
    -------
    list of Path
        Files with no path part starting with an underscore (``__init__.py`` is public).
    """
    out = []
    for path in sorted(package.rglob("*.py")):
        rel = path.relative_to(package).as_posix()
        if any(part.startswith("_") and part != "__init__.py" for part in rel.split("/")):
            continue
        if not rel.startswith(exclude):
            out.append(path)
    return out


def documented_parameters(doc: str) -> set[str] | None:
    """Names listed in a numpydoc ``Parameters`` section.

    Parameters
    ----------
    doc : str
        A docstring (as :func:`inspect.getdoc` or :func:`ast.get_docstring` return it).

    Returns
    -------
    set of str or None
        The names (``x, y : float`` gives both, ``**kwargs`` gives ``kwargs``); ``None`` without a section.
    """
    match = _SECTION.search(doc)
    if match is None:
        return None
    indent = match["indent"]
    names: list[str] = []
    for line in doc[match.end():].splitlines():
        if not line.strip() or not line.startswith(indent) or line[len(indent)].isspace():
            continue  # a blank or description line
        if re.match(r"-{3,}$", line.strip()):
            names.pop()  # the line before was the next section's title
            break
        entry = _ENTRY.match(line[len(indent):])
        if entry is None:
            break
        names.append(entry.group(1))
    return {name.strip().lstrip("*") for entry in names for name in entry.split(",")}


def _arguments(node: ast.FunctionDef | ast.AsyncFunctionDef) -> list[str]:
    args = node.args
    names = [a.arg for a in args.posonlyargs + args.args + args.kwonlyargs]
    names += [a.arg for a in (args.vararg, args.kwarg) if a is not None]
    return [n for n in names if n not in ("self", "cls")]


def _is_hookimpl(node) -> bool:
    def name(d):
        d = d.func if isinstance(d, ast.Call) else d
        return d.id if isinstance(d, ast.Name) else getattr(d, "attr", "")
    return any(name(d) == "hookimpl" for d in node.decorator_list)


def _is_property(node) -> bool:
    return any((isinstance(d, ast.Name) and d.id in ("property", "cached_property"))
               or (isinstance(d, ast.Attribute) and d.attr in ("setter", "deleter", "cached_property"))
               for d in node.decorator_list)


def problems(path: Path, root: Path) -> list[str]:
    """What is missing from the docstrings of one module's public API.

    Parameters
    ----------
    path : Path
        The module's source file.
    root : Path
        Directory the reported paths are relative to.

    Returns
    -------
    list of str
        One line per problem: ``file:line name: what``.
    """
    rel = path.relative_to(root).as_posix()
    found: list[str] = []
    tree = ast.parse(path.read_text(), str(path))
    classes = {node.name: node for node in ast.walk(tree) if isinstance(node, ast.ClassDef)}

    def inherited(cls: ast.ClassDef | None, name: str) -> bool:
        for base in cls.bases if cls is not None else ():
            parent = classes.get(base.id) if isinstance(base, ast.Name) else None
            if parent is None:
                continue
            own = [n for n in parent.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.name == name]
            if (own and ast.get_docstring(own[0])) or inherited(parent, name):
                return True
        return False

    def check(body, prefix: str, cls: ast.ClassDef | None = None) -> None:
        for node in body:
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                continue
            if node.name.startswith("_"):
                continue
            where = f"{rel}:{node.lineno} {prefix}{node.name}"
            doc = ast.get_docstring(node)
            if not doc and not (isinstance(node, ast.FunctionDef) and inherited(cls, node.name)):
                found.append(f"{where}: no docstring")
            if isinstance(node, ast.ClassDef):
                check(node.body, f"{prefix}{node.name}.", node)
                continue
            args = [] if _is_property(node) or _is_hookimpl(node) else _arguments(node)
            if not doc or not args:
                continue
            listed = documented_parameters(doc)
            if listed is None:
                found.append(f"{where}: no Parameters section for {', '.join(args)}")
                continue
            if set(args) - listed:
                found.append(f"{where}: Parameters lacks {', '.join(a for a in args if a not in listed)}")
            if listed - set(args):
                found.append(f"{where}: Parameters names {', '.join(sorted(listed - set(args)))}, not arguments")

    check(tree.body, "")
    return found
