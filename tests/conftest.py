"""pytest fixtures shared by every test directory; the helpers live in tests/support.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from support import SHARED, run_module, run_playbook


@pytest.fixture
def module_runner():
    return run_module


@pytest.fixture
def playbook_runner():
    return run_playbook


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    return SHARED
