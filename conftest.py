"""Fixtures shared by the core tests and the built-in plugins' tests (as a third party's tests would load them)."""
pytest_plugins = ["terapix_fw.db.testing"]
