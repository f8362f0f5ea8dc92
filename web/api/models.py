"""`/api/v1/models`: versions, metrics and the current pointer; rollback through the queue."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify

from stockpred.jobs.errors import ErrorKind
from stockpred.jobs.records import Job
from stockpred.ml.registry import ModelRegistry, RegistryError
from stockpred.paths import DataTree
from web.dispatch import accepted, submit, wait_for_job
from web.errors import ApiError
from web.params import json_body, parse_symbol
from web.services import services

bp = Blueprint("models", __name__, url_prefix="/api/v1/models")


def registry() -> ModelRegistry:
    tree = DataTree.from_settings(services().settings)
    return ModelRegistry(tree.ml_models, tree.scalers)


@bp.get("")
def list_models() -> Response:
    """Every symbol with a model: current version, when trained, hold-out summary."""
    reg = registry()
    rows = []
    for symbol in reg.symbols():
        try:
            info = reg.current(symbol)
        except RegistryError as exc:  # listed with what is wrong, so it can be rolled back
            rows.append(
                {
                    "symbol": symbol,
                    "current": reg.current_version(symbol),
                    "versions": len(reg.versions(symbol)),
                    "problem": str(exc),
                }
            )
            continue
        meta = info.metadata if info else {}
        rows.append(
            {
                "symbol": symbol,
                "current": info.version if info else None,
                "versions": len(reg.versions(symbol)),
                "trained_at": meta.get("trained_at"),
                "kind": meta.get("kind"),
                "evaluation": (meta.get("evaluation") or {}).get("summary"),
            }
        )
    return jsonify({"models": rows, "count": len(rows)})


# `<symbol>` matches no "/": GET .../NVDA/rollback is not read as the symbol "NVDA/rollback",
# so each path answers (and advertises in Allow) only the methods the contract gives it.
@bp.get("/<symbol>")
def get_model(symbol: str) -> Response:
    """A symbol's versions (newest first) with their metrics, and which is current."""
    sym = parse_symbol(symbol)
    described = registry().describe(sym)
    if not described["versions"]:
        raise ApiError(404, "no model for symbol", f"{sym} has no trained model")
    return jsonify(described)


@bp.post("/<symbol>/rollback")
def rollback(symbol: str) -> Response:
    """Publish an earlier version (body {"version": ...}; default: the one before current).

    The maintenance worker flips the pointer and drops the symbol's cached predictions (the
    web writes nothing under persistent_data); 202 with the job when it takes longer than the
    prediction wait.
    """
    sym = parse_symbol(symbol)
    target = json_body().get("version")
    if target is not None and not isinstance(target, str):
        raise ApiError(400, "invalid version", "version must be a string")
    job, result = roll_back(sym, target)
    return accepted(job) if result is None else jsonify(result)


def roll_back(symbol: str, target: str | None) -> tuple[Job, dict[str, Any] | None]:
    """Queue a rollback and wait for it: the job and its result (None while it still runs).

    ApiError 404 without a model or target, 409 with nothing to roll back to, 503 on failure.
    """
    reg = registry()
    previous = reg.current_version(symbol)  # None too when the pointer is unreadable
    if previous is None and not reg.versions(symbol):
        raise ApiError(404, "no model for symbol", f"{symbol} has no trained model")
    job = submit(
        kind="rollback",
        task_name="maintenance.rollback_model",
        kwargs={"symbol": symbol, "version": target, "from_version": previous},
        symbol=symbol,
    )
    finished = wait_for_job(job.id, services().settings.predict_wait)
    if finished is None:
        return job, None
    if finished.state == "succeeded" and isinstance(finished.result, dict):
        return finished, finished.result
    error = finished.error or {}
    kind, message = error.get("kind"), error.get("message") or finished.state
    if kind == ErrorKind.NO_MODEL:
        raise ApiError(404, "no model for symbol", message)
    if kind == ErrorKind.ROLLBACK_REFUSED:
        raise ApiError(404 if target is not None else 409, "cannot roll back", message)
    raise ApiError(503, "rollback failed", message)
