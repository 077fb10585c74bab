"""docs/api.md's field reference is what ``tierserve.dev.api_doc`` generates from the CRDs:
fails when it is stale, when a field of either kind has no row, or when a field has no
description."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.unit.test_crd_docs import _properties, _root
from tierserve.core.api.crd import all_crds
from tierserve.dev import api_doc


def test_docs_api_md_field_reference_is_fresh() -> None:
    current = api_doc.OUT.read_text()
    assert current == api_doc.generate(current), (
        "docs/api.md's field reference is stale: run python -m tierserve.dev.api_doc "
        "(make crds)")


@pytest.mark.parametrize("name", list(all_crds()))
def test_every_field_has_a_row(name: str) -> None:
    text = api_doc.OUT.read_text()
    rows = {line.split("`")[1] for line in text.splitlines() if line.startswith("| `")}
    fields = [p.lstrip(".") for p, _ in _properties(_root(name))]
    missing = [f for f in fields if f not in rows and f not in api_doc.SKIPPED]
    assert not missing, f"{name}: fields without a row in docs/api.md: {missing}"


def _schema(**props: Any) -> dict[str, Any]:
    return {"type": "object", "properties": {
        "spec": {"type": "object", "description": "the spec", "required": ["port"],
                 "properties": props}}}


def test_a_field_without_description_is_an_error() -> None:
    schema = _schema(port={"type": "integer", "description": "its port"},
                     mode={"type": "string"})
    with pytest.raises(api_doc.MissingDescription, match=r"spec\.mode has no description"):
        list(api_doc.rows(schema))


def test_rows_carry_type_limits_required_and_default() -> None:
    schema = _schema(
        port={"type": "integer", "minimum": 1, "maximum": 65535, "default": 8080,
              "description": "its | port"},
        tags={"type": "array", "maxItems": 4, "items": {"type": "string", "minLength": 1},
              "description": "tags"},
        gpus={"x-kubernetes-int-or-string": True, "default": "auto", "description": "gpus"},
        env={"type": "array", "description": "env", "items": {
            "type": "object", "properties": {"name": {"type": "string", "enum": ["A", "B"],
                                                      "description": "a name"}}}})
    rows = {r.path: r for r in api_doc.rows(schema)}
    assert rows["spec.port"].type == "integer (>= 1, <= 65535), required"
    assert rows["spec.port"].default == "`8080`"
    assert rows["spec.tags"].type == "list of string (1+ chars) (<= 4 items)"
    assert rows["spec.gpus"].type == "integer or string"
    assert rows["spec.env[].name"].type == "one of `A`, `B`"


def test_splice_needs_the_markers() -> None:
    with pytest.raises(api_doc.NoMarkers, match="BEGIN field reference"):
        api_doc.splice("no markers here\n", "block")
    text = f"head\n{api_doc.BEGIN}\nold\n{api_doc.END}\ntail\n"
    assert api_doc.splice(text, "NEW") == "head\nNEW\ntail\n"


def test_check_mode_reports_a_stale_file(tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "api.md"
    out.write_text(f"# API\n\n{api_doc.BEGIN}\nold rows\n{api_doc.END}\n")
    assert api_doc.main(["--check", "--out", str(out)]) == 1
    assert "is stale" in capsys.readouterr().err
    assert api_doc.main(["--out", str(out)]) == 0
    assert api_doc.main(["--check", "--out", str(out)]) == 0
    assert out.read_text().startswith("# API\n\n" + api_doc.BEGIN)
