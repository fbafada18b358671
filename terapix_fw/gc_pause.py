"""Imported first by the fork server of the runner's local pool (:class:`terapix_fw.executors.LocalExecutor`):
pauses Python's cyclic garbage collector while the workers' modules load.  :mod:`terapix_fw.gc_freeze`,
imported last, freezes what they made and resumes the collector.  multiprocessing's fork server takes only
module names to import, so these two modules are its hooks (as :func:`terapix_fw.tool.import_preload` does
for the tool server and a drop-in run)."""
import gc

gc.disable()
