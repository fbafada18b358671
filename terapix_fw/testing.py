"""pytest fixtures for testing tools built on terapix-fw (the built-in plugins and third-party ones).

Load them with ``pytest_plugins = ["terapix_fw.testing"]`` in the top-level ``conftest.py``.
"""
from __future__ import annotations

import pytest


@pytest.fixture
def recorded_dropin(tmp_path, monkeypatch):
    """Drop-in runs (``terapix tool ...``) made in the test are recorded in a fresh SQLite RDBix in tmp_path.

    The test runs in tmp_path with its own TERAPIX_HOME; yields the database URL. Recorders and engines are
    reset before and after, so no connection outlives the test's temporary directory.
    """
    from terapix_fw.db.engine import dispose_all
    from terapix_fw.db.recorder import reset_recorders

    url = f"sqlite:///{tmp_path / 'rdbix.sqlite'}"
    monkeypatch.setenv("TERAPIX_DB_URL", url)
    monkeypatch.setenv("TERAPIX_HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    reset_recorders()
    try:
        yield url
    finally:
        reset_recorders()
        dispose_all()
