"""terapix-fw plugin qualityfits."""
__all__: list[str] = []
