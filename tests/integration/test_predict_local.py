"""`stockpred predict --local` answers what the inference worker answers, from the same code."""

from __future__ import annotations

import json
import re
import subprocess
from datetime import date
from typing import Any

import pytest
from flask.testing import FlaskClient

from stockpred.ledger.database import engine_from_settings
from stockpred.ledger.store import ForecastLedger
from stockpred.ml.registry import ModelRegistry
from stockpred.settings import Settings, load_settings
from tests.support import BIN, wait_for

SYMBOL = "TSLA"
# Set by the clock of the process that made the prediction, not by the model or the data.
CLOCK_FIELDS = {"prediction_time"}


def finish(api: FlaskClient, task_id: str, timeout: float = 180) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        job: dict[str, Any] = api.get(f"/api/v1/tasks/{task_id}").get_json()
        return job if job["state"] in {"succeeded", "failed", "cancelled"} else None

    return wait_for(done, timeout, interval=0.2, what=f"job {task_id}")


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """Leaves of a JSON document by their path, so numbers can be compared with a tolerance."""
    if isinstance(value, dict):
        return {
            k: v for key, item in value.items() for k, v in flatten(item, f"{prefix}/{key}").items()
        }
    if isinstance(value, list):
        return {
            k: v for i, item in enumerate(value) for k, v in flatten(item, f"{prefix}/{i}").items()
        }
    return {prefix: value}


@pytest.fixture(scope="module")
def model_version(api: FlaskClient, auth: dict[str, str], worker_settings: Settings) -> str:
    """TSLA has a published model (trained through the worker if no earlier test made one)."""
    registry = ModelRegistry(worker_settings.ml_model_path, worker_settings.scalers_path)
    if registry.current_version(SYMBOL) is None:
        response = api.post(f"/api/v1/train/{SYMBOL}", json={}, headers=auth)
        assert response.status_code == 202, response.get_json()
        done = finish(api, response.get_json()["task_id"])
        assert done["state"] == "succeeded", done
    version = registry.current_version(SYMBOL)
    assert version is not None
    return version


def test_predict_local_answers_what_the_inference_worker_answers(
    api: FlaskClient, model_version: str, worker_env: dict[str, str]
) -> None:
    accepted = api.get(f"/api/v1/predict/{SYMBOL}?horizon=3&async=true")
    assert accepted.status_code == 202, accepted.get_json()
    done = finish(api, accepted.get_json()["task_id"])
    assert done["state"] == "succeeded", done
    worker = done["result"]
    local = subprocess.run(
        [str(BIN / "stockpred"), "predict", SYMBOL, "--horizon", "3", "--local"],
        env=worker_env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert local.returncode == 0, local.stderr[-2000:]
    assert re.search(r"recorded \d new forecast\(s\) in the ledger", local.stderr)
    answer = json.loads(local.stdout)
    engine = engine_from_settings(load_settings(worker_env))
    kept = ForecastLedger(engine).history(SYMBOL, start=date.fromisoformat(answer["as_of"]))
    engine.dispose()
    # The worker's prediction and the local one are the same forecasts: stored once, in the
    # ledger whichever recorded them first.
    assert {
        entry.stored.forecast.horizon
        for entry in kept
        if entry.stored.forecast.as_of.isoformat() == answer["as_of"]
        and entry.stored.forecast.model_version == answer["model_version"]
    } >= {1, 2, 3}
    assert answer["model_version"] == worker["model_version"] == model_version
    assert answer["cached"] is worker["cached"] is False
    mine, theirs = flatten(answer), flatten(worker)
    assert mine.keys() == theirs.keys()
    for path, value in theirs.items():
        if path.lstrip("/") in CLOCK_FIELDS:
            continue
        if isinstance(value, float):
            # Two processes may split TensorFlow's arithmetic differently: the last bit may move.
            assert mine[path] == pytest.approx(value, rel=1e-5), path
        else:
            assert mine[path] == value, path
