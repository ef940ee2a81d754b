"""Argo's Workflow schema (of the reference version in ../shared/schemas) with unknown keys
forbidden: what the compiler and the broker's trusted workflows are checked against."""

from __future__ import annotations

import copy
import json
from typing import Any

import jsonschema
from hera.workflows import models as m
from shared_dir import schemas_dir

SCHEMA_PATH = schemas_dir() / "argo-workflows-v4.1.2.schema.json"

WORKFLOW_DEF = "io.argoproj.workflow.v1alpha1.Workflow"


def _forbid_unknown(node: Any) -> None:
    """Add additionalProperties: false to every object schema that lists its properties."""
    if isinstance(node, dict):
        if "properties" in node and "additionalProperties" not in node:
            node["additionalProperties"] = False
        for value in node.values():
            _forbid_unknown(value)
    elif isinstance(node, list):
        for value in node:
            _forbid_unknown(value)


def strict_workflow_validator() -> jsonschema.protocols.Validator:
    schema = copy.deepcopy(json.loads(SCHEMA_PATH.read_text()))
    _forbid_unknown(schema["definitions"])
    root = {"$ref": f"#/definitions/{WORKFLOW_DEF}", "definitions": schema["definitions"]}
    cls = jsonschema.validators.validator_for(schema)
    return cls(root)


_VALIDATOR: jsonschema.protocols.Validator | None = None


def assert_valid_workflow(manifest: dict[str, Any]) -> None:
    """Valid against Argo's schema with unknown keys forbidden, and round-trips hera's models."""
    global _VALIDATOR
    if _VALIDATOR is None:
        _VALIDATOR = strict_workflow_validator()
    errors = sorted(_VALIDATOR.iter_errors(manifest), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{list(e.path)}: {e.message}" for e in errors[:10])
    # hera drops unknown keys silently, so a lossless round trip means none were there.
    again = m.Workflow.model_validate(manifest).model_dump(
        exclude_none=True, by_alias=True, mode="json"
    )
    assert again == manifest
