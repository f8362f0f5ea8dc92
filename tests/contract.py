"""Checks answers against the OpenAPI document the app serves (web/openapi.json)."""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator

DOCUMENT = Path(__file__).resolve().parents[1] / "web" / "openapi.json"


@functools.cache
def document() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DOCUMENT.read_text())
    return loaded


def assert_conforms(path: str, method: str, status: int, body: Any) -> None:
    """The body matches the schema the document gives for (path, method, status)."""
    responses = document()["paths"][path][method.lower()]["responses"]
    assert str(status) in responses, f"{method} {path} does not document status {status}"
    response = responses[str(status)]
    if "$ref" in response:  # an answer shared by many operations, in #/components/responses
        response = document()["components"]["responses"][response["$ref"].rsplit("/", 1)[1]]
    content = response.get("content", {})
    schema = content.get("application/json", {}).get("schema")
    assert schema is not None, f"{method} {path} {status} documents no JSON body"
    # Refs point at #/components/...: validate from a root that carries the components.
    root = {**schema, "components": document()["components"]}
    errors = sorted(Draft202012Validator(root).iter_errors(body), key=lambda e: list(e.path))
    assert not errors, [f"{list(e.path)}: {e.message}" for e in errors[:5]]
