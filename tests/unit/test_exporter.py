"""The facts collector behind the workers' /metrics: files of another shape never fail a scrape."""

from __future__ import annotations

import json
import logging
from datetime import timedelta
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from stockpred.infra.clock import utcnow
from stockpred.ledger.database import engine_from_settings
from stockpred.ledger.entries import Forecast
from stockpred.ledger.scoring import score
from stockpred.ledger.store import ForecastLedger
from stockpred.market.daily_cache import DailyCache
from stockpred.ml.registry import ModelRegistry
from stockpred.ops.exporter import REALISED_WINDOW_DAYS, FactsCollector
from stockpred.paths import DataTree
from stockpred.settings import Settings, load_settings
from stockpred.storage.monitor import build_report
from stockpred.telemetry.scrape_failures import scrape_failures


class NoRedis:
    """A Redis that is down: the queue section reports stockpred_redis_up 0."""

    def __getattr__(self, name: str) -> object:
        raise ConnectionError("redis is down")


def add_version(registry: ModelRegistry, symbol: str, metadata: dict[str, object]) -> None:
    def write(model: Path, scaler: Path) -> None:
        model.write_bytes(b"model")
        scaler.write_bytes(b"scaler")

    registry.write_version(symbol, "v1", {"version": "v1", **metadata}, write)
    registry.publish(symbol, "v1")


def scrape(settings: Settings) -> str:
    registry = CollectorRegistry()
    registry.register(FactsCollector(settings, NoRedis()))
    return generate_latest(registry).decode()


def test_edited_metadata_caches_and_reports_cost_their_own_lines_not_the_scrape(
    settings: Settings,
) -> None:
    tree = DataTree.from_settings(settings)
    registry = ModelRegistry(tree.ml_models, tree.scalers)
    good = {"trained_at": "2026-11-20T00:00:00+00:00", "evaluation": {"summary": {"skill": 0.1}}}
    add_version(registry, "GOOD", good)
    add_version(registry, "BADDATE", {"trained_at": "last tuesday"})
    add_version(registry, "BADEVAL", {"evaluation": ["not", "a", "mapping"]})
    cache = DailyCache(tree.daily_cache)
    for symbol in ("GOOD", "ODD"):
        cache.store(
            symbol=symbol,
            source="embedded",
            bars=[["2025-02-14", 1, 2, 1, 1.5, 10]],
            first_date="2025-02-14",
            total_rows=1,
        )
    sidecar = cache.meta_path("ODD")
    sidecar.write_text(json.dumps({**json.loads(sidecar.read_text()), "as_of": "yesterday"}))
    (tree.monitoring / "storage-report.json").write_text(json.dumps({"directories": "?"}))
    (tree.monitoring / "cleanup-report.json").write_text(json.dumps({"removed": 3}))

    text = scrape(settings)

    assert 'stockpred_model_skill{symbol="GOOD"} 0.1' in text
    assert 'stockpred_model_age_seconds{symbol="GOOD"}' in text
    assert 'symbol="BADDATE"' not in text and 'symbol="BADEVAL"' not in text
    assert 'stockpred_data_last_bar_timestamp_seconds{source="embedded",symbol="GOOD"}' in text
    assert 'symbol="ODD"' not in text
    assert "stockpred_redis_up 0.0" in text
    assert "stockpred_backup_count 0.0" in text  # the storage section, without the odd report
    assert build_report(tree, max_backup_age=timedelta(days=1)).last_cleanup_bytes_freed is None


def test_each_symbols_realised_quality_comes_from_the_ledger_at_scrape_time(
    settings: Settings,
) -> None:
    engine = engine_from_settings(settings)  # the SQLite ledger `stockpred setup` migrated
    ledger = ForecastLedger(engine)
    recent = utcnow().date() - timedelta(days=10)
    # (point, naive, actual, interval): model errors 1, 5; naive 2, 2; one close inside of two.
    cases = [(101.0, 100.0, 102.0, (99.0, 103.0)), (97.0, 100.0, 102.0, (98.0, 99.0))]
    for day, (point, naive, actual, (lower, upper)) in enumerate(cases):
        as_of = recent + timedelta(days=day)
        stored = ledger.record(
            Forecast(
                symbol="AAPL",
                as_of=as_of,
                target_date=as_of + timedelta(days=1),
                horizon=1,
                forecaster="lstm",
                model_version="v1",
                point=point,
                naive=naive,
                requested_at=utcnow(),
                lower=lower,
                upper=upper,
                level=0.8,
            )
        )
        ledger.record_scores(
            [score(stored, actual=actual, previous_close=naive, scored_at=utcnow())]
        )
    old = recent - timedelta(days=REALISED_WINDOW_DAYS)
    stored = ledger.record(
        Forecast(
            symbol="AAPL",
            as_of=old,
            target_date=old + timedelta(days=1),
            horizon=1,
            forecaster="lstm",
            model_version="v1",
            point=50.0,
            naive=100.0,
            requested_at=utcnow(),
        )
    )
    ledger.record_scores([score(stored, actual=100.0, previous_close=100.0, scored_at=utcnow())])
    engine.dispose()
    text = scrape(settings)
    assert 'stockpred_forecast_realised_mase{symbol="AAPL"} 1.5' in text  # (1+5)/(2+2)
    assert 'stockpred_forecast_realised_coverage{symbol="AAPL"} 0.5' in text
    assert 'stockpred_forecast_scored{symbol="AAPL"} 2.0' in text  # the old one is outside
    assert 'stockpred_forecast_coverage_scored{symbol="AAPL"} 2.0' in text
    assert 'stockpred_forecast_interval_level{symbol="AAPL"} 0.8' in text


def test_a_ledger_without_tables_costs_its_section_with_a_warning_not_a_traceback(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    bare = load_settings({"STOCKPRED_DATA_DIR": str(tmp_path / "data")})  # never set up
    failures = scrape_failures().labels("ledger_facts")
    before = failures._value.get()
    with caplog.at_level(logging.WARNING):
        text = scrape(bare)
    assert "stockpred_backup_count" in text and "stockpred_forecast_scored" not in text
    assert failures._value.get() == before + 1
    (line,) = [r for r in caplog.records if "ledger_facts" in r.getMessage()]
    assert line.levelno == logging.WARNING and line.exc_info is None
    assert "no such table: forecasts" in line.getMessage()
