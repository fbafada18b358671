"""terapix-fw plugin weightwatcher: weight and flag maps (WeightWatcher semantics plus detected defects).

The public interface other tools use (qualityfits makes its weight and flag maps with it) is
re-exported here, imported only when first used so that loading the plugin stays cheap.
"""
import importlib

#: public name -> module of this package that defines it
_PUBLIC = {
    "WatchConfig": "maps", "MapWriter": "maps", "watch_stream": "maps", "watch_extension": "maps",
    "WeightWatcherTool": "tool",
}
__all__ = sorted(_PUBLIC)


def __getattr__(name: str):
    if name in _PUBLIC:
        return getattr(importlib.import_module(f".{_PUBLIC[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
