"""Spica: the release planner of terapix-fw (CFHTLS report, section 3.2).

An operator writes selection criteria and a release file; Spica selects the exposures, plans the stacks
(Deep fields, Wide targets and 1 deg x 1 deg quanta), builds each stack's astrometric and stack lists,
generates one instruction file and one command file per stack before anything runs, runs them by
priority in image-by-image and release modes, names and dates the products, records the control team's
grades and writes the release manifest from which any stack can be made again.

One module per concern: :mod:`.criteria`, :mod:`.selection`, :mod:`.release` (release files and names),
:mod:`.tiling`, :mod:`.planning`, :mod:`.generation`, :mod:`.jobs` (running them), :mod:`.grading`,
:mod:`.manifest`, :mod:`.reproduce`, :mod:`.status`.
"""
