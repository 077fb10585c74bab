"""docs/values.md is what ``tierserve.dev.values_doc`` generates from the chart's schema
and values: fails when it is stale, when a value has no description, or when a value in
values.yaml has no row."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from tierserve.dev import values_doc


def test_docs_values_md_is_fresh() -> None:
    assert values_doc.OUT.read_text() == values_doc.generate(), (
        "docs/values.md is stale: run python -m tierserve.dev.values_doc (make values-doc)")


def _leaves(values: Any, path: tuple[str, ...] = ()) -> list[str]:
    if isinstance(values, dict) and values and path != ("global",):
        return [leaf for k, v in values.items() for leaf in _leaves(v, (*path, k))]
    return [".".join(path)]


def test_every_value_in_values_yaml_has_a_row() -> None:
    values = yaml.safe_load((values_doc.CHART / "values.yaml").read_text())
    text = values_doc.OUT.read_text()
    rows = {line.split("`")[1] for line in text.splitlines() if line.startswith("| `")}
    for leaf in _leaves(values):  # the row is the value itself or an object holding it
        assert any(leaf == r or leaf.startswith(r + ".") for r in rows), leaf


def _schema(**props: Any) -> dict[str, Any]:
    return {"type": "object", "properties": {
        "router": {"type": "object", "description": "the router",
                   "additionalProperties": False, "properties": props}}}


def test_a_value_without_description_is_an_error() -> None:
    schema = _schema(port={"type": "integer", "description": "its port"},
                     replicas={"type": "integer"})
    with pytest.raises(values_doc.MissingDescription, match=r"router\.replicas has no description"):
        values_doc.render(schema, {})


def test_rows_carry_type_limits_and_default() -> None:
    schema = _schema(port={"type": "integer", "minimum": 1024, "description": "its | port"},
                     mode={"enum": ["a", "b"], "description": "the mode"})
    text = values_doc.render(schema, {"router": {"port": 8080}})
    assert "| `router.port` | integer (>= 1024) | `8080` | its \\| port |" in text
    assert '| `router.mode` | one of `"a"`, `"b"` |  | the mode |' in text
    assert "## `router`\n\nthe router\n" in text


def test_check_mode_reports_a_stale_file(tmp_path: Any, capsys: pytest.CaptureFixture[str]
                                         ) -> None:
    out = tmp_path / "values.md"
    out.write_text("old\n")
    assert values_doc.main(["--check", "--out", str(out)]) == 1
    assert "is stale" in capsys.readouterr().err
    assert values_doc.main(["--out", str(out)]) == 0
    assert values_doc.main(["--check", "--out", str(out)]) == 0
