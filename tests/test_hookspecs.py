"""Every hook is documented and exercised by at least one test (the datasette rule)."""
from __future__ import annotations

import inspect
from pathlib import Path

from terapix_fw import hookspecs

HOOKS = [name for name, fn in vars(hookspecs).items()
         if inspect.isfunction(fn) and hasattr(fn, "terapix_fw_spec")]
ROOT = Path(__file__).resolve().parents[1]


def test_hooks_are_documented():
    """A one-line summary, then a numpydoc Parameters section naming exactly the hook's arguments."""
    from terapix_testing.docstrings import documented_parameters

    assert "register_tools" in HOOKS and "web_pages" in HOOKS
    for name in HOOKS:
        hook = getattr(hookspecs, name)
        doc = inspect.getdoc(hook) or ""
        assert doc and "\n" not in doc.split("\n\n")[0].strip(), f"hook {name} needs a one-line summary"
        assert documented_parameters(doc) == set(inspect.signature(hook).parameters), name


def test_hooks_are_tested():
    texts = [p.read_text(errors="replace") for p in
             list((ROOT / "tests").glob("test_*.py")) + list((ROOT / "plugins").glob("*/tests/test_*.py"))
             if p.name != "test_hookspecs.py"]
    untested = [name for name in HOOKS if not any(name in text for text in texts)]
    assert not untested, f"hooks with no test: {untested}"
