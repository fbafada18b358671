"""Fixtures shared by the core tests and the built-in plugins' tests (as a third party's tests would load them).

``terapix tool`` commands the tests run do not use or start a tool server (``TERAPIX_TOOL_SERVER=off``): a
test that wants one says so in its command's environment, and any server started under the session's
temporary directory is stopped when the session ends.

In CI (``CI=true``) a skipped test is a failure: a missing AstrOmatic reference program, MariaDB server or
browser must stop the run, not quietly remove a comparison.  Only skips whose reason says the platform
cannot do the thing at all (``PLATFORM_SKIPS``) stay skips.
"""
import os

import pytest

# commands run by the tests run themselves (a test of the tool server sets it in its commands' environment)
os.environ["TERAPIX_TOOL_SERVER"] = "off"

pytest_plugins = ["terapix_testing.rdbix"]

#: reasons that mean "this platform cannot", never "something was not installed"
PLATFORM_SKIPS = ("no os.fork on this platform",)


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if not (_in_ci() and report.skipped) or hasattr(report, "wasxfail"):
        return
    reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
    if any(allowed in reason for allowed in PLATFORM_SKIPS):
        return
    report.outcome = "failed"
    report.longrepr = f"skipped in CI, which is a failure here: {reason}"


def _servers_under(base: str) -> list[int]:
    """Pids of this user's `terapix tool-server` processes whose socket lies under ``base``."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            if os.stat(f"/proc/{entry}").st_uid != os.getuid():
                continue
            with open(f"/proc/{entry}/cmdline", "rb") as handle:
                argv = handle.read().decode(errors="replace").split("\0")
        except OSError:
            continue
        if "tool-server" in argv and "--socket" in argv[:-1] and argv[argv.index("--socket") + 1].startswith(base):
            pids.append(int(entry))
    return pids


@pytest.fixture(scope="session", autouse=True)
def _no_tool_server_left(tmp_path_factory):
    """Stop, at the end of the session, every tool server a test started in its temporary directory (a
    test stops its own; this catches a command run with an environment of its own that started one)."""
    yield
    if not os.path.isdir("/proc"):
        return
    import signal

    for pid in _servers_under(str(tmp_path_factory.getbasetemp())):
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
