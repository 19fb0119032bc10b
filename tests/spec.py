"""The vendor's OpenAPI (Swagger 2.0) contract, loaded for tests."""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
CANDIDATES = [
    ROOT / "api" / "ctct-v3-partner-openapi.json",
    ROOT.parent / "shared" / "api" / "ctct-v3-partner-openapi.json",
]


@functools.cache
def load() -> dict[str, Any]:
    for path in CANDIDATES:
        if path.exists():
            return json.loads(path.read_text())  # type: ignore[no-any-return]
    raise FileNotFoundError("ctct-v3-partner-openapi.json not found in api/ or ../shared/api/")


def operation(operation_id: str) -> tuple[str, str, dict[str, Any]]:
    for path, item in load()["paths"].items():
        for method, op in item.items():
            if isinstance(op, dict) and op.get("operationId") == operation_id:
                return method.upper(), path, op
    raise KeyError(operation_id)


def with_definitions(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` as a root document whose ``#/definitions/...`` refs resolve."""
    return {**schema, "definitions": load()["definitions"]}


def body_schema(operation_id: str) -> dict[str, Any]:
    _, _, op = operation(operation_id)
    (param,) = [p for p in op.get("parameters", []) if p.get("in") == "body"]
    return with_definitions(param["schema"])


def response_schema(operation_id: str, status: str) -> dict[str, Any]:
    _, _, op = operation(operation_id)
    return with_definitions(op["responses"][status]["schema"])


def resolve(schema: dict[str, Any]) -> dict[str, Any]:
    """Follow a top-level ``$ref`` into the definitions."""
    ref = schema.get("$ref")
    if ref:
        return load()["definitions"][ref.rsplit("/", 1)[1]]  # type: ignore[no-any-return]
    return schema


def inline(schema: Any) -> Any:
    """``schema`` with every ``#/definitions/...`` ref replaced by its definition (the spec has no cycles),
    for tools such as hypothesis-jsonschema that want a self-contained schema."""
    if isinstance(schema, list):
        return [inline(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    if "$ref" in schema:  # its siblings are ignored, as in Draft 4
        return inline(resolve(schema))
    return {k: inline(v) for k, v in schema.items() if k != "definitions"}


def success_responses() -> list[tuple[str, str]]:
    """``(operation_id, status)`` of every 2xx response that has a body schema."""
    return [
        (op["operationId"], status)
        for item in load()["paths"].values()
        for op in item.values()
        if isinstance(op, dict)
        for status, response in op.get("responses", {}).items()
        if status.startswith("2") and "schema" in response
    ]
