"""The same instruction file on a real Dask distributed scheduler (2 worker processes on loopback) gives
the same products as the local process pool."""
from __future__ import annotations

import textwrap

import numpy as np
import pytest
from astropy.io import fits

from terapix_fw.runner import run_instructions

pytest.importorskip("distributed")

XML = """\
<?xml version="1.0"?>
<instructions name="d" version="1">
  <inputs><inputset id="raw"><files pattern="raw/*.fits"/></inputset></inputs>
  <steps>
    <step id="scale" tool="scale" fanout="extension">
      <config><param name="FACTOR">1.5</param><param name="OUTPUT_NAME">{stem}.{ext}.fits</param></config>
      <input set="raw"/>
    </step>
    <step id="sum" tool="stack" fanout="group" group-by="FILTER">
      <config><param name="OUTPUT_NAME">sum_{group}.fits</param></config>
      <input step="scale" kind="image"/>
    </step>
  </steps>
</instructions>
"""

VOLATILE = {"DATE", "CHECKSUM", "DATASUM"}


def test_dask_matches_local(tmp_path, fits_files, demo_tools):
    path = tmp_path / "run.xml"
    path.write_text(textwrap.dedent(XML))
    local = run_instructions(path, tmp_path / "local", jobs=2, progress=False)
    dask = run_instructions(path, tmp_path / "dask", jobs=2, executor="dask", progress=False)
    assert local["done"] == dask["done"] == 8 and dask["failed"] == 0
    names = sorted(p.relative_to(tmp_path / "local") for p in (tmp_path / "local").glob("*/*.fits"))
    assert names == sorted(p.relative_to(tmp_path / "dask") for p in (tmp_path / "dask").glob("*/*.fits"))
    for name in names:
        with fits.open(tmp_path / "local" / name) as a, fits.open(tmp_path / "dask" / name) as b:
            assert len(a) == len(b)
            for ha, hb in zip(a, b):
                assert np.array_equal(ha.data, hb.data, equal_nan=True)
                diff = {k for k in set(ha.header) | set(hb.header) if ha.header.get(k) != hb.header.get(k)}
                assert diff <= VOLATILE, diff
