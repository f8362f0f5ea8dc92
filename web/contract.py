"""The HTTP contract (web/openapi.json) as the service enforces it on request bodies.

Every JSON body is checked against the schema its operation documents before the view runs:
what the document refuses (a wrong type, a value out of range, a key it does not name) is a
400 naming the first problem, so no view acts on a body the contract forbids. Path and query
values are checked by the views' parsers (web.params) with the rules the document states.
"""

from __future__ import annotations

import functools
import json
import re
from importlib import resources
from typing import Any

from flask import request
from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match

from web.errors import ApiError
from web.params import json_body

MAX_MESSAGE = 200  # a refused value is echoed in the message: keep the answer small


@functools.cache
def openapi_document() -> bytes:
    """The HTTP contract (web/openapi.json), read once per process."""
    return resources.files("web").joinpath("openapi.json").read_bytes()


@functools.cache
def _parsed() -> dict[str, Any]:
    parsed: dict[str, Any] = json.loads(openapi_document())
    return parsed


def openapi_path(rule: str) -> str:
    """A Flask URL rule in the document's spelling: `/tasks/<task_id>` → `/tasks/{task_id}`."""
    return re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule)


@functools.cache
def body_validator(path: str, method: str) -> Draft202012Validator | None:
    """The validator of an operation's JSON request body; None when it documents no body."""
    operation = _parsed()["paths"].get(path, {}).get(method)
    body = (operation or {}).get("requestBody")
    if body is None:
        return None
    schema = body["content"]["application/json"]["schema"]
    # The schema's refs point at #/components/...: validate from a root that carries them.
    return Draft202012Validator({**schema, "components": _parsed()["components"]})


def refuse_what_the_contract_refuses() -> None:
    """Request hook: a body that breaks its operation's documented schema is a 400."""
    rule = request.url_rule
    if rule is None:
        return  # no route: the routing error is answered as it is
    validator = body_validator(openapi_path(rule.rule), request.method.lower())
    if validator is None:
        return
    error = best_match(validator.iter_errors(json_body()))
    if error is not None:
        where = "/".join(str(part) for part in error.absolute_path)
        message = f"{where}: {error.message}" if where else error.message
        if len(message) > MAX_MESSAGE:
            message = message[: MAX_MESSAGE - 1] + "…"
        raise ApiError(400, "invalid body", f"the body does not match the contract: {message}")
