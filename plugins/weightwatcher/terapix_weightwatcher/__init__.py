"""terapix-fw plugin weightwatcher: weight and flag maps (WeightWatcher semantics plus detected defects)."""
__all__: list[str] = []
