"""The public API of terapix_fw has numpydoc docstrings that match the code.

Public means a module whose dotted path has no part with a leading underscore, and a function, class or
method whose name has none.  Each needs a docstring; a function or method that takes parameters needs a
numpydoc ``Parameters`` section naming exactly its parameters (nothing missing, nothing that the
signature does not have), so the documentation cannot drift from the signature.  Read by walking the
source (AST, :mod:`terapix_testing.docstrings`), so nothing is imported.  Alembic revision scripts
(``db/migrations/versions``) are run by Alembic, not called, and are left out.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from terapix_testing.docstrings import documented_parameters, problems, public_modules

PACKAGE = Path(__file__).resolve().parents[1] / "terapix_fw"
MODULES = public_modules(PACKAGE, exclude=("db/migrations/versions/",))


def test_the_walk_sees_the_public_api():
    names = {p.relative_to(PACKAGE).as_posix() for p in MODULES}
    assert {"params.py", "tool.py", "runner.py", "db/recorder.py", "web/site.py"} <= names
    assert not any(n.startswith("db/migrations/versions/") or "/_" in f"/{n}".replace("/__init__.py", "")
                   for n in names)


def test_parameters_sections_are_read_as_numpydoc_writes_them():
    doc = "Sum.\n\nParameters\n----------\nx, y : float\n    Terms.\n*args\n    More.\n\nReturns\n-------\nfloat\n"
    assert documented_parameters(doc) == {"x", "y", "args"}
    assert documented_parameters("Sum of x and y.") is None


def test_a_missing_or_stale_parameter_is_reported(tmp_path):
    module = tmp_path / "m.py"
    module.write_text('def f(a, b):\n    """F.\n\n    Parameters\n    ----------\n    a : int\n    c : int\n    """\n'
                      "class K:\n    def g(self, x):\n        pass\n")
    found = "\n".join(problems(module, tmp_path))
    assert "f: Parameters lacks b" in found and "f: Parameters names c" in found
    assert "K: no docstring" in found and "K.g: no docstring" in found
    module.write_text('class A:\n    """A."""\n    def g(self):\n        """G."""\n'
                      'class B(A):\n    """B."""\n    def g(self):\n        pass\n    def h(self):\n        pass\n')
    assert problems(module, tmp_path) == ["m.py:9 B.h: no docstring"]  # B.g inherits A.g's


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.relative_to(PACKAGE).as_posix())
def test_public_api_has_numpydoc_docstrings(path):
    found = problems(path, PACKAGE.parent)
    assert not found, "\n".join(found)


def _entry_points():
    """Each installed plugin's tool class, its ``run``, and the functions and classes its package exports."""
    import importlib
    import inspect

    from terapix_fw.plugins import get_tools
    out = []
    for name, info in sorted(get_tools().items()):
        if info.cls.__module__.startswith("terapix_fw."):
            continue  # the core's tools are walked above
        out += [(f"tool {name}", info.cls), (f"tool {name}.run", info.cls.__dict__.get("run"))]
        package = importlib.import_module(info.cls.__module__.split(".")[0])
        out += [(f"{package.__name__}.{n}", getattr(package, n)) for n in getattr(package, "__all__", ())
                if inspect.isfunction(getattr(package, n)) or inspect.isclass(getattr(package, n))]
    return out


def test_plugin_entry_points_have_numpydoc_docstrings():
    import inspect

    entries = _entry_points()
    assert any(label == "tool sextractor" for label, _ in entries)
    found = []
    for label, obj in entries:
        doc = (obj.__doc__ or "") if obj is not None else ""
        if not doc.strip():
            found.append(f"{label}: no docstring of its own")
            continue
        if inspect.isfunction(obj):
            args = [a for a in inspect.signature(obj).parameters if a not in ("self", "cls")]
            listed = documented_parameters(inspect.cleandoc(doc))
            if args and (listed is None or set(args) != listed):
                found.append(f"{label}: Parameters {sorted(listed or ())} for arguments {args}")
    assert not found, "\n".join(found)
