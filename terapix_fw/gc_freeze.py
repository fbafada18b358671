"""Imported last by the fork server of the runner's local pool, after :mod:`terapix_fw.gc_pause` and the
workers' modules: moves every object made so far to the collector's permanent generation (``gc.freeze``)
and resumes the collector, which the workers forked from the server inherit on.  Frozen, the libraries'
few hundred thousand objects are not walked by every collection of every worker, nor are their pages
copied into each worker when it collects."""
import gc

gc.freeze()
gc.enable()
