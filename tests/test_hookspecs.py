"""Every hook is documented and exercised by at least one test (the datasette rule)."""
from __future__ import annotations

import inspect
from pathlib import Path

from terapix_fw import hookspecs

HOOKS = [name for name, fn in vars(hookspecs).items()
         if inspect.isfunction(fn) and hasattr(fn, "terapix_fw_spec")]
ROOT = Path(__file__).resolve().parents[1]


def test_hooks_are_documented():
    assert "register_tools" in HOOKS and "web_pages" in HOOKS
    for name in HOOKS:
        doc = inspect.getdoc(getattr(hookspecs, name)) or ""
        assert doc and "\n" not in doc.strip(), f"hook {name} needs a one-line docstring"


def test_hooks_are_tested():
    texts = [p.read_text(errors="replace") for p in
             list((ROOT / "tests").glob("test_*.py")) + list((ROOT / "plugins").glob("*/tests/test_*.py"))
             if p.name != "test_hookspecs.py"]
    untested = [name for name in HOOKS if not any(name in text for text in texts)]
    assert not untested, f"hooks with no test: {untested}"
