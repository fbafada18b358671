"""CLASS_STAR: a small sigmoid multi-layer perceptron (10-10-10-1), stored in SExtractor's ``.nnw`` text format.

Inputs (SExtractor ``analyse.c``), with ``f = SEEING_FWHM / pixel scale``:
``log10(ISO0 / f^2)``, ``log10(peak / threshold)``, ``log10(ISO1..7 / f^2)``, ``log10(SEEING_FWHM)``
(areas of 0 count as 0.01, a non-positive peak as 0.1).  The network in ``data/default.nnw`` was trained
in this project on its own simulations by ``train_classifier.py``; any SExtractor ``.nnw`` file named by
STARNNW_NAME is read the same way.

File layout: ``NNW``, comments, the number of layers and neurons per layer, the input offsets and scales
(``in = x * scale + offset``), for each layer one row per neuron (weights then bias), then the output
offset and scale (``out = (y - offset) / scale``), as SExtractor's ``neurro.c`` reads and applies them.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from terapix_fw.errors import ConfigError

__all__ = ["Network", "read_nnw", "write_nnw", "class_star_inputs", "default_nnw_path", "load_network"]


def default_nnw_path() -> Path:
    return Path(__file__).with_name("data") / "default.nnw"


@dataclass
class Network:
    layers: list[int]
    in_offset: np.ndarray
    in_scale: np.ndarray
    weights: list[np.ndarray]  # (n_out, n_in)
    biases: list[np.ndarray]
    out_offset: np.ndarray
    out_scale: np.ndarray
    source: str = ""

    def __call__(self, inputs: np.ndarray) -> np.ndarray:
        """Outputs for ``inputs`` of shape (n, n_inputs)."""
        h = np.asarray(inputs, dtype=np.float64) * self.in_scale + self.in_offset
        for w, b in zip(self.weights, self.biases):
            h = 1.0 / (1.0 + np.exp(-np.clip(h @ w.T + b, -50, 50)))
        return (h - self.out_offset) / self.out_scale


def read_nnw(path: str | Path) -> Network:
    path = Path(path)
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError as exc:
        raise ConfigError(f"cannot read neural-network weights: {exc.strerror}", str(path), "STARNNW_NAME") from None
    if not lines or lines[0].strip() != "NNW":
        raise ConfigError("not a neural-network weight file (first line must be NNW)", str(path), "STARNNW_NAME")
    numbers: list[float] = []
    for line in lines[1:]:
        line = line.split("#", 1)[0]
        numbers.extend(float(v) for v in line.split())
    try:
        nlayers = int(numbers[0])
        layers = [int(v) for v in numbers[1:1 + nlayers]]
        pos = 1 + nlayers
        nin = layers[0]
        in_offset = np.array(numbers[pos:pos + nin]); pos += nin
        in_scale = np.array(numbers[pos:pos + nin]); pos += nin
        weights, biases = [], []
        for l in range(nlayers - 1):
            n_in, n_out = layers[l], layers[l + 1]
            block = np.array(numbers[pos:pos + n_out * (n_in + 1)]).reshape(n_out, n_in + 1)
            pos += n_out * (n_in + 1)
            weights.append(block[:, :n_in])
            biases.append(block[:, n_in])
        nout = layers[-1]
        out_offset = np.array(numbers[pos:pos + nout]); pos += nout
        out_scale = np.array(numbers[pos:pos + nout]); pos += nout
        if len(out_scale) != nout:
            raise IndexError
    except (IndexError, ValueError):
        raise ConfigError("truncated or malformed neural-network weight file", str(path), "STARNNW_NAME") from None
    if nin != 10 or layers[-1] != 1:
        raise ConfigError(f"CLASS_STAR needs a network with 10 inputs and 1 output, got layers {layers}",
                          str(path), "STARNNW_NAME")
    return Network(layers, in_offset, in_scale, weights, biases, out_offset, out_scale, str(path))


def write_nnw(path: str | Path, net: Network, comments: list[str]) -> None:
    from terapix_fw.atomic import write_text_atomic

    def row(values):
        return " ".join(f"{v: .6e}" for v in values)

    out = ["NNW"] + [f"# {c}" for c in comments] + ["", " " + " ".join(str(n) for n in [len(net.layers)] + net.layers), ""]
    out += [row(net.in_offset), row(net.in_scale), ""]
    for w, b in zip(net.weights, net.biases):
        out += [row(list(w[i]) + [b[i]]) for i in range(w.shape[0])] + [""]
    out += ["", row(net.out_offset), row(net.out_scale)]
    write_text_atomic(path, "\n".join(out) + "\n")


def load_network(name: str) -> Network:
    """The network named by STARNNW_NAME, or the packaged one when that file does not exist."""
    path = Path(name)
    if path.exists():
        return read_nnw(path)
    if path.name == "default.nnw":
        return read_nnw(default_nnw_path())
    raise ConfigError(f"cannot open neural-network weight file {name}", str(name), "STARNNW_NAME")


def class_star_inputs(iso, peak, thresh_global, seeing_fwhm, pixscale):
    """The 10 SExtractor classifier inputs (``analyse.c``) for n objects: iso (n, 8), peak (n,)."""
    iso = np.asarray(iso, dtype=np.float64)
    fac2 = (seeing_fwhm / pixscale) ** 2
    areas = np.where(iso > 0, iso / fac2, 0.01)
    x = np.empty((iso.shape[0], 10))
    x[:, 0] = np.log10(areas[:, 0])
    if thresh_global > 0:
        x[:, 1] = np.log10(np.where(peak > 0, peak / thresh_global, 0.1))
    else:
        x[:, 1] = -1.0
    x[:, 2:9] = np.log10(areas[:, 1:8])
    x[:, 9] = np.log10(seeing_fwhm)
    return x
