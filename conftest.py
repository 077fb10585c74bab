"""Shared test fixtures for every layer (unit, integration, e2e)."""

from __future__ import annotations

from typing import Any

import pytest
from tests.data.badcases import load_bad_cases


@pytest.fixture(scope="session")
def bad_cases() -> list[tuple[str, dict[str, Any], str]]:
    return load_bad_cases()
