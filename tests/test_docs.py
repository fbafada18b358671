"""The documentation builds with warnings as errors, its doctests pass, and the generated reference
covers every installed tool's parameters, every hook and every schema's elements (so it cannot drift)."""
from __future__ import annotations

import inspect
import subprocess
import sys
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[1] / "docs"


@pytest.fixture(scope="module")
def html(tmp_path_factory):
    pytest.importorskip("sphinx")
    out = tmp_path_factory.mktemp("docs")
    # one doctree directory for both builders (as `make html doctest`): the doctest build reuses the
    # environment the html build read (every page, every autodoc import) and still runs every doctest
    for builder in ("html", "doctest"):
        done = subprocess.run([sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", builder,
                               "-d", str(out / "doctrees"), str(DOCS), str(out / builder)],
                              capture_output=True, text=True)
        assert done.returncode == 0, f"sphinx -b {builder} failed:\n{done.stdout}\n{done.stderr}"
    return out / "html"


def test_reference_lists_every_tool_parameter(html):
    from terapix_fw.plugins import get_tools
    page = (html / "reference" / "tools.html").read_text()
    missing = [f"{name}.{p.name}" for name, info in get_tools().items()
               for p in info.cls.parameter_set() if p.name not in page]
    assert not missing, f"parameters absent from the reference: {missing[:10]}"


def test_reference_gives_every_parameters_astromatic_equivalent(html):
    import html as html_lib
    import re

    from terapix_fw.plugins import get_tools
    page = html_lib.unescape(re.sub(r"<[^>]+>", " ", (html / "reference" / "tools.html").read_text()))
    text = " ".join(page.replace("\u2019", "'").split())  # Sphinx's smart quotes back to the declaration's
    assert "AstrOmatic" in text and "not declared" not in text
    equivalents = {p.equivalent for info in get_tools().values() for p in info.cls.parameter_set()}
    shown = [e for e in equivalents if (e.note if e.program is None else f"{e.program} {e.keyword}") in text]
    assert len(shown) == len(equivalents), sorted(map(str, set(equivalents) - set(shown)))[:10]


def test_reference_lists_every_hook(html):
    from terapix_fw import hookspecs
    page = (html / "reference" / "hooks.html").read_text()
    hooks = [n for n, f in inspect.getmembers(hookspecs, inspect.isfunction) if hasattr(f, "terapix_fw_spec")]
    assert hooks and all(name in page for name in hooks)


def test_reference_lists_every_schema_element(html):
    from lxml import etree

    from terapix_fw.xmlutil import schema_path
    page = (html / "reference" / "instructions.html").read_text()
    for xsd in ("instructions.xsd", "survey.xsd", "dbclient.xsd"):
        names = {e.get("name") for e in etree.parse(str(schema_path(xsd))).iter("{*}element") if e.get("name")}
        assert names and all(f"&lt;{name}&gt;" in page for name in names), xsd


def test_plugin_guide_shows_the_tested_example(html):
    page = (html / "plugins.html").read_text()
    assert "register_tools" in page and "OFFSET" in page


def test_api_reference_renders_every_public_module(html):
    """The API page is generated from the package: every public module is there with its numpydoc sections."""
    import sys

    sys.path.insert(0, str(DOCS / "_ext"))
    try:
        from terapix_reference import public_modules
    finally:
        sys.path.remove(str(DOCS / "_ext"))
    page = (html / "reference" / "api.html").read_text()
    modules = public_modules()
    assert "terapix_fw.params" in modules and "terapix_fw.db.recorder" in modules
    assert all(f'id="module-{name}"' in page for name in modules), [m for m in modules if f'id="module-{m}"' not in page]
    assert page.count("Parameters") > 300  # napoleon turned the numpydoc sections into field lists


def test_plugin_api_reference_renders_each_tool_and_its_exports(html):
    import importlib

    from terapix_fw.plugins import get_tools
    page = (html / "reference" / "plugins_api.html").read_text()
    for name, info in get_tools().items():
        if info.cls.__module__.startswith("terapix_fw."):
            continue
        assert f'id="{info.cls.__module__}.{info.cls.__name__}"' in page, name
        package = importlib.import_module(info.cls.__module__.split(".")[0])
        for export in getattr(package, "__all__", ()):
            obj = getattr(package, export)
            if callable(obj) and hasattr(obj, "__qualname__"):
                assert f'id="{obj.__module__}.{obj.__qualname__}"' in page, f"{package.__name__}.{export}"
