"""terapix-fw plugin swarp."""
__all__: list[str] = []
