"""Every test in this folder is a fault test: ``pytest -m faults`` runs them alone."""

from __future__ import annotations

import pytest


def pytest_collection_modifyitems(items):
    for item in items:
        if "/faults/" in str(item.fspath).replace("\\", "/"):
            item.add_marker(pytest.mark.faults)
