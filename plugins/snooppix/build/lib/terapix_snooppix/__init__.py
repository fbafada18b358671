"""terapix-fw plugin snooppix."""
__all__: list[str] = []
