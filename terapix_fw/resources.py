"""Where the framework's data files are: the XML schemas and the web templates and static assets.

They live at the top of the source tree (``schemas/``, ``web/templates``, ``web/static``), where
developers edit them. A wheel carries them inside the package (``setup.py`` maps them to
``terapix_fw/schemas`` and ``terapix_fw/web/assets``), so an installed framework finds them without a
source tree. This module is the one place that knows both locations; an environment variable overrides
each (``$TERAPIX_SCHEMAS``, ``$TERAPIX_WEB_DIR``).
"""
from __future__ import annotations

import os
from pathlib import Path

__all__ = ["schemas_dir", "web_dir"]

_PACKAGE = Path(__file__).resolve().parent
_SOURCE_TREE = _PACKAGE.parent


def _first_dir(candidates: list[Path], what: str) -> Path:
    for path in candidates:
        if path.is_dir():
            return path
    raise FileNotFoundError(f"{what} not found (looked in {', '.join(str(c) for c in candidates)}); "
                            "reinstall terapix-fw")


def schemas_dir() -> Path:
    """The folder of the XSD schemas."""
    env = os.environ.get("TERAPIX_SCHEMAS")
    return _first_dir(([Path(env)] if env else []) + [_PACKAGE / "schemas", _SOURCE_TREE / "schemas"],
                      "the XML schemas")


def web_dir() -> Path:
    """The folder holding ``templates/`` and ``static/`` of the web pages."""
    env = os.environ.get("TERAPIX_WEB_DIR")
    return _first_dir(([Path(env)] if env else []) + [_PACKAGE / "web" / "assets", _SOURCE_TREE / "web"],
                      "the web templates")
