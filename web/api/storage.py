"""`/api/v1/storage/*`: status, backup history, and queued backup, restore, cleanup, verify."""

from __future__ import annotations

import json
from typing import Any

from flask import Blueprint, Response, jsonify, request

from stockpred.jobs.records import Job
from stockpred.paths import BACKUP_CATEGORIES, DataTree
from stockpred.storage.catalog import describe_history, list_backups, load_info
from stockpred.storage.errors import BackupError
from stockpred.storage.monitor import latest_report
from web.dispatch import accepted, submit, wait_for_job
from web.errors import ApiError
from web.params import json_body, parse_bool
from web.services import services

bp = Blueprint("storage", __name__, url_prefix="/api/v1/storage")


def _tree() -> DataTree:
    return DataTree.from_settings(services().settings)


def _newest_backup() -> str:
    """The newest backup's name, fixed when the job is submitted (a redelivery keeps it)."""
    found = list_backups(_tree().backups)
    if not found:
        raise ApiError(404, "unknown backup", "there is no backup yet: POST /api/v1/storage/backup")
    return found[-1].name


def submit_once(kind: str, task_name: str, kwargs: dict[str, Any]) -> Job:
    """Queue storage work unless the same work is already waiting or running (then that job)."""
    return submit(
        kind=kind,
        task_name=task_name,
        kwargs=kwargs,
        dedupe_key=f"{kind}:{json.dumps(kwargs, sort_keys=True)}",
        dedupe_seconds=int(services().settings.job_ttl.total_seconds()),
        pending_only=True,
    )


def _submit_once(kind: str, task_name: str, kwargs: dict[str, Any]) -> Response:
    return accepted(submit_once(kind, task_name, kwargs))


def queue_backup(kwargs: dict[str, Any]) -> Job:
    """Queue a backup with checked arguments (categories, base, incremental, encrypt)."""
    return submit_once("backup", "maintenance.backup", kwargs)


def _categories(raw: Any) -> list[str] | None:
    if raw is None:
        return None
    if not isinstance(raw, list) or not raw or any(c not in BACKUP_CATEGORIES for c in raw):
        raise ApiError(
            400,
            "invalid categories",
            f"categories must be a non-empty list drawn from {list(BACKUP_CATEGORIES)}",
        )
    return list(dict.fromkeys(raw))


def _backup_name(raw: Any) -> str | None:
    if raw is None:
        return None
    if not isinstance(raw, str) or not raw or "/" in raw or raw.startswith("."):
        raise ApiError(
            400,
            "invalid backup",
            "backup must be a backup name such as stock_prediction_backup_20250801_120000(.tar.gz)",
        )
    try:
        return load_info(_tree().backups, raw).name
    except BackupError as exc:
        raise ApiError(404, "unknown backup", str(exc)) from None


@bp.get("/status")
def status() -> Response:
    """The latest storage monitor report; ?refresh=true measures again first."""
    refresh = parse_bool("refresh", request.args.get("refresh"))
    report = None if refresh else latest_report(_tree())
    if report is not None:
        return jsonify(report)
    job = submit(
        kind="storage-monitor",
        task_name="maintenance.monitor",
        kwargs={},
        dedupe_key="storage-monitor",
        dedupe_seconds=10,
    )
    finished = wait_for_job(job.id, services().settings.predict_wait)
    if finished is None:
        return accepted(job)
    if finished.state != "succeeded" or not isinstance(finished.result, dict):
        message = (finished.error or {}).get("message") or f"the monitor job was {finished.state}"
        raise ApiError(503, "storage monitor failed", message)
    return jsonify(finished.result)


@bp.get("/backup")
def history() -> Response:
    """Backups, newest first: size, age, kind, base, encryption, last verification."""
    rows = describe_history(_tree().backups)
    return jsonify({"backups": rows, "count": len(rows), "keep": services().settings.backup_keep})


@bp.post("/backup")
def start_backup() -> Response:
    """Queue a backup: {"categories": [...], "incremental": bool, "base": name, "encrypt": bool}."""
    body = json_body()
    kwargs: dict[str, Any] = {
        "categories": _categories(body.get("categories")),
        "base": _backup_name(body.get("base")),
        "incremental": parse_bool("incremental", body.get("incremental")),
    }
    if "encrypt" in body:
        encrypt = parse_bool("encrypt", body.get("encrypt"))
        if encrypt and not services().settings.backup_encryption_key:
            raise ApiError(
                400,
                "encryption unavailable",
                "set BACKUP_ENCRYPTION_KEY first (make one with `stockpred storage keygen`)",
            )
        kwargs["encrypt"] = encrypt
    return accepted(queue_backup(kwargs))


@bp.post("/restore")
def start_restore() -> Response:
    """Queue a verified restore: {"backup": name (default newest), "categories", "dry_run"}."""
    body = json_body()
    categories = _categories(body.get("categories"))
    dry_run = parse_bool("dry_run", body.get("dry_run"))
    kwargs = {
        "backup": _backup_name(body.get("backup")) or _newest_backup(),
        "categories": categories,
        "dry_run": dry_run,
    }
    return _submit_once("restore", "maintenance.restore", kwargs)


@bp.post("/cleanup")
def start_cleanup() -> Response:
    """Queue a cleanup: {"dry_run": bool, "scope": "all" | "caches"}."""
    body = json_body()
    scope = body.get("scope", "all")
    if scope not in ("all", "caches"):
        raise ApiError(400, "invalid scope", "scope must be all or caches")
    kwargs = {"dry_run": parse_bool("dry_run", body.get("dry_run")), "scope": scope}
    return _submit_once("cleanup", "maintenance.cleanup", kwargs)


@bp.post("/verify")
def start_verify() -> Response:
    """Queue a verification of every checksum of a backup: {"backup": name (default newest)}."""
    kwargs = {"backup": _backup_name(json_body().get("backup")) or _newest_backup()}
    return _submit_once("verify", "maintenance.verify_backup", kwargs)
