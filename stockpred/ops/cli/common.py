"""What the command groups share: settings, symbols, the local parts and the service's jobs."""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

import click
import redis

from stockpred.infra.redis_client import connect
from stockpred.jobs.locks import pointer_lock
from stockpred.market.symbols import InvalidSymbol, normalize_symbol
from stockpred.ml.registry import ModelRegistry
from stockpred.ops.api_client import ApiClient
from stockpred.settings import Settings, SettingsError, get_settings

if TYPE_CHECKING:
    from stockpred.market.service import MarketData

log = logging.getLogger(__name__)


def cli_settings() -> Settings:
    """The effective settings, or a clear error naming the invalid one."""
    try:
        return get_settings()
    except SettingsError as exc:
        raise click.ClickException(f"invalid setting: {exc}") from None


def parse_symbol(raw: str) -> str:
    """A normalised symbol, or a usage error naming SYMBOL."""
    try:
        return normalize_symbol(raw)
    except InvalidSymbol as exc:
        raise click.BadParameter(str(exc), param_hint="SYMBOL") from None


def local_market(settings: Settings) -> MarketData:
    """Market data for work done in this process (no Redis: no shared rate limit)."""
    # Deferred: pandas and pyarrow load only for the commands that read prices.
    from stockpred.market.factory import build_market_data

    return build_market_data(settings)


def model_registry(settings: Settings) -> ModelRegistry:
    """The registry; publish and rollback take the workers' Redis lock when Redis answers."""
    client = redis_if_up(settings)
    lock = pointer_lock(client) if client is not None else None
    return ModelRegistry(settings.ml_model_path, settings.scalers_path, lock)


def redis_if_up(settings: Settings) -> redis.Redis | None:
    """A Redis client when Redis answers a ping, else None."""
    client = connect(settings)
    try:
        client.ping()
    except redis.RedisError as exc:
        log.debug("Redis did not answer (%s); going on without it", exc)
        return None
    return client


def follow_job(client: ApiClient, job_id: str) -> dict[str, Any]:
    """Poll a job, drawing its epochs as a progress bar, until it finishes."""
    bar = None
    shown = 0
    try:
        while True:
            status, job = client.call("GET", f"/api/v1/tasks/{job_id}")
            if status != 200:
                raise click.ClickException(f"job {job_id}: {job.get('error')} {job.get('detail')}")
            progress = job.get("progress") or {}
            if isinstance(progress, dict) and progress.get("epochs"):
                if bar is None:
                    bar = click.progressbar(length=int(progress["epochs"]), label="training")
                    bar.__enter__()
                epoch = int(progress.get("epoch") or 0)
                bar.label = (
                    f"loss {progress.get('loss') or 0:.4f} val {progress.get('val_loss') or 0:.4f}"
                )
                bar.update(epoch - shown)
                shown = epoch
            if job.get("state") in ("succeeded", "failed", "cancelled"):
                return job
            time.sleep(1)
    finally:
        if bar is not None:
            bar.__exit__(None, None, None)
