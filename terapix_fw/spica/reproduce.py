"""Reproduction of released stacks from their manifest, in another work directory and database (another
machine): the inputs, configuration files and instruction file are checked against the manifest's
SHA-256, the instruction file is run as recorded (input and configuration paths moved to where they are
found on this machine), and the new stack's pixels are compared with the manifest's digest.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..atomic import sha256_file, write_text_atomic
from ..errors import TerapixError
from .generation import job_products
from .manifest import pixel_digest, read_manifest
from .release import ReleaseSpec

__all__ = ["Reproduction", "reproduce"]


@dataclass
class Reproduction:
    """The outcome of re-making one stack.

    Attributes
    ----------
    name : str
    identical : bool
        Whether the pixels are identical to the manifest's.
    expected, obtained : str
        Pixel digests.
    image : str
        The re-made stack.
    """
    name: str
    identical: bool
    expected: str
    obtained: str
    image: str


class ReproductionError(TerapixError):
    """A stack of a manifest cannot be re-made: a missing or altered input, a failed unit."""
    pass


def _locate(path: str, base: Path, search: list[Path]) -> Path:
    p = Path(path)
    candidates = [p if p.is_absolute() else base / p] + [d / p.name for d in search]
    for c in candidates:
        if c.exists():
            return c
    raise ReproductionError(f"{p.name}: not found (looked at {', '.join(str(c) for c in candidates)})")


def reproduce(manifest: str | Path, workdir: str | Path, db: str, *, stacks: list[str] | None = None,
              inputs: list[str | Path] | None = None, jobs: int | None = None) -> list[Reproduction]:
    """Re-make the stacks of ``manifest`` (or the named ones) in ``workdir`` recording into ``db``;
    ``inputs``: directories where the input exposures, reference catalogue and configuration files are
    looked for by name when they are not at their recorded place.

    Parameters
    ----------
    manifest : str or Path
    workdir : str or Path
    db : str
        RDBix URL.
    stacks : list of str, optional
    inputs : list of str or Path, optional
    jobs : int, optional

    Returns
    -------
    list of Reproduction

    Raises
    ------
    ReproductionError
        On an unknown stack, an input whose SHA-256 differs, or a failed unit.
    """
    from ..db.engine import connect
    from ..instructions import load_instructions
    from ..runner import Runner

    root = read_manifest(manifest)
    base = Path(root.get("base"))
    version = root.get("release")
    search = [Path(d) for d in (inputs or [])]
    workdir = Path(workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    connect(db)  # a new database gets the schema
    chosen = [s for s in root.findall("stack") if s.get("kind") in ("stack", "image")
              and (not stacks or s.get("name") in stacks)]
    if stacks and len(chosen) != len(set(stacks)):
        missing = sorted(set(stacks) - {s.get("name") for s in chosen})
        raise ReproductionError(f"{manifest}: no accepted stack named {', '.join(missing)}")
    results = []
    for st in chosen:
        name = st.get("name")
        moved: dict[str, str] = {}
        instructions = None
        for f in st.findall("file"):
            kind = f.get("kind")
            if kind not in ("instructions", "config", "input", "refcat"):
                continue
            found = _locate(f.get("path"), base, search)
            if sha256_file(found) != f.get("sha256"):  # verification reads the bytes, never the digest cache
                raise ReproductionError(f"{found}: SHA-256 differs from the manifest's ({kind} of {name})")
            recorded = str(Path(f.get("path")) if Path(f.get("path")).is_absolute() else base / f.get("path"))
            moved[recorded] = str(found.resolve())
            if kind == "instructions":
                instructions = found
        if instructions is None:
            raise ReproductionError(f"{manifest}: stack {name} lists no instruction file")
        text = instructions.read_text()
        conf_dir = str(instructions.parent / "conf")
        for old, new in moved.items():
            text = text.replace(old, new)
        local_conf = next((str(Path(v).parent) for k, v in moved.items() if "/conf/" in k), None)
        if local_conf:
            text = text.replace(conf_dir, local_conf)
        copy = workdir / "instructions" / instructions.name
        copy.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(copy, text)
        summary = Runner(load_instructions(copy), workdir, jobs=jobs, db_url=db, progress=False).run()
        if summary.get("failed") or summary.get("blocked"):
            raise ReproductionError(f"stack {name}: {summary.get('failed')} unit(s) failed in {workdir}")
        pix = st.find("pixels")
        image = workdir / job_products(ReleaseSpec(version, version, "", Path()), name)["release"] / f"{name}.fits"
        obtained = pixel_digest(image)[0]
        expected = pix.get("sha256") if pix is not None else ""
        results.append(Reproduction(name, obtained == expected, expected, obtained, str(image)))
    return results
