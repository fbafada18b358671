"""Atomic writes: every product is written under a temporary name in its final directory, then renamed.

A killed run therefore never leaves a half-written product under its real name, and nothing already
stored is replaced until the new version is complete.
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from pathlib import Path
from typing import Iterator

__all__ = ["atomic_path", "write_text_atomic", "write_fits_atomic", "sha256_file", "confine"]


@contextlib.contextmanager
def atomic_path(final: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``final``; rename it to ``final`` only if the block succeeds."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".part", dir=final.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    tmp_path.unlink()  # writers such as astropy refuse an existing file without overwrite
    try:
        yield tmp_path
        if not tmp_path.exists():
            raise FileNotFoundError(f"{final}: the writer produced nothing at {tmp_path}")
        os.replace(tmp_path, final)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_text_atomic(final: str | Path, text: str, encoding: str = "utf-8") -> Path:
    with atomic_path(final) as tmp:
        tmp.write_text(text, encoding=encoding)
    return Path(final)


def write_fits_atomic(final: str | Path, hdulist) -> Path:
    """Write an ``astropy.io.fits.HDUList`` atomically."""
    with atomic_path(final) as tmp:
        hdulist.writeto(tmp)
    return Path(final)


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def confine(base: str | Path, name: str, what: str = "path") -> Path:
    """Resolve ``name`` inside ``base``; refuse anything (``..``, absolute, links) that escapes it."""
    base_resolved = Path(base).resolve()
    candidate = (base_resolved / name).resolve()
    if candidate != base_resolved and base_resolved not in candidate.parents:
        raise PermissionError(f"{what} {name!r} escapes its directory {base_resolved}")
    return candidate
