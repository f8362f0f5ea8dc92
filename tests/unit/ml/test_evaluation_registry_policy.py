"""Metrics against the naive baseline, the registry's publish/rollback/prune, the retrain policy."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from stockpred.ml.config import MLConfig
from stockpred.ml.evaluation import Evaluation, evaluate
from stockpred.ml.policy import retrain_reason
from stockpred.ml.predict import trading_signal
from stockpred.ml.registry import CurrentVersions, DamagedVersion, ModelRegistry, RegistryError


def test_a_perfect_forecast_has_skill_one_and_full_confidence() -> None:
    rng = np.random.default_rng(3)
    actual = rng.normal(0, 0.02, size=(50, 3)).cumsum(axis=1)
    result = evaluate(actual, actual, np.full(50, 100.0), rng.normal(0, 0.02, 50), band=0.01)
    assert result.model.rmse == 0 and result.skill == 1.0
    assert result.confidence_by_horizon == [1.0, 1.0, 1.0]
    assert result.naive.rmse > 0


def test_the_naive_forecast_scores_zero_skill_and_confidence_tracks_errors() -> None:
    rng = np.random.default_rng(4)
    actual = rng.normal(0, 0.02, size=(200, 2))
    naive_like = np.zeros_like(actual)
    result = evaluate(naive_like, actual, np.full(200, 50.0), rng.normal(0, 0.02, 200), 0.01)
    assert result.skill == pytest.approx(0.0)
    expected_within = np.mean(np.abs(np.exp(actual[:, 0]) - 1) / np.exp(actual[:, 0]) <= 0.01)
    assert result.confidence_by_horizon[0] == pytest.approx(expected_within)
    assert 0 < result.confidence_by_horizon[0] < 1
    low, high = result.interval_by_horizon[0]
    assert low < 0 < high
    assert Evaluation.from_dict(json.loads(json.dumps(result.to_dict()))) == result


@pytest.mark.parametrize(
    ("predicted", "signal"), [(101.0, "BUY"), (100.5, "HOLD"), (99.0, "SELL"), (99.5, "HOLD")]
)
def test_the_trading_signal_follows_the_thresholds(predicted: float, signal: str) -> None:
    assert trading_signal(100.0, predicted, 1.01, 0.99) == signal


def registry(tmp_path: Path) -> ModelRegistry:
    return ModelRegistry(tmp_path / "ml_models", tmp_path / "scalers")


def add(reg: ModelRegistry, version: str, publish: bool = True) -> None:
    def write(model: Path, scaler: Path) -> None:
        model.write_bytes(b"model " + version.encode())
        scaler.write_bytes(b"scaler")

    reg.write_version("ACME", version, {"version": version, "trained_at": "2026-01-01"}, write)
    if publish:
        reg.publish("ACME", version)


def test_versions_publish_roll_back_and_prune_but_never_the_current(tmp_path: Path) -> None:
    reg = registry(tmp_path)
    for version in ("v1", "v2", "v3"):
        add(reg, version)
    assert reg.current_version("ACME") == "v3"
    assert reg.rollback("ACME") == "v2"
    assert reg.rollback("ACME", "v3") == "v3"
    with pytest.raises(RegistryError, match="no version"):
        reg.rollback("ACME", "v9")
    reg.publish("ACME", "v1")
    assert reg.prune("ACME", keep=1) == ["v2"]
    assert reg.versions("ACME") == ["v1", "v3"]
    described = reg.describe("ACME")
    assert described["current"] == "v1" and [v["version"] for v in described["versions"]] == [
        "v3",
        "v1",
    ]


def test_a_crash_while_writing_leaves_no_version_and_the_current_untouched(tmp_path: Path) -> None:
    reg = registry(tmp_path)
    add(reg, "v1")

    def explode(model: Path, scaler: Path) -> None:
        model.write_bytes(b"half")
        raise OSError("disk full")

    with pytest.raises(OSError):
        reg.write_version("ACME", "v2", {}, explode)
    assert reg.versions("ACME") == ["v1"] and reg.current_version("ACME") == "v1"
    assert not [p for p in (tmp_path / "ml_models" / "ACME").iterdir() if p.name.startswith(".")]


def test_an_incomplete_version_is_not_listed_or_publishable(tmp_path: Path) -> None:
    reg = registry(tmp_path)
    add(reg, "v1")
    (tmp_path / "ml_models" / "ACME" / "v2").mkdir()
    assert reg.versions("ACME") == ["v1"]
    with pytest.raises(RegistryError):
        reg.publish("ACME", "v2")


def test_rollback_with_nothing_older_is_refused(tmp_path: Path) -> None:
    reg = registry(tmp_path)
    add(reg, "v1")
    with pytest.raises(RegistryError, match="older"):
        reg.rollback("ACME")


def test_an_unreadable_pointer_is_damage_on_the_hot_path_and_none_for_management(
    tmp_path: Path,
) -> None:
    reg = registry(tmp_path)
    add(reg, "v1")
    add(reg, "v2")
    (reg.models_dir / "ACME" / "current").write_bytes(b"\xff\xfe garbage")
    with pytest.raises(DamagedVersion, match="ACME `current` pointer is unreadable"):
        CurrentVersions(reg.models_dir).get("ACME")
    assert reg.current_version("ACME") is None
    assert reg.rollback("ACME") == "v2"  # with no readable current, the newest version
    assert CurrentVersions(reg.models_dir).get("ACME") == "v2"


@pytest.mark.parametrize("metadata", ["{not json", "[]", "\udcff"])
def test_unreadable_metadata_is_a_damaged_version_shown_in_the_description(
    tmp_path: Path, metadata: str
) -> None:
    reg = registry(tmp_path)
    add(reg, "v1")
    add(reg, "v2")
    (reg.models_dir / "ACME" / "v2" / "metadata.json").write_bytes(
        metadata.encode("utf-8", "surrogateescape")
    )
    with pytest.raises(DamagedVersion, match="metadata of ACME v2 is unreadable"):
        reg.current("ACME")
    with pytest.raises(RegistryError, match="has no version 'v9'"):
        reg.info("ACME", "v9")
    rows = {row["version"]: row for row in reg.describe("ACME")["versions"]}
    assert "unreadable" in rows["v2"]["problem"] and rows["v2"]["current"] is True
    assert rows["v1"]["trained_at"] is not None


def test_the_retrain_policy_flags_old_or_inaccurate_models() -> None:
    now = datetime(2026, 11, 23, tzinfo=UTC)
    config = MLConfig(max_age_days=7, max_mape_percent=5.0)
    fresh = {
        "trained_at": (now - timedelta(days=1)).isoformat(),
        "evaluation": {"summary": {"mape": 2.0}},
    }
    assert retrain_reason(fresh, config, now) is None
    old = {**fresh, "trained_at": (now - timedelta(days=8)).isoformat()}
    assert "8 days" in str(retrain_reason(old, config, now))
    wrong = {**fresh, "evaluation": {"summary": {"mape": 7.5}}}
    assert "MAPE 7.50%" in str(retrain_reason(wrong, config, now))
    assert retrain_reason({}, config, now) == "its training date is unknown"
