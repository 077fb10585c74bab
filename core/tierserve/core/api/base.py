"""Shared pieces of the API types: camelCase models and cross-field rules.

A cross-field rule is declared once as a :class:`Rule`: its CEL expression goes into the
CRD (``x-kubernetes-validations``) so the API server enforces it at ``kubectl apply``,
and its Python predicate runs in :func:`check_rules` so ``tierserve render`` and the
operator report the very same message without a cluster. The shared bad-manifest table
(``tests/data/bad_manifests.yaml``) checks both sides give the same message.

A field that must not change once set carries a CEL *transition* rule (:func:`immutable`,
``self == oldSelf``). Only the API server can check it, on an update: ``render`` sees one
object, never its previous version (``tests/data/bad_changes.yaml`` holds their cases).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, GetJsonSchemaHandler, model_validator
from pydantic.alias_generators import to_camel
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema


@dataclass(frozen=True)
class Rule:
    """A cross-field validation rule: CEL for the API server, a predicate for Python."""

    cel: str
    message: str
    check: Callable[[Any], bool]
    field_path: str | None = None  # CEL fieldPath, e.g. ".maxReplicas"
    reason: str | None = None  # e.g. "FieldValueForbidden"

    def to_crd(self) -> dict[str, str]:
        out = {"rule": self.cel, "message": self.message}
        if self.field_path:
            out["fieldPath"] = self.field_path
        if self.reason:
            out["reason"] = self.reason
        return out


def immutable(message: str) -> dict[str, Any]:
    """``json_schema_extra`` of a field the API server refuses to change once stored.

    ``message`` says what to do instead (the update is refused with it). Inside a list,
    the list must be a map (``x-kubernetes-list-type: map``) so the API server can pair
    each item with its previous version by key.
    """
    return {"x-kubernetes-validations": [{"rule": "self == oldSelf", "message": message}]}


class RuleViolation(ValueError):
    """A cross-field rule failed; ``str()`` is the rule's message."""

    def __init__(self, rule: Rule) -> None:
        super().__init__(rule.message)
        self.rule = rule


class ApiModel(BaseModel):
    """Base of every API type: camelCase on the wire, unknown fields rejected."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        frozen=True,
    )
    RULES: ClassVar[tuple[Rule, ...]] = ()

    @model_validator(mode="after")
    def _check_rules(self) -> ApiModel:
        for rule in self.RULES:
            if not rule.check(self):
                raise RuleViolation(rule)
        return self

    @classmethod
    def __get_pydantic_json_schema__(
        cls, core_schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        schema = handler(core_schema)
        target = handler.resolve_ref_schema(schema)
        if cls.RULES:
            target["x-kubernetes-validations"] = [r.to_crd() for r in cls.RULES]
        return schema

    def wire(self) -> dict[str, Any]:
        """The object as it appears in a manifest (camelCase, unset fields omitted)."""
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")
