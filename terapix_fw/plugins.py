"""The plugin manager: loads every distribution registered in the ``terapix_fw.plugins`` entry-point
group (built-in plugins included) and collects their tools."""
from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from importlib import metadata

import pluggy

from . import hookspecs
from .errors import UnknownTool

__all__ = ["ENTRY_POINT_GROUP", "get_plugin_manager", "get_tools", "get_tool", "ToolInfo", "reset",
           "plugin_errors"]

log = logging.getLogger("terapix.plugins")
#: plugins that could not be loaded: "distribution (entry point)" -> error text
_errors: dict[str, str] = {}
#: plugin name -> "distribution version"
_dists: dict[str, str] = {}

ENTRY_POINT_GROUP = "terapix_fw.plugins"


@dataclass(frozen=True)
class ToolInfo:
    """An installed tool: its class and the distribution that provides it.

    Attributes
    ----------
    name : str
        The tool's name (``terapix tool NAME``).
    cls : type
        The :class:`~terapix_fw.tool.Tool` subclass.
    version : str
        The tool's version.
    distribution : str
        The Python distribution that registered it (``terapix-sextractor``).
    """
    name: str
    cls: type
    version: str
    distribution: str


@functools.lru_cache(maxsize=1)
def get_plugin_manager() -> pluggy.PluginManager:
    """The pluggy plugin manager with every installed plugin's entry point loaded (built once).

    A plugin whose entry point fails to load is left out and its error kept for ``terapix plugins``;
    the others still load.

    Returns
    -------
    pluggy.PluginManager
    """
    pm = pluggy.PluginManager("terapix_fw")
    pm.add_hookspecs(hookspecs)
    _errors.clear()
    # load entry points one by one so that one broken plugin does not take the others down
    for dist in metadata.distributions():
        for ep in dist.entry_points:
            if ep.group != ENTRY_POINT_GROUP or pm.get_plugin(ep.name) or pm.is_blocked(ep.name):
                continue
            try:
                plugin = ep.load()
                pm.register(plugin, name=ep.name)
                _dists[ep.name] = f"{dist.metadata['name']} {dist.version}"
            except Exception as exc:  # noqa: BLE001 - report and go on
                label = f"{dist.metadata['name']} ({ep.name} = {ep.value})"
                _errors[label] = f"{type(exc).__name__}: {exc}"
                log.warning("plugin %s could not be loaded: %s", label, _errors[label])
    return pm


def reset() -> None:
    """Forget loaded plugins (tests that install or register plugins call this)."""
    get_plugin_manager.cache_clear()
    _tools.cache_clear()


def _distribution_of(pm: pluggy.PluginManager, plugin) -> str:
    name = pm.get_name(plugin)
    return _dists.get(name) or f"{getattr(plugin, '__name__', name)} (registered at run time)"


def call_each(hook_name: str, **kwargs) -> None:
    """Call one hook on every plugin separately, so that a broken plugin is reported, not fatal.

    Used for hooks that run at start-up, such as ``register_commands``.

    Parameters
    ----------
    hook_name : str
        Name of the hook.
    **kwargs : Any
        The hook's arguments.
    """
    pm = get_plugin_manager()
    for impl in getattr(pm.hook, hook_name).get_hookimpls():
        try:
            impl.function(**kwargs)
        except Exception as exc:  # noqa: BLE001
            label = _distribution_of(pm, impl.plugin)
            _errors[label] = f"{type(exc).__name__}: {exc}"
            log.warning("plugin %s failed in %s: %s", label, hook_name, _errors[label])


def _tools_of(pm: pluggy.PluginManager, plugin) -> list[type] | None:
    """The tool classes one plugin registers (validated), or None when its ``register_tools`` failed
    (the error is kept for ``terapix plugins``)."""
    impl = getattr(plugin, "register_tools", None)
    if impl is None:
        return []
    classes: list[type] = []
    try:
        impl(classes.append)
    except Exception as exc:  # noqa: BLE001 - a broken plugin is reported, not fatal
        label = _distribution_of(pm, plugin)
        _errors[label] = f"{type(exc).__name__}: {exc}"
        log.warning("plugin %s could not register its tools: %s", label, _errors[label])
        return None
    for cls in classes:
        if not cls.name:
            raise TypeError(f"tool class {cls.__qualname__} has no name")
        cls.parameter_set()  # validates the declarations at load time
    return classes


@functools.lru_cache(maxsize=1)
def _tools() -> dict[str, ToolInfo]:
    pm = get_plugin_manager()
    found: dict[str, ToolInfo] = {}
    for plugin in pm.get_plugins():
        for cls in _tools_of(pm, plugin) or ():
            if cls.name in found:
                raise TypeError(f"tool {cls.name} is provided twice: by {found[cls.name].distribution} "
                                f"and by {_distribution_of(pm, plugin)}")
            found[cls.name] = ToolInfo(cls.name, cls, cls.version, _distribution_of(pm, plugin))
    return found


def _named_tool(name: str) -> ToolInfo | None:
    """Tool ``name`` from the plugin registered under the same name, asked alone (the built-in plugins'
    convention: entry point ``sextractor`` registers tool ``sextractor``), or None.

    ``terapix tool NAME`` then imports one tool module and its keyword table, not every plugin's.  The
    plugins themselves are all loaded all the same: their lifecycle hooks (RDBix, a third party's) see a
    drop-in run as they see a pipeline step.  A tool another plugin also provides is reported by
    ``terapix plugins`` (the full table).  Not cached: asking one plugin again costs next to nothing, and
    what tests register and unregister is always seen."""
    pm = get_plugin_manager()
    plugin = pm.get_plugin(name)
    if plugin is None:
        return None
    for cls in _tools_of(pm, plugin) or ():
        if cls.name == name:
            return ToolInfo(cls.name, cls, cls.version, _distribution_of(pm, plugin))
    return None


def plugin_errors() -> dict[str, str]:
    """Plugins that failed to load or register, with the error (shown by ``terapix plugins``)."""
    _tools()
    return dict(_errors)


def get_tools() -> dict[str, ToolInfo]:
    """Every installed tool.

    Returns
    -------
    dict of str to ToolInfo
        Tool name -> its class, version and distribution.
    """
    return dict(_tools())


def get_tool(name: str, where: str | None = None) -> ToolInfo:
    """One installed tool by name.

    Parameters
    ----------
    name : str
        The tool's name.
    where : str or None
        Where the name was read (``file:line``), for the error message.

    Returns
    -------
    ToolInfo

    Raises
    ------
    UnknownTool
        If no installed tool has that name (with a "did you mean" and the installed tools).
    """
    if _tools.cache_info().currsize == 0:  # the full table is not built yet: try the tool's own plugin
        info = _named_tool(name)
        if info is not None:
            return info
    tools = _tools()
    if name not in tools:
        import difflib
        close = difflib.get_close_matches(name, list(tools), n=1)
        hint = f"; did you mean {close[0]}?" if close else ""
        known = ", ".join(sorted(tools)) or "none"
        raise UnknownTool(f"unknown tool {name}{hint} (installed tools: {known})", where, name)
    return tools[name]
