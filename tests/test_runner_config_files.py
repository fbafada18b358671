"""Files a step's configuration names (a weight map given by name, a parameter list) are inputs of its
units: a change of one re-runs them, and the history records the digest of the one that was used."""
from __future__ import annotations

import hashlib
import os

import numpy as np
from astropy.io import fits
from lxml import etree

from terapix_fw.runner import run_instructions


def _instructions(tmp_path, image, weight):
    path = tmp_path / "run.xml"
    path.write_text(f"""<?xml version="1.0"?>
<instructions name="weights" version="1">
  <inputs><inputset id="raw"><files pattern="{image}"/></inputset></inputs>
  <steps>
    <step id="sex" tool="sextractor" fanout="file">
      <config>
        <param name="CATALOG_NAME">{{stem}}.cat</param>
        <param name="CATALOG_TYPE">ASCII_HEAD</param>
        <param name="WEIGHT_TYPE">MAP_WEIGHT</param>
        <param name="WEIGHT_IMAGE">{weight}[1]</param>
      </config>
      <input set="raw"/>
    </step>
  </steps>
</instructions>
""")
    return path


def _recorded_inputs(summary) -> dict[str, str]:
    root = etree.parse(summary["history"]).getroot()
    (unit,) = root.findall("step/unit")
    return {i.get("path"): i.get("sha256") for i in unit.findall("input")}


def test_a_changed_weight_map_named_in_the_configuration_reruns_the_unit(tmp_path, small_image):
    weight = tmp_path / "cutout.weight.fits"
    fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(np.ones((96, 64), np.float32))]).writeto(weight)
    xml = _instructions(tmp_path, small_image, weight)
    work = tmp_path / "work"

    first = run_instructions(xml, work, jobs=1, progress=False)
    assert first["done"] == 1 and first["failed"] == 0
    inputs = _recorded_inputs(first)
    # the weight map is recorded as an input, without its extension selector, with its digest
    assert inputs[str(weight.resolve())] == hashlib.sha256(weight.read_bytes()).hexdigest()

    assert run_instructions(xml, work, jobs=1, progress=False)["skipped"] == 1

    # the same size and modification time, other weights: the unit runs again
    stamp = weight.stat()
    with fits.open(weight, mode="update") as hdul:
        hdul[1].data[:, :32] = 0.0
    os.utime(weight, ns=(stamp.st_atime_ns, stamp.st_mtime_ns))
    again = run_instructions(xml, work, jobs=1, progress=False)
    assert again["done"] == 1 and again["skipped"] == 0
    assert _recorded_inputs(again)[str(weight.resolve())] == hashlib.sha256(weight.read_bytes()).hexdigest()
