"""SExtractor convolution filter files (``.conv``): a ``CONV NORM`` or ``CONV NONORM`` line, ``#`` comments,
then the kernel rows.  ``default.conv`` (the 3x3 pyramid of SExtractor's ``config/default.conv``) is
built in, so a configuration naming it works without the file."""
from __future__ import annotations

from pathlib import Path

from terapix_fw.errors import ConfigError

__all__ = ["read_filter", "DEFAULT_KERNEL"]

DEFAULT_KERNEL = [[1, 2, 1], [2, 4, 2], [1, 2, 1]]


def parse_filter_text(text: str, source: str):
    import numpy as np

    norm = True
    rows = []
    header_seen = False
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        if line.upper().startswith("CONV"):
            norm = "NONORM" not in line.upper()
            header_seen = True
            continue
        try:
            rows.append([float(v) for v in line.split()])
        except ValueError:
            raise ConfigError(f"cannot read filter row {line!r}; expected numbers", f"{source}:{number}",
                              "FILTER_NAME") from None
    if not header_seen:
        raise ConfigError("not a SExtractor filter file: no 'CONV NORM' or 'CONV NONORM' line", source,
                          "FILTER_NAME")
    if not rows or len({len(r) for r in rows}) != 1:
        raise ConfigError("filter rows are missing or of unequal length", source, "FILTER_NAME")
    kernel = np.array(rows, dtype=np.float32)
    if norm:
        total = kernel.sum()
        if total == 0:
            raise ConfigError("CONV NORM filter sums to zero and cannot be normalised", source, "FILTER_NAME")
        kernel = kernel / total
    return kernel


def read_filter(name: str | Path):
    """The kernel named by FILTER_NAME (normalised if the file says ``CONV NORM``)."""
    import numpy as np

    path = Path(name)
    if not path.exists():
        if path.name == "default.conv":
            k = np.array(DEFAULT_KERNEL, dtype=np.float32)
            return k / k.sum()
        raise ConfigError(f"cannot open filter file {name}", str(name), "FILTER_NAME")
    return parse_filter_text(path.read_bytes().decode("utf-8", "replace"), str(path))
