"""Stands for a tool's heavy libraries in the worker-preload tests: each import appends the importing
process's pid to the file named by PROBE_IMPORT_LOG."""
import os

if os.environ.get("PROBE_IMPORT_LOG"):
    with open(os.environ["PROBE_IMPORT_LOG"], "a") as handle:
        handle.write(f"{os.getpid()}\n")
