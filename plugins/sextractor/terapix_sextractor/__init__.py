"""terapix-fw plugin sextractor."""
__all__: list[str] = []
