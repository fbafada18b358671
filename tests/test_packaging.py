"""A non-editable install works: the wheels of the core and of every built-in plugin, installed into a
fresh virtual environment, validate an instruction file, run it and build the web pages with no source
tree in sight (schemas, templates and migrations travel inside the packages)."""
from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

ROOT = Path(__file__).resolve().parents[1]

RUN_XML = """\
<?xml version="1.0"?>
<instructions name="wheel-check" version="1">
  <inputs><inputset id="raw"><files pattern="raw/*.fits"/></inputset></inputs>
  <steps>
    <step id="sex" tool="sextractor" fanout="file">
      <config><param name="CATALOG_NAME">{stem}.ldac</param><param name="CATALOG_TYPE">FITS_LDAC</param></config>
      <input set="raw"/>
      <output kind="catalog"/>
    </step>
  </steps>
</instructions>
"""


def _run(cmd, **kw):
    done = subprocess.run(cmd, capture_output=True, text=True, **kw)
    assert done.returncode == 0, f"{' '.join(map(str, cmd))} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}"
    return done


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """A fresh virtual environment with the wheels installed (dependencies from the package index or
    pip's cache), outside the source tree."""
    base = tmp_path_factory.mktemp("wheels")
    wheels = base / "dist"
    projects = [ROOT] + sorted(p for p in (ROOT / "plugins").iterdir() if (p / "pyproject.toml").is_file())
    # one pip for all the wheels (each project is still built on its own, from its own pyproject)
    _run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
          "-w", str(wheels), *map(str, projects)], cwd=base)
    assert len(list(wheels.glob("*.whl"))) == len(projects)
    # the environment needs no pip of its own (this one installs into it: --python) and no byte-compiled
    # copies of numpy, astropy, dask... (--no-compile: pip's compile step was half of the install; Python
    # compiles what the commands import, and a syntax error fails that import all the same)
    venv = base / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)])
    _run([sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install", "--quiet", "--no-compile",
          *map(str, sorted(wheels.glob("*.whl")))], cwd=base)
    return venv, wheels


def test_core_wheel_carries_its_data_files(installed):
    _, wheels = installed
    names = zipfile.ZipFile(next(wheels.glob("terapix_fw-*.whl"))).namelist()
    for xsd in (ROOT / "schemas").glob("*.xsd"):
        assert f"terapix_fw/schemas/{xsd.name}" in names
    for template in (ROOT / "web" / "templates").glob("*.html"):
        assert f"terapix_fw/web/assets/templates/{template.name}" in names
    assert "terapix_fw/db/migrations/script.py.mako" in names


def test_installed_framework_validates_runs_and_builds_pages(installed, tmp_path):
    venv, _ = installed
    terapix = str(venv / "bin" / "terapix")
    # a user's environment: bytecode written on first import (the install compiled none), no source tree
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("TERAPIX_", "PYTHONPATH", "PYTHONDONTWRITEBYTECODE"))}
    env.update(TERAPIX_HOME=str(tmp_path / "home"), MPLBACKEND="Agg")
    probe = _run([str(venv / "bin" / "python"), "-c", "import terapix_fw, terapix_sextractor; "
                  "print(terapix_fw.__file__); print(terapix_sextractor.__file__)"], cwd=tmp_path, env=env)
    assert str(ROOT) not in probe.stdout  # the installed copies, not the source tree

    rng = np.random.default_rng(7)
    image = rng.normal(100.0, 5.0, (128, 128)).astype("f4")
    yy, xx = np.mgrid[:128, :128]
    for x0, y0 in rng.uniform(15, 113, (12, 2)):
        image += 400.0 * np.exp(-((xx - x0) ** 2 + (yy - y0) ** 2) / (2 * 1.6 ** 2))
    (tmp_path / "raw").mkdir()
    fits.PrimaryHDU(image, header=fits.Header({"GAIN": 1.5, "FILTER": "r"})).writeto(tmp_path / "raw" / "a.fits")
    (tmp_path / "run.xml").write_text(RUN_XML)

    _run([terapix, "validate", "run.xml"], cwd=tmp_path, env=env)
    _run([terapix, "run", "run.xml", "--workdir", "work", "--jobs", "1"], cwd=tmp_path, env=env)
    with fits.open(tmp_path / "work" / "sex" / "a.ldac") as catalog:
        assert catalog["LDAC_OBJECTS"].data.size >= 10
    _run([terapix, "web", "build", "--db", f"sqlite:///{tmp_path / 'work' / 'rdbix.sqlite'}", "--out", "site"],
         cwd=tmp_path, env=env)
    assert "wheel-check" in (tmp_path / "site" / "index.html").read_text() or \
        any("wheel-check" in p.read_text() for p in (tmp_path / "site").glob("*.html"))
