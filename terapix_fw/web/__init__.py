"""Static web reports built from RDBix (``terapix web build``): see :mod:`terapix_fw.web.site`."""
from __future__ import annotations

__all__ = ["build_site", "collect_pages", "Page", "WebError"]


def __getattr__(name):
    if name in __all__:
        from . import site
        return getattr(site, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
