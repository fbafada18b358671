"""terapix-fw plugin qualityfits: QualityFITS-in (exposures) and QualityFITS-out (stacks).

Modules: :mod:`.assess` (the per-exposure chain), :mod:`.stack` (QualityFITS-out, completeness),
:mod:`.metrics` (metric definitions: the names stored in RDBix ``quality`` records and the XML summary),
:mod:`.focal` (WCS placement of CCDs against the focal plane), :mod:`.grading` (rules file
``data/grading.rules``), :mod:`.plots` / :mod:`.figures` (PNG plots named as in the seeds), :mod:`.report`
(XML summary).  Weight/flag maps come from the weightwatcher plugin, the catalogue from the sextractor
plugin, the PSF models from the psfex plugin.
"""
__all__: list[str] = []
