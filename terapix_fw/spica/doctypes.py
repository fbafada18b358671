"""Spica's documents for ``terapix validate`` (the core's ``terapix_fw.doctypes`` imports this module, named
in its PROVIDERS): selection criteria, release files and release manifests, each checked as its loader
checks it (schema, then the document's own rules)."""
from __future__ import annotations

from ..doctypes import register


def _check_criteria(path, *, overrides=None, workdir=None) -> str:
    from .criteria import load_criteria
    crit = load_criteria(path)
    return f"criteria {crit.name}: {', '.join(c.name for c in crit.checks) or 'none'}"


def _check_release(path, *, overrides=None, workdir=None) -> str:
    from .criteria import load_criteria
    from .release import load_release
    from .tiling import tile_area
    spec = load_release(path)
    crit = load_criteria(spec.criteria_path)
    quanta = sum(len(tile_area(a, spec.quantum)) for a in spec.wide_areas)
    return (f"release {spec.name} ({spec.version}, criteria {crit.name}): {len(spec.deep_fields)} Deep fields, "
            f"{len(spec.wide_targets)} Wide targets, {quanta} quanta of {spec.image_size}^2 pixels, image mode "
            f"for {' '.join(spec.image_components) or 'nothing'}")


def _check_manifest(path, *, overrides=None, workdir=None) -> str:
    from .manifest import read_manifest
    root = read_manifest(path)
    stacks = root.findall("stack")
    return (f"manifest of release {root.get('release')}: {len(stacks)} stacks and fields, "
            f"{sum(len(s.findall('file')) for s in stacks)} files")


register("criteria", "Spica selection criteria", _check_criteria)
register("release", "Spica release file", _check_release)
register("manifest", "Spica release manifest", _check_manifest)
