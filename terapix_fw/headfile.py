"""External ``.head`` files: ASCII FITS headers, one block per extension, each ending with ``END``.

SCAMP writes them beside its catalogues; SWarp and SExtractor read ``IMAGE.head`` beside each image and
let its keywords override the image header.  SCAMP's own files contain a latin-1 character in a comment,
so they are decoded as latin-1 and non-ASCII characters replaced before astropy parses them.
"""
from __future__ import annotations

from pathlib import Path

__all__ = ["parse_head_text", "read_head_file", "format_head", "write_head_file", "apply_head"]


def parse_head_text(text: str, source: str = "<head>") -> list:
    """Split ``.head`` text into one ``astropy.io.fits.Header`` per END-terminated block.

    Parameters
    ----------
    text : str
        The ``.head`` content (non-ASCII characters become ``?``).
    source : str
        Name of the file in messages.

    Returns
    -------
    list of astropy.io.fits.Header

    Raises
    ------
    ConfigError
        On a card astropy cannot read, naming ``source:line``.
    """
    from astropy.io import fits

    from .errors import ConfigError

    text = "".join(c if ord(c) < 128 else "?" for c in text)
    lines: list[str] = []
    for raw_line in text.splitlines():
        # tolerate files written as a single stream of 80-character cards without newlines
        chunks = [raw_line[i:i + 80] for i in range(0, len(raw_line), 80)] or [""]
        lines.extend(chunks)
    blocks, current = [], []
    for number, line in enumerate(lines, start=1):
        if line.strip() == "":
            continue
        if line.rstrip() == "END" or line.startswith("END "):
            blocks.append(current)
            current = []
            continue
        current.append((number, line))
    if current:
        blocks.append(current)  # a final block without END is accepted, as SWarp does
    headers = []
    for block in blocks:
        header = fits.Header()
        for number, line in block:
            try:
                card = fits.Card.fromstring(line.ljust(80)[:80])
                card.verify("silentfix")
                if card.keyword in ("COMMENT", "HISTORY", ""):
                    header.append(card)
                else:
                    header[card.keyword] = (card.value, card.comment)
            except Exception as exc:  # noqa: BLE001 - astropy raises several types for bad cards
                raise ConfigError(f"cannot read header card {line.strip()!r}: {exc}", f"{source}:{number}") from None
        headers.append(header)
    return headers


def read_head_file(path: str | Path) -> list:
    """Read a ``.head`` file into a list of headers, one per extension.

    Parameters
    ----------
    path : str or Path

    Returns
    -------
    list of astropy.io.fits.Header
    """
    path = Path(path)
    return parse_head_text(path.read_bytes().decode("latin-1"), str(path))


def format_head(headers: list) -> str:
    """Format headers as a ``.head`` file: 80-column cards, a newline after each, END after each block.

    Parameters
    ----------
    headers : list of astropy.io.fits.Header

    Returns
    -------
    str
    """
    out = []
    for header in headers:
        for card in header.cards:
            out.append(str(card.image)[:80].ljust(80))
        out.append("END".ljust(80))
    return "\n".join(out) + "\n"


def write_head_file(path: str | Path, headers: list) -> Path:
    """Write a ``.head`` file atomically.

    Parameters
    ----------
    path : str or Path
    headers : list of astropy.io.fits.Header

    Returns
    -------
    Path
    """
    from .atomic import write_text_atomic

    return write_text_atomic(path, format_head(headers), encoding="ascii")


def apply_head(header, head) -> None:
    """Let the keywords of ``head`` override those of ``header`` in place (SWarp/SExtractor semantics).

    Distortion keywords (PV*) of the image are dropped first when the ``.head`` carries its own, so that
    stale terms never mix with a new solution.

    Parameters
    ----------
    header : astropy.io.fits.Header
        The image header, modified.
    head : astropy.io.fits.Header
        One block of a ``.head`` file.
    """
    if any(k.startswith("PV") for k in head.keys()):
        for key in [k for k in header.keys() if k.startswith("PV")]:
            del header[key]
    for card in head.cards:
        if card.keyword in ("COMMENT", "HISTORY", ""):
            continue
        header[card.keyword] = (card.value, card.comment)
