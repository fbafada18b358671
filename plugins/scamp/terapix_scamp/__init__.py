"""terapix-fw plugin scamp."""
__all__: list[str] = []
