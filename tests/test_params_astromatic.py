"""Every tool parameter says what it is in the AstrOmatic programs, and every keyword it names is one the
real program knows (compared with the program's own ``-dd`` dump, so a renamed or invented keyword fails)."""
from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from terapix_fw.params import (ASTROMATIC_PROGRAMS, AstromaticEquivalent, Parameter, astromatic_keywords,
                               terapix_only)


def _installed_parameters():
    from terapix_fw.plugins import get_tools
    return [(name, p) for name, info in sorted(get_tools().items()) for p in info.cls.parameter_set()]


def _dd_keywords(program: str) -> set[str]:
    """The keywords of ``program -dd`` (the full default configuration), or a skip when it is missing."""
    exe = next((shutil.which(name) for name in ASTROMATIC_PROGRAMS[program] if shutil.which(name)), None)
    if exe is None:
        pytest.skip(f"{program} is not installed (tried {', '.join(ASTROMATIC_PROGRAMS[program])})")
    done = subprocess.run([exe, "-dd"], capture_output=True, text=True, timeout=60)
    keywords = {m.group(1) for line in done.stdout.splitlines() if (m := re.match(r"([A-Z][A-Z0-9_]*)\s", line))}
    assert keywords, f"{exe} -dd printed no keyword:\n{done.stdout}\n{done.stderr}"
    return keywords


def test_every_tool_parameter_declares_its_astromatic_equivalent():
    params = _installed_parameters()
    assert len(params) > 300  # every built-in tool is installed (sextractor alone has 75)
    missing = [f"{tool}.{p.name}" for tool, p in params if p.equivalent is None]
    assert not missing, f"parameters without an astromatic= field: {missing}"


@pytest.mark.parametrize("program", sorted(ASTROMATIC_PROGRAMS))
def test_every_named_keyword_is_known_to_the_real_program(program):
    named = {(tool, p.name, p.equivalent.keyword) for tool, p in _installed_parameters()
             if p.equivalent is not None and p.equivalent.program == program}
    assert named, f"no tool parameter names a {program} keyword"
    known = _dd_keywords(program)
    unknown = sorted(f"{tool}.{name} -> {program} {keyword}" for tool, name, keyword in named if keyword not in known)
    assert not unknown, f"keywords {program} -dd does not print: {unknown}"


def test_the_three_forms_parse():
    same = AstromaticEquivalent.parse("SExtractor", "DETECT_THRESH")
    assert (same.program, same.keyword, same.note) == ("SExtractor", "DETECT_THRESH", "")
    other = AstromaticEquivalent.parse("STIFF OUTFILE_NAME (PNG only)", "PICTURE_NAME")
    assert (other.program, other.keyword, other.note) == ("STIFF", "OUTFILE_NAME", "PNG only")
    assert str(other) == "STIFF OUTFILE_NAME (PNG only)"
    none = AstromaticEquivalent.parse(terapix_only("an SSH option"), "KEY_FILE")
    assert (none.program, none.keyword, none.note) == (None, None, "an SSH option")


@pytest.mark.parametrize("text", ["Sextractor", "SExtractor detect_thresh", "none (terapix-fw only): ", "same",
                                  "SCAMP DISTORT_DEGREES extra"])
def test_a_malformed_field_is_refused_when_declared(text):
    with pytest.raises(ValueError, match="astromatic"):
        Parameter("DETECT_THRESH", "float", 1.5, "threshold", astromatic=text)


def test_astromatic_keywords_fills_only_what_is_not_declared():
    own = Parameter("PHOT_APERUNIT", "keyword", "PIXEL", "unit", choices=("PIXEL",),
                    astromatic=terapix_only("SExtractor apertures are in pixels"))
    filled = astromatic_keywords("SExtractor", [Parameter("GAIN", "float", 0.0, "gain"), own])
    assert [p.astromatic for p in filled] == ["SExtractor", own.astromatic]
    with pytest.raises(ValueError, match="unknown AstrOmatic program"):
        astromatic_keywords("SourceExtractor", [own])
