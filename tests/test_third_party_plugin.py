"""A third party's plugin, installed from a temporary folder as its own distribution, shows up in
``terapix plugins`` and runs from an instruction file, through the same entry points as built-ins."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
from astropy.io import fits

PYPROJECT = """\
[build-system]
requires = ["setuptools>=68"]
build-backend = "setuptools.build_meta"

[project]
name = "acme-terapix-invert"
version = "2.5.0"
dependencies = []

[project.entry-points."terapix_fw.plugins"]
acme_invert = "acme_invert.plugin"

[tool.setuptools]
packages = ["acme_invert"]
"""

PLUGIN = '''\
from terapix_fw.hookspecs import hookimpl
from terapix_fw.params import Parameter
from terapix_fw.tool import Tool


class Invert(Tool):
    name = "invert"
    version = "2.5.0"
    produces = ("image",)
    parameters = [Parameter("OFFSET", "float", 0.0, "added after negation"),
                  Parameter("OUTPUT_NAME", "str", "{stem}_inv.fits", "output name")]

    def run(self, ctx):
        from astropy.io import fits
        for path in ctx.inputs:
            data = fits.getdata(path)
            with ctx.product(ctx.config["OUTPUT_NAME"], kind="image") as tmp:
                fits.PrimaryHDU(-data + ctx.config["OFFSET"]).writeto(tmp)


@hookimpl
def register_tools(register):
    register(Invert)
'''

XML = """\
<?xml version="1.0"?>
<instructions name="acme" version="1">
  <inputs><inputset id="raw"><files pattern="raw/*.fits"/></inputset></inputs>
  <steps>
    <step id="inv" tool="invert">
      <config><param name="OFFSET">10</param></config>
      <input set="raw"/>
    </step>
  </steps>
</instructions>
"""


def test_install_and_run_third_party_plugin(tmp_path):
    src = tmp_path / "src"
    (src / "acme_invert").mkdir(parents=True)
    (src / "pyproject.toml").write_text(PYPROJECT)
    (src / "acme_invert" / "__init__.py").write_text("")
    (src / "acme_invert" / "plugin.py").write_text(PLUGIN)
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                    "--target", str(site), f"{src}/"], check=True)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]),
               TERAPIX_HOME=str(tmp_path / "home"))
    terapix = [sys.executable, "-m", "terapix_fw.cli"]
    listing = subprocess.run(terapix + ["plugins"], env=env, capture_output=True, text=True, check=True).stdout
    line = next(l for l in listing.splitlines() if l.startswith("invert"))
    assert "2.5.0" in line and "acme-terapix-invert 2.5.0" in line

    config = subprocess.run(terapix + ["config", "invert"], env=env, capture_output=True, text=True,
                            check=True).stdout
    assert "OFFSET" in config and "# added after negation" in config

    (tmp_path / "raw").mkdir()
    fits.PrimaryHDU(np.arange(4.0).reshape(2, 2)).writeto(tmp_path / "raw" / "a.fits")
    (tmp_path / "run.xml").write_text(textwrap.dedent(XML))
    done = subprocess.run(terapix + ["run", str(tmp_path / "run.xml"), "--workdir", str(tmp_path / "work")],
                          env=env, capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    out = fits.getdata(tmp_path / "work" / "inv" / "a_inv.fits")
    assert np.array_equal(out, 10 - np.arange(4.0).reshape(2, 2))
