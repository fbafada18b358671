"""Test data for terapix-fw that the framework's own code does not make.

Kept out of the installed framework (``terapix_fw``) on purpose: tests and benchmarks import it, the
tools never do, so no tool can be tuned to it by accident.  Modules, one per kind of data:

* ``galsim_survey``: MegaCam-like raw exposures rendered with GalSim, with truth kept apart;
* ``fuzz``: a seeded corpus of damaged and unusual FITS files.
"""
