"""The ``terapix`` command: validate, plugins, config, drop-in tool runs (in-process)."""
from __future__ import annotations

import numpy as np
import pytest
from astropy.io import fits

from terapix_fw.cli import main


def test_help_of_every_subcommand(capsys):
    for command in ("run", "validate", "plugins", "config", "tool"):
        with pytest.raises(SystemExit) as exit_:
            main([command, "--help"] if command != "tool" else [command, "+h"])
        assert exit_.value.code == 0
    assert "usage: terapix" in capsys.readouterr().out


def test_validate_reports_errors_with_exit_code(tmp_path, demo_tools, capsys):
    good = tmp_path / "good.xml"
    good.write_text('<instructions name="g" version="1"><steps><step id="a" tool="stack"/></steps></instructions>')
    assert main(["validate", str(good)]) == 0
    assert "valid instruction file (1 steps: a" in capsys.readouterr().out
    bad = tmp_path / "bad.xml"
    bad.write_text('<instructions name="g" version="1"><steps><step id="a" tool="stack">'
                   '<config><param name="OUTPUT_NAM">x</param></config></step></steps></instructions>')
    assert main(["validate", str(bad)]) == 2
    assert "unknown parameter OUTPUT_NAM for tool stack; did you mean OUTPUT_NAME?" in capsys.readouterr().err


def test_config_dump_round_trips_through_drop_in(tmp_path, demo_tools, capsys, monkeypatch):
    monkeypatch.setenv("TERAPIX_HOME", str(tmp_path / "home"))
    assert main(["config", "scale"]) == 0
    dump = capsys.readouterr().out
    conf = tmp_path / "scale.conf"
    conf.write_text(dump.replace("FACTOR ", "FACTOR 4 #", 1))
    fits.PrimaryHDU(np.ones((3, 3))).writeto(tmp_path / "in.fits")
    monkeypatch.chdir(tmp_path)
    # the command line overrides the file, which overrides the defaults
    assert main(["tool", "scale", "in.fits", "-c", str(conf), "-OUTPUT_NAME", "out.fits"]) == 0
    assert fits.getdata(tmp_path / "out.fits")[0, 0] == 4.0
    assert main(["tool", "scale", "in.fits", "-c", str(conf), "-FACTOR", "5", "-OUTPUT_NAME", "o5.fits"]) == 0
    assert fits.getdata(tmp_path / "o5.fits")[0, 0] == 5.0
    assert main(["tool", "scale", "in.fits", "-FACTR", "5"]) == 2
    assert "unknown parameter FACTR for tool scale; did you mean FACTOR?" in capsys.readouterr().err


def test_drop_in_failure_exit_code(tmp_path, demo_tools, capsys, monkeypatch):
    monkeypatch.setenv("TERAPIX_HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    fits.PrimaryHDU(np.ones((3, 3))).writeto(tmp_path / "bad.fits")
    assert main(["tool", "scale", "bad.fits", "-FAIL_ON", "bad"]) == 1
    err = capsys.readouterr().err
    assert "refused because its name contains 'bad'" in err and "(log: " in err


def test_plugins_add_subcommands(capsys):
    """A plugin's register_commands hook adds a subcommand with its own --help."""
    from terapix_fw import plugins
    from terapix_fw.hookspecs import hookimpl

    class Extra:
        @hookimpl
        def register_commands(self, subparsers):
            p = subparsers.add_parser("hello", help="say hello")
            p.add_argument("who")
            p.set_defaults(func=lambda args: print(f"hello {args.who}") or 0)

    extra = Extra()
    plugins.get_plugin_manager().register(extra)
    try:
        assert main(["hello", "survey"]) == 0
    finally:
        plugins.get_plugin_manager().unregister(extra)
    assert capsys.readouterr().out == "hello survey\n"


def test_console_command_exits_with_main_code_and_flushed_output(tmp_path):
    """The ``terapix`` command skips the interpreter's teardown (os._exit after the exit handlers): its
    exit code is still main's, and what it printed is all there."""
    import subprocess
    import sys

    cmd = [sys.executable, "-c", "import sys; from terapix_fw.cli import run; sys.argv[0] = 'terapix'; run()"]
    out = subprocess.run(cmd + ["config", "sextractor"], capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 0
    # the whole dump up to its last line, not what fitted in a buffer when the process ended
    assert out.stdout.splitlines()[0].startswith("#") and out.stdout.rstrip().splitlines()[-1].startswith("SOM_NAME")
    bad = tmp_path / "bad.xml"
    bad.write_text("<instructions")
    out = subprocess.run(cmd + ["validate", str(bad)], capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 2 and "bad.xml" in out.stderr
    out = subprocess.run(cmd + ["no-such-command"], capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 2 and "invalid choice" in out.stderr
    out = subprocess.run(cmd + ["--help"], capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 0 and "usage: terapix" in out.stdout
