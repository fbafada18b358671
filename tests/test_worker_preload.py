"""The local executor's workers start warm: the modules a tool declares in ``worker_preload`` are
imported once, in the fork server the workers are forked from, not by each worker; a pool made after the
environment changed gives its workers the new environment; the inputs' digests computed ahead by the
runner are the files' own."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

DRIVER = """
import sys
import preload_probe
from terapix_fw import plugins
pm = plugins.get_plugin_manager()
pm.register(preload_probe, name="preload_probe")
plugins._tools.cache_clear()
from terapix_fw.runner import run_instructions
summary = run_instructions(sys.argv[1], workdir=sys.argv[2], jobs=2, progress=False)
assert summary["done"] == 3, summary
"""


def _instructions(tmp_path, fits_files):
    xml = tmp_path / "run.xml"
    xml.write_text(textwrap.dedent(f"""\
        <instructions name="t" version="1">
          <inputs><inputset id="raw"><files pattern="{tmp_path}/raw/*.fits"/></inputset></inputs>
          <steps><step id="probe" tool="probe" fanout="file"><input set="raw"/></step></steps>
        </instructions>
        """))
    return xml


def _probes(workdir):
    return [json.loads(p.read_text()) for p in sorted((workdir / "probe").glob("*.probe.json"))]


def test_preloaded_modules_are_imported_once_outside_the_workers(tmp_path, fits_files):
    xml = _instructions(tmp_path, fits_files)
    log = tmp_path / "imports.log"
    env = dict(os.environ, PROBE_IMPORT_LOG=str(log), PROBE_VALUE="a")
    proc = subprocess.run([sys.executable, "-c", DRIVER, str(xml), str(tmp_path / "work")], env=env,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    probes = _probes(tmp_path / "work")
    assert len(probes) == 3
    importers = [int(line) for line in log.read_text().split()]
    workers = {p["pid"] for p in probes}
    assert len(importers) == 1  # once for the run, however many workers
    assert importers[0] not in workers  # in the server the workers are forked from
    assert all(p["preloaded"] for p in probes)  # every unit found it already imported
    assert {p["value"] for p in probes} == {"a"}
    # loaded with the collector paused, then frozen in the server: on again in every unit
    assert all(p["gc_in_preload"] is False and p["gc_in_unit"] and p["frozen"] > 1000 for p in probes)


def test_a_pool_made_after_the_environment_changed_gives_its_workers_the_new_one(tmp_path, fits_files,
                                                                                monkeypatch):
    import preload_probe

    from terapix_fw import plugins
    from terapix_fw.runner import run_instructions

    pm = plugins.get_plugin_manager()
    pm.register(preload_probe, name="preload_probe")
    plugins._tools.cache_clear()
    try:
        xml = _instructions(tmp_path, fits_files)
        for value in ("first", "second"):
            monkeypatch.setenv("PROBE_VALUE", value)
            summary = run_instructions(xml, workdir=tmp_path / value, jobs=2, progress=False)
            assert summary["done"] == 3
            assert {p["value"] for p in _probes(tmp_path / value)} == {value}
    finally:
        pm.unregister(preload_probe)
        plugins._tools.cache_clear()


def test_prefetched_input_digests_are_the_files_digests_and_follow_a_change(tmp_path):
    import hashlib

    from terapix_fw.runner import _Checksums

    files = []
    for k in range(3):
        path = tmp_path / f"in{k}.fits"
        path.write_bytes(os.urandom(200_000 + k))
        files.append(str(path))
    sums = _Checksums()
    sums.prefetch(files + files[:1])
    try:
        for path in files[:2]:
            assert sums(path) == hashlib.sha256(Path(path).read_bytes()).hexdigest()
        with open(files[2], "ab") as handle:  # changed after it was prefetched: hashed again as it is now
            handle.write(b"more")
        assert sums(files[2]) == hashlib.sha256(Path(files[2]).read_bytes()).hexdigest()
    finally:
        sums.close()
    # the changed file's digest is that of its version now (hashed again if it was hashed ahead before the change)
    from terapix_fw.db.digests import file_stamp
    assert {s.path for s in sums.cache.computed} == {os.path.realpath(f) for f in files}
    assert file_stamp(files[2]) in sums.cache.computed
