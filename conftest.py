"""Fixtures shared by the core tests and the built-in plugins' tests (as a third party's tests would load them).

In CI (``CI=true``) a skipped test is a failure: a missing AstrOmatic reference program, MariaDB server or
browser must stop the run, not quietly remove a comparison.  Only skips whose reason says the platform
cannot do the thing at all (``PLATFORM_SKIPS``) stay skips.
"""
import os

import pytest

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
