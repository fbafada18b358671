"""The plugin manager: loads every distribution registered in the ``terapix_fw.plugins`` entry-point
group (built-in plugins included) and collects their tools."""
from __future__ import annotations

import functools
from dataclasses import dataclass
from importlib import metadata

import pluggy

from . import hookspecs
from .errors import UnknownTool

__all__ = ["ENTRY_POINT_GROUP", "get_plugin_manager", "get_tools", "get_tool", "ToolInfo", "reset"]

ENTRY_POINT_GROUP = "terapix_fw.plugins"


@dataclass(frozen=True)
class ToolInfo:
    name: str
    cls: type
    version: str
    distribution: str


@functools.lru_cache(maxsize=1)
def get_plugin_manager() -> pluggy.PluginManager:
    pm = pluggy.PluginManager("terapix_fw")
    pm.add_hookspecs(hookspecs)
    pm.load_setuptools_entrypoints(ENTRY_POINT_GROUP)
    return pm


def reset() -> None:
    """Forget loaded plugins (tests that install or register plugins call this)."""
    get_plugin_manager.cache_clear()
    _tools.cache_clear()


def _distribution_of(pm: pluggy.PluginManager, plugin) -> str:
    for plug, dist in pm.list_plugin_distinfo():
        if plug is plugin:
            return f"{dist.project_name} {dist.version}"
    return getattr(plugin, "__name__", "registered at run time")


@functools.lru_cache(maxsize=1)
def _tools() -> dict[str, ToolInfo]:
    pm = get_plugin_manager()
    found: dict[str, ToolInfo] = {}
    for plugin in pm.get_plugins():
        impl = getattr(plugin, "register_tools", None)
        if impl is None:
            continue
        classes: list[type] = []
        impl(classes.append)
        for cls in classes:
            if not cls.name:
                raise TypeError(f"tool class {cls.__qualname__} has no name")
            if cls.name in found:
                raise TypeError(f"tool {cls.name} is provided twice: by {found[cls.name].distribution} "
                                f"and by {_distribution_of(pm, plugin)}")
            cls.parameter_set()  # validates the declarations at load time
            found[cls.name] = ToolInfo(cls.name, cls, cls.version, _distribution_of(pm, plugin))
    return found


def get_tools() -> dict[str, ToolInfo]:
    return dict(_tools())


def get_tool(name: str, where: str | None = None) -> ToolInfo:
    tools = _tools()
    if name not in tools:
        import difflib
        close = difflib.get_close_matches(name, list(tools), n=1)
        hint = f"; did you mean {close[0]}?" if close else ""
        known = ", ".join(sorted(tools)) or "none"
        raise UnknownTool(f"unknown tool {name}{hint} (installed tools: {known})", where, name)
    return tools[name]
