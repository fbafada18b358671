"""terapix-fw plugin psfex: pixel-basis PSF models varying with position, written in PSFEx's .psf format."""
__all__: list[str] = []
