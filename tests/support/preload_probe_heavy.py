"""Stands for a tool's heavy libraries in the worker-preload tests: each import appends the importing
process's pid to the file named by PROBE_IMPORT_LOG; COLLECTING says whether the garbage collector ran
while it was imported."""
import gc
import os

COLLECTING = gc.isenabled()

if os.environ.get("PROBE_IMPORT_LOG"):
    with open(os.environ["PROBE_IMPORT_LOG"], "a") as handle:
        handle.write(f"{os.getpid()}\n")
