"""Fixtures of the swarp plugin tests: small synthetic images with known WCS and sources, and a runner
that calls the tool the way the framework does (through ``execute_unit``)."""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from astropy.wcs import WCS


def tan_header(nx: int, ny: int, ra: float, dec: float, scale_arcsec: float = 0.2, rot_deg: float = 0.0,
               crpix=None) -> fits.Header:
    """A TAN header with the reference point at ``crpix`` (default: image centre)."""
    s = scale_arcsec / 3600.0
    c, sn = np.cos(np.radians(rot_deg)), np.sin(np.radians(rot_deg))
    h = fits.Header()
    h["NAXIS"] = 2
    h["NAXIS1"] = nx
    h["NAXIS2"] = ny
    h["CTYPE1"] = "RA---TAN"
    h["CTYPE2"] = "DEC--TAN"
    h["CUNIT1"] = "deg"
    h["CUNIT2"] = "deg"
    h["CRVAL1"] = ra
    h["CRVAL2"] = dec
    cp = crpix if crpix is not None else ((nx + 1) / 2.0, (ny + 1) / 2.0)
    h["CRPIX1"] = cp[0]
    h["CRPIX2"] = cp[1]
    h["CD1_1"] = -s * c
    h["CD1_2"] = s * sn
    h["CD2_1"] = s * sn
    h["CD2_2"] = s * c
    h["EQUINOX"] = 2000.0
    h["RADESYS"] = "ICRS"
    return h


def gaussian_image(header: fits.Header, sources, sigma_pix: float = 2.0, sky: float = 0.0,
                   noise: float = 0.0, seed: int = 0, oversample: int = 5) -> np.ndarray:
    """Render circular Gaussians of total ``flux`` at (ra, dec), integrated over pixels by sub-sampling.

    The default sigma of 2 pixels (FWHM 0.94" at 0.2"/px) is MegaCam-like seeing; Lanczos resampling of
    narrower profiles shows its sub-pixel-phase errors (0.1% in flux, 0.02 px in position).
    """
    nx, ny = header["NAXIS1"], header["NAXIS2"]
    wcs = WCS(header)
    img = np.full((ny, nx), sky, dtype=np.float64)
    for ra, dec, flux in sources:
        x, y = wcs.all_world2pix([[ra, dec]], 1)[0]
        r = int(6 * sigma_pix) + 2
        x0, x1 = max(1, int(x) - r), min(nx, int(x) + r)
        y0, y1 = max(1, int(y) - r), min(ny, int(y) + r)
        if x0 > x1 or y0 > y1:
            continue
        sub = (np.arange(oversample) + 0.5) / oversample - 0.5
        xs = (np.arange(x0, x1 + 1)[:, None] + sub[None, :]).ravel()
        ys = (np.arange(y0, y1 + 1)[:, None] + sub[None, :]).ravel()
        gx = np.exp(-0.5 * ((xs - x) / sigma_pix) ** 2).reshape(-1, oversample).mean(1)
        gy = np.exp(-0.5 * ((ys - y) / sigma_pix) ** 2).reshape(-1, oversample).mean(1)
        img[y0 - 1:y1, x0 - 1:x1] += flux * np.outer(gy, gx) / (2 * np.pi * sigma_pix ** 2)
    if noise:
        img += np.random.default_rng(seed).normal(0.0, noise, img.shape)
    return img.astype(np.float32)


def write_image(path: Path, header: fits.Header, data: np.ndarray, **keywords) -> Path:
    h = header.copy()
    for k, v in keywords.items():
        h[k] = v
    fits.PrimaryHDU(data.astype(np.float32), h).writeto(path, overwrite=True)
    return path


class Runner:
    """Run the swarp tool like the framework does, with outputs in a temporary directory."""

    def __init__(self, tmp_path: Path):
        self.tmp_path = tmp_path

    def __call__(self, inputs, **keywords):
        from terapix_fw.execute import UnitSpec, execute_unit

        layer = [(k.upper(), v if not isinstance(v, bool) else ("Y" if v else "N"), "test")
                 for k, v in keywords.items()]
        layer.insert(0, ("WRITE_XML", "N", "test")) if "WRITE_XML" not in {k.upper() for k in keywords} else None
        spec = UnitSpec(step="swarp", unit="1", tool="swarp", config_layers=[layer],
                        inputs=[str(p) for p in inputs], outdir=str(self.tmp_path),
                        log_path=str(self.tmp_path / "swarp.log"), nthreads=2, confine_outputs=False)
        result = execute_unit(spec)
        if result.status != "done":
            raise AssertionError(f"swarp failed: {result.error}\n{Path(result.log_path).read_text()}")
        return result


@pytest.fixture
def run_swarp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    logging.getLogger("terapix").setLevel(logging.INFO)
    return Runner(tmp_path)


@pytest.fixture
def synth():
    """The image builders of this conftest (test modules cannot import it under --import-mode=importlib)."""
    from types import SimpleNamespace

    return SimpleNamespace(tan_header=tan_header, gaussian_image=gaussian_image, write_image=write_image)
