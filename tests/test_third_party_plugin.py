"""A third party's plugin (the worked example of docs/plugins.rst), installed from a temporary folder as its own distribution, shows up in
``terapix plugins`` and runs from an instruction file, through the same entry points as built-ins."""
from __future__ import annotations

import os
import subprocess
import sys
import shutil
from pathlib import Path

import numpy as np
from astropy.io import fits

#: the worked example of the plugin author's guide (docs/plugins.rst): the documented code is the tested code
EXAMPLE = Path(__file__).resolve().parents[1] / "docs" / "examples" / "acme-terapix-invert"


def test_install_and_run_third_party_plugin(tmp_path):
    src = tmp_path / "src"
    shutil.copytree(EXAMPLE, src)  # pip builds in place: keep the source tree clean
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
    shutil.copy(EXAMPLE / "run.xml", tmp_path / "run.xml")
    done = subprocess.run(terapix + ["run", str(tmp_path / "run.xml"), "--workdir", str(tmp_path / "work")],
                          env=env, capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    out = fits.getdata(tmp_path / "work" / "inv" / "a_inv.fits")
    assert np.array_equal(out, 10 - np.arange(4.0).reshape(2, 2))
