"""Shared fixtures. The whole suite runs offline: the hub is disabled before anything imports it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

REPO_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def model():
    """The embedded model, loaded once per test session (memoised by load_model itself)."""
    from utils.model import load_model

    return load_model()
