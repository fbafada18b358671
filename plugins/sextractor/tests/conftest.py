"""Fixtures for the sextractor tests: small simulated images with known truth, written with tmp_path."""
from __future__ import annotations

import shutil

import pytest


@pytest.fixture
def sextractor_available():
    if shutil.which("source-extractor") is None:
        pytest.skip("source-extractor is not installed")
    return shutil.which("source-extractor")
