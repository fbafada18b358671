"""The command line behaves as its users expect from the AstrOmatic programs and from Unix tools:
help and version everywhere, no directory created behind the user's back, read-only commands that
never create a database, lenient exposure names, quiet broken pipes."""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
from astropy.io import fits

from terapix_fw.cli import main

TERAPIX = [sys.executable, "-m", "terapix_fw.cli"]


def _env(tmp_path):
    env = dict(os.environ, TERAPIX_HOME=str(tmp_path / "home"))
    env.pop("TERAPIX_DB_URL", None)
    env.pop("TERAPIX_DBCLIENT_URL", None)
    return env


def test_tool_help_lists_the_installed_tools(capsys):
    assert main(["tool", "--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: terapix tool NAME") and "sextractor" in out and "swarp" in out


@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_tool_name_help_lists_every_parameter(flag, capsys):
    from terapix_fw.plugins import get_tool
    assert main(["tool", "sextractor", flag]) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: terapix tool sextractor")
    assert all(f"-{p.name} " in out for p in get_tool("sextractor").cls.parameter_set())


def test_tool_version_and_default_dump(capsys):
    from terapix_fw.plugins import get_tool
    assert main(["tool", "swarp", "-v"]) == 0
    assert capsys.readouterr().out.startswith(f"swarp version {get_tool('swarp').version}")
    assert main(["tool", "swarp", "-dd"]) == 0
    assert "COMBINE_TYPE" in capsys.readouterr().out


def test_dropin_does_not_create_a_missing_output_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TERAPIX_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("TERAPIX_DB_URL", raising=False)
    rng = np.random.default_rng(3)
    fits.PrimaryHDU(rng.normal(100, 5, (64, 64)).astype("f4")).writeto(tmp_path / "img.fits")
    missing = tmp_path / "no" / "such" / "dir"
    done = subprocess.run(TERAPIX + ["tool", "sextractor", "img.fits", "-CATALOG_NAME", str(missing / "x.cat"),
                                     "-VERBOSE_TYPE", "QUIET"], cwd=tmp_path, env=_env(tmp_path),
                          capture_output=True, text=True)
    assert done.returncode != 0
    assert f"directory {missing} does not exist" in done.stderr
    assert not (tmp_path / "no").exists()


@pytest.mark.parametrize("command", [["db", "query", "images"],
                                     ["db", "query", "grades", "700001p"], ["grade", "700001p", "B"]])
def test_read_only_commands_never_create_a_database(command, tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("TERAPIX_DB_URL", raising=False)
    monkeypatch.delenv("TERAPIX_DBCLIENT_URL", raising=False)
    where = tmp_path / "elsewhere"
    assert main(command + ["--workdir", str(where)]) == 2
    assert "no RDBix database at" in capsys.readouterr().err
    assert not where.exists()


def test_db_status_says_a_missing_database_is_missing(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("TERAPIX_DB_URL", raising=False)
    where = tmp_path / "elsewhere"
    assert main(["db", "status", "--workdir", str(where)]) == 1
    assert "no RDBix database there" in capsys.readouterr().out
    assert not where.exists()


@pytest.fixture
def survey_db(tmp_path):
    from terapix_fw.db.engine import connect
    from terapix_fw.db.ops import Document
    from terapix_fw.db.store import write_document
    url = f"sqlite:///{tmp_path / 'rdbix.sqlite'}"
    doc = Document()
    for i in range(300):
        doc.add("exposure", filename=f"{700001 + i}p.fits", filter="r.MP9601", exptime=600.0)
    write_document(connect(url), doc)
    return url


def test_grade_finds_an_exposure_without_its_suffix(survey_db, capsys):
    from terapix_fw.db.query import effective_grade
    assert main(["grade", "700003p", "B", "--db", survey_db, "--comment", "wind shake"]) == 0
    assert effective_grade(survey_db, "700003p.fits")[0] == "B"


def test_grade_of_an_unknown_exposure_suggests_the_nearest(survey_db, capsys):
    assert main(["grade", "700003", "B", "--db", survey_db]) == 2
    err = capsys.readouterr().err
    assert "unknown exposure '700003'" in err and "did you mean" in err and "700003p.fits" in err


def test_broken_pipe_ends_quietly(survey_db, tmp_path):
    reader = subprocess.Popen(["head", "-n", "1"], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL)
    writer = subprocess.run(TERAPIX + ["db", "query", "images", "--json", "--db", survey_db],
                            stdout=reader.stdin, stderr=subprocess.PIPE, text=True, env=_env(tmp_path))
    reader.stdin.close()
    reader.wait()
    assert "Traceback" not in writer.stderr and "BrokenPipe" not in writer.stderr
    assert writer.returncode in (0, 141)


def _small_image(path):
    rng = np.random.default_rng(5)
    image = rng.normal(100.0, 5.0, (96, 96)).astype("f4")
    yy, xx = np.mgrid[:96, :96]
    for x0, y0 in rng.uniform(12, 84, (8, 2)):
        image += 300.0 * np.exp(-((xx - x0) ** 2 + (yy - y0) ** 2) / (2 * 1.5 ** 2))
    fits.PrimaryHDU(image).writeto(path)


def test_verbose_type_quiet_prints_nothing_on_success(tmp_path):
    _small_image(tmp_path / "img.fits")
    done = subprocess.run(TERAPIX + ["tool", "sextractor", "img.fits", "-CATALOG_NAME", "img.cat",
                                     "-VERBOSE_TYPE", "QUIET"], cwd=tmp_path, env=_env(tmp_path),
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert (done.stdout, done.stderr) == ("", "")
    assert (tmp_path / "img.cat").is_file()


def test_an_error_is_one_line_printed_once(tmp_path):
    done = subprocess.run(TERAPIX + ["tool", "sextractor", "missing.fits", "-VERBOSE_TYPE", "QUIET"],
                          cwd=tmp_path, env=_env(tmp_path), capture_output=True, text=True)
    assert done.returncode != 0 and done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "missing.fits" in lines[0] and "Traceback" not in done.stderr
