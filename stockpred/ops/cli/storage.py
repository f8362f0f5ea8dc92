"""`stockpred storage ...`: the storage test, backups, restores, cleanup, monitoring, keys."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any

import click
from cryptography.fernet import Fernet

from stockpred.ops.api_client import ApiClient, ApiUnavailable
from stockpred.ops.cli.common import cli_settings, follow_job, redis_if_up
from stockpred.paths import DataTree
from stockpred.settings import Settings
from stockpred.storage.catalog import describe_history
from stockpred.storage.check import check_storage, human_bytes
from stockpred.storage.errors import BackupError
from stockpred.storage.service import StorageService

_CATEGORIES_HELP = "Comma-separated: models, ml_cache, stock_data, config, logs, redis, monitoring."


@click.group()
def storage() -> None:
    """Storage of persistent_data: checks and usage."""


@storage.command("test")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def storage_test(as_json: bool) -> None:
    """Check every folder exists, is writable and not 777; print usage. Exit 1 on a problem."""
    settings = cli_settings()
    report = check_storage(DataTree.from_settings(settings))
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=2))
    else:
        click.echo(f"Testing persistent storage at {report.root}")
        for item in report.directories:
            mark = "ok  " if item.ok else "FAIL"
            click.echo(f"  {mark} {item.name:34} {item.problem or ''}".rstrip())
        click.echo(
            f"Storage usage: {human_bytes(report.used_bytes)} in {report.file_count} files; "
            f"free: {human_bytes(report.free_bytes)}"
        )
        if report.ok:
            click.echo("Persistent storage test passed.")
        else:
            click.echo(
                f"Persistent storage test FAILED: {len(report.problems)} problem(s).", err=True
            )
            click.echo("Run `make storage-setup` to create missing folders.", err=True)
    sys.exit(0 if report.ok else 1)


def _storage_service(settings: Settings) -> StorageService:
    """The storage service with a Redis connection when one answers (for the snapshot)."""
    return StorageService(settings, redis_if_up(settings))


def _via_queue(path: str, body: dict[str, object]) -> None:
    """Submit a storage job through the running service and wait for its result."""
    client = ApiClient(cli_settings())
    try:
        status, answer = client.call("POST", path, body)
        if status != 202:
            raise click.ClickException(
                f"HTTP {status}: {answer.get('error')}: {answer.get('detail')}"
            )
        click.echo(f"queued job {answer['task_id']}")
        job = follow_job(client, str(answer["task_id"]))
    except ApiUnavailable as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(json.dumps(job.get("result") or job.get("error"), indent=2, default=str))
    if job.get("state") != "succeeded":
        sys.exit(1)


def _bytes_bar(label: str) -> tuple[Any, Callable[[int, int], None]]:
    """A click progress bar fed with (done, total) byte counts."""
    bar = click.progressbar(length=1, label=label, show_pos=False)
    shown = [0]

    def update(done: int, total: int) -> None:
        bar.length = max(total, 1)
        bar.update(done - shown[0])
        shown[0] = done

    return bar, update


def _storage_call(run: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    try:
        result = run()
    except (BackupError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    return result


def _split(raw: str | None) -> list[str] | None:
    return [c.strip() for c in raw.split(",") if c.strip()] if raw else None


@storage.command("backup")
@click.option("--categories", default=None, help=_CATEGORIES_HELP)
@click.option("--incremental", is_flag=True, help="Store only files changed since the newest full.")
@click.option("--base", default=None, help="Incremental against this backup.")
@click.option("--encrypt/--no-encrypt", default=None, help="Default: when a key is configured.")
@click.option("--queue", is_flag=True, help="Run on the maintenance worker instead.")
def storage_backup(
    categories: str | None, incremental: bool, base: str | None, encrypt: bool | None, queue: bool
) -> None:
    """Back up persistent_data to backups/stock_prediction_backup_YYYYMMDD_HHMMSS.tar.gz."""
    if queue:
        body: dict[str, object] = {
            "categories": _split(categories),
            "incremental": incremental,
            "base": base,
        }
        if encrypt is not None:
            body["encrypt"] = encrypt
        _via_queue("/api/v1/storage/backup", body)
        return
    service = _storage_service(cli_settings())
    bar, update = _bytes_bar("backing up")
    with bar:
        result = _storage_call(
            lambda: service.backup(
                categories=_split(categories),
                base=base,
                incremental=incremental,
                encrypt=encrypt,
                progress=update,
            )
        )
    click.echo(
        f"Backup completed: {result['path']} ({result['size']} bytes, "
        f"{result['files']} files, {result['kind']})"
    )
    if result.get("skipped"):
        click.echo(f"Skipped: {result['skipped']}", err=True)


@storage.command("restore")
@click.argument("backup", required=False)
@click.option("--categories", default=None, help=_CATEGORIES_HELP)
@click.option("--dry-run", is_flag=True, help="List what would change; change nothing.")
@click.option(
    "--allow-unencrypted",
    is_flag=True,
    help="Restore a backup that is not encrypted although BACKUP_ENCRYPTION_KEY is set.",
)
@click.option(
    "--restore-secrets",
    is_flag=True,
    help="Bring back the backup's secrets in persistent.env (default: keep the current ones).",
)
@click.option("--queue", is_flag=True, help="Run on the maintenance worker instead.")
def storage_restore(
    backup: str | None,
    *,
    categories: str | None,
    dry_run: bool,
    allow_unencrypted: bool,
    restore_secrets: bool,
    queue: bool,
) -> None:
    """Verify every checksum, then restore BACKUP (default: the newest) without downtime."""
    if queue:
        if allow_unencrypted or restore_secrets:
            # Both weaken a safeguard: an operator on this host decides, not an HTTP caller.
            raise click.UsageError(
                "--allow-unencrypted and --restore-secrets apply to a restore in this process "
                "only; leave out --queue"
            )
        _via_queue(
            "/api/v1/storage/restore",
            {"backup": backup, "categories": _split(categories), "dry_run": dry_run},
        )
        return
    service = _storage_service(cli_settings())
    result = _storage_call(
        lambda: service.restore(
            name=backup,
            categories=_split(categories),
            dry_run=dry_run,
            allow_unencrypted=allow_unencrypted,
            restore_secrets=restore_secrets,
        )
    )
    changed, added = result["changed"], result["added"]
    assert isinstance(changed, list) and isinstance(added, list)
    verb = "would change" if dry_run else "changed"
    click.echo(
        f"{result['name']}: {verb} {len(changed)} file(s), "
        f"{'would add' if dry_run else 'added'} {len(added)}, "
        f"{result['unchanged']} already identical"
    )
    for path in changed + added:
        click.echo(f"  {path}")
    if result.get("safety_backup"):
        click.echo(f"Safety backup of what was replaced: {result['safety_backup']}")
    if result.get("secrets_kept"):
        click.echo(
            f"Kept the current {', '.join(result['secrets_kept'])} in persistent.env: the "
            "backup holds other values (--restore-secrets brings those back).",
            err=True,
        )
    elif result.get("secrets_differed"):
        click.echo(
            f"Brought back the backup's {', '.join(result['secrets_differed'])}: restart the "
            "service for them to take effect.",
            err=True,
        )
    for staged in result.get("staged") or []:
        click.echo(
            f"Redis snapshot staged at {staged}: stop Redis, put it in place as "
            "dump.rdb with appendonly off for one start, then re-enable AOF."
        )


@storage.command("cleanup")
@click.option("--dry-run", is_flag=True, help="List what would be removed.")
@click.option("--caches-only", is_flag=True, help="Only expired cache entries.")
@click.option("--queue", is_flag=True, help="Run on the maintenance worker instead.")
def storage_cleanup(dry_run: bool, caches_only: bool, queue: bool) -> None:
    """Remove expired caches, old logs and predictions, orphaned temp files."""
    scope = "caches" if caches_only else "all"
    if queue:
        _via_queue("/api/v1/storage/cleanup", {"dry_run": dry_run, "scope": scope})
        return
    service = _storage_service(cli_settings())
    result = _storage_call(lambda: service.cleanup(dry_run=dry_run, scope=scope))
    removed = result["removed"]
    assert isinstance(removed, list)
    for item in removed:
        click.echo(f"  {item['rule']:11} {item['bytes']:>10}  {item['path']}")
    click.echo(
        f"{'Would free' if dry_run else 'Freed'} {result['bytes_freed']} bytes in "
        f"{len(removed)} file(s)"
    )


@storage.command("monitor")
@click.option("--json", "as_json", is_flag=True, help="Print the JSON report.")
@click.option("--queue", is_flag=True, help="Run on the maintenance worker instead.")
def storage_monitor(as_json: bool, queue: bool) -> None:
    """Usage per folder, free disk, backups, caches and health checks. Exit 1 if unhealthy."""
    if queue:
        try:
            _, report = ApiClient(cli_settings()).call("GET", "/api/v1/storage/status?refresh=true")
        except ApiUnavailable as exc:
            raise click.ClickException(str(exc)) from None
    else:
        service = _storage_service(cli_settings())
        report = service.monitor()
    if as_json:
        click.echo(json.dumps({k: v for k, v in report.items() if k != "table"}, indent=2))
    else:
        click.echo(report.get("table") or json.dumps(report, indent=2))
    sys.exit(0 if report.get("ok") else 1)


@storage.command("verify")
@click.argument("backup", required=False)
def storage_verify(backup: str | None) -> None:
    """Check every checksum of BACKUP (default: the newest) and what it depends on."""
    service = _storage_service(cli_settings())
    result = _storage_call(lambda: service.verify(backup))
    for problem in result["problems"]:
        click.echo(f"  {problem}", err=True)
    click.echo(
        f"{result['name']}: {'verified' if result['ok'] else 'FAILED'} "
        f"({result['files']} files, {result['bytes']} bytes in "
        f"{len(result['archives'])} archive(s), {result['seconds']:.2f}s)"
    )
    sys.exit(0 if result["ok"] else 1)


@storage.command("list")
def storage_list() -> None:
    """Backups, newest first."""
    for row in describe_history(DataTree.from_settings(cli_settings()).backups):
        click.echo(
            f"{row['name']}  {row['kind']:11} {row['size']:>12} bytes  "
            f"{row['age_seconds'] // 3600:>5}h old  "
            f"{'encrypted ' if row['encrypted'] else ''}"
            f"{'verified' if row['verified_at'] else ''}"
        )


@storage.command("keygen")
def storage_keygen() -> None:
    """Print a new BACKUP_ENCRYPTION_KEY (put it in persistent.env and keep a copy elsewhere)."""
    click.echo(Fernet.generate_key().decode())
