"""terapix-fw plugin skywatcher."""
__all__: list[str] = []
