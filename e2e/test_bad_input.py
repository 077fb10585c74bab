"""Malformed manifests are rejected by the real API server with the expected message,
and nothing is created. Same table as the render unit test (tests/data)."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from tests.data.badcases import load_bad_cases

from tierserve.dev.cluster.harness import ClusterHandle

pytestmark = pytest.mark.cluster
CASES = load_bad_cases()


def test_table_has_at_least_twenty_cases() -> None:
    assert len(CASES) >= 20


@pytest.mark.parametrize(("name", "doc", "expect"), CASES, ids=[c[0] for c in CASES])
def test_apply_rejects_with_message_and_creates_nothing(
        cluster: ClusterHandle, installed: Any, namespace: str, name: str,
        doc: dict[str, Any], expect: str) -> None:
    res = cluster.kubectl.run("apply", "-n", namespace, "-f", "-",
                              stdin=yaml.safe_dump(doc), check=False)
    assert res.returncode != 0, f"{name}: accepted by the API server"
    assert expect in res.stderr, f"{name}: {res.stderr}"
    listing = cluster.kubectl("get", "llmd,llmr", "-n", namespace, "-o", "name")
    assert listing.strip() == ""
