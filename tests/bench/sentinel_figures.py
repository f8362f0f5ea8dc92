"""Figure (k): seconds from killing the Redis primary to the first successful uncached
prediction, with Sentinel.

Real processes on a real Sentinel deployment (tests.support.SentinelSet: a primary, a replica
and three sentinels with the compose profile's timers: a primary silent for 5 s is judged down,
2 of 3 sentinels agree): the web server and an inference worker exactly as the Procfile starts
them, with REDIS_URL=sentinel://…; NVDA trained for one epoch. Not the whole `make run` set:
`make run` keeps its own single Redis, and Sentinel is for deployments that name one. Each
round waits until the sentinels agree and the replica is in sync, checks that a prediction is
served, SIGKILLs the primary and at once asks every 0.1 s for a horizon not asked before, until
one answers 200 (computed by the worker, which reached the promoted replica). The killed node is
then started again, as its supervisor would, and rejoins as a replica for the next round. The
figure is the slowest round, against the issue's 30 s.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from stockpred.ops.provision import run_setup
from stockpred.settings import load_settings
from tests.bench import stack
from tests.bench.fault_figures import recovery_figure
from tests.bench.procs import Processes, say
from tests.conftest import clean_environ
from tests.support import SentinelSet, wait_for

SYMBOL = "NVDA"
ROUNDS = 3
POLL = 0.1  # seconds between attempts while the set recovers
DOWN_AFTER_MS = 5000  # docker-compose-persistent.yml, the sentinel profile
FAILOVER_TIMEOUT_MS = 60000


def _predict(port: int, horizon: int) -> int:
    """The status of GET /api/v1/predict/NVDA?horizon=… (0 when the connection failed)."""
    try:
        return stack.http_get(port, f"/api/v1/predict/{SYMBOL}?horizon={horizon}")[0]
    except OSError:
        return 0


def _serving(deployment: SentinelSet, root: Path, procs: Processes) -> tuple[int, int]:
    """Set up a data root on the deployment, train NVDA, start web and worker; their ports."""
    env = clean_environ()
    env.update(deployment.env())
    env["STOCKPRED_DATA_DIR"] = str(root / "persistent_data")
    env["RATE_LIMIT_READS"] = "1000000000/minute"
    env["RATE_LIMIT_WORK"] = "1000000000/minute"
    run_setup(load_settings(env))
    bench = stack.Stack(root, env, load_settings(env), 0, procs)
    trained = procs.run_python(
        "sentinel-train", "tests.bench.children", {"job": "train", "epochs": 1}, env, 600
    )
    say(f"(k) model {trained['version']} published")
    worker = stack.start_worker(bench, "worker-inference", "inference", 2)
    return worker, stack.start_web(bench)


def sentinel_kill_to_uncached_prediction(root: Path, rounds: int = ROUNDS) -> dict[str, Any]:
    """Figure (k): the slowest of `rounds` SIGKILLs of the primary, with each round's breakdown."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "logs").mkdir(exist_ok=True)
    procs = Processes(root / "logs")
    deployment = SentinelSet(
        root / "redis", down_after_ms=DOWN_AFTER_MS, failover_timeout_ms=FAILOVER_TIMEOUT_MS
    )
    measured: list[dict[str, Any]] = []
    try:
        deployment.start()
        _, web = _serving(deployment, root, procs)
        wait_for(lambda: _predict(web, 1) == 200, 120, what="a first prediction")
        for index in range(rounds):
            horizon = 2 + index  # never asked before: the first answer is computed anew
            deployment.wait_settled()
            killed = deployment.kill_primary()
            killed_at = time.monotonic()
            attempts: list[int] = []

            def predicted(wanted: int = horizon, seen: list[int] = attempts) -> bool:
                code = _predict(web, wanted)
                seen.append(code)
                return code == 200

            wait_for(predicted, 120, interval=POLL, what="a prediction after the failover")
            first_prediction = round(time.monotonic() - killed_at, 2)
            promoted = deployment.wait_failover(killed, timeout=60)
            measured.append(
                {
                    "first_uncached_prediction_s": first_prediction,
                    "attempts": len(attempts),
                    "statuses": sorted(set(attempts)),
                    "killed_port": killed,
                    "promoted_port": promoted,
                }
            )
            say(f"(k) round {index + 1}: first uncached prediction after {first_prediction}s")
            deployment.restart_node(killed)
    finally:
        procs.stop_all()
        deployment.stop()
    return recovery_figure(
        "sentinel_primary_kill_to_uncached_prediction_seconds",
        measured,
        (
            "redis-server primary + replica + 3 sentinels (redis-server --sentinel; "
            f"down-after-milliseconds {DOWN_AFTER_MS}, quorum 2) on loopback ports; "
            "gunicorn web and a 2-process inference worker as the Procfile starts them, "
            "REDIS_URL=sentinel://…; NVDA trained for 1 epoch; the primary SIGKILLed; "
            f"GET /api/v1/predict/NVDA?horizon=<new> every {POLL}s until 200; the killed "
            "node restarted as a replica before the next round"
        ),
    )
