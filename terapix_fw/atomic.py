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
    """Yield a temporary path beside ``final``; rename it to ``final`` only if the block succeeds.

    Parameters
    ----------
    final : str or Path
        The file to write; its directory is created if needed.

    Yields
    ------
    Path
        A temporary name in the same directory (so the rename is atomic); it does not exist yet.

    Raises
    ------
    FileNotFoundError
        If the block ended without writing the temporary file.
    """
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
    """Write a text file atomically (see :func:`atomic_path`).

    Parameters
    ----------
    final : str or Path
        The file to write.
    text : str
        Its content.
    encoding : str
        Text encoding.

    Returns
    -------
    Path
        ``final``.
    """
    with atomic_path(final) as tmp:
        tmp.write_text(text, encoding=encoding)
    return Path(final)


def write_fits_atomic(final: str | Path, hdulist) -> Path:
    """Write an ``astropy.io.fits.HDUList`` atomically.

    Parameters
    ----------
    final : str or Path
        The file to write.
    hdulist : astropy.io.fits.HDUList
        What to write.

    Returns
    -------
    Path
        ``final``.
    """
    with atomic_path(final) as tmp:
        hdulist.writeto(tmp)
    return Path(final)


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    """SHA-256 of a file, read in chunks.

    Parameters
    ----------
    path : str or Path
        The file.
    chunk : int
        Bytes read at a time.

    Returns
    -------
    str
        Hexadecimal digest.
    """
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def confine(base: str | Path, name: str, what: str = "path") -> Path:
    """Resolve ``name`` inside ``base``; refuse anything (``..``, absolute, links) that escapes it.

    Parameters
    ----------
    base : str or Path
        The directory names must stay in.
    name : str
        A name from outside input (an instruction file, a request).
    what : str
        What the name is, for the error message.

    Returns
    -------
    Path
        The resolved path.

    Raises
    ------
    PermissionError
        If the resolved path is outside ``base``.
    """
    base_resolved = Path(base).resolve()
    candidate = (base_resolved / name).resolve()
    if candidate != base_resolved and base_resolved not in candidate.parents:
        raise PermissionError(f"{what} {name!r} escapes its directory {base_resolved}")
    return candidate
