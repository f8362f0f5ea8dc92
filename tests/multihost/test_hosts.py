"""Several hosts on Celery's and Redis's own terms, in network namespaces this test makes.

Each host is a namespace with its own address on one private link (tests.netns):

- `data`: the Redis primary, its replica and three sentinels (REDIS_URL=sentinel://…);
- `web`: gunicorn, and a beat;
- `inference-a`, `inference-b`: an inference worker each (`inference-c` joins later);
- `ops`: the training and maintenance workers, and a second beat.

The ledger is a PostgreSQL on the test's own address on the link. One shared directory holds
what the README's "Scaling out" says is shared (models, scalers, price history); each host has
its own data root for logs, metric files and caches. Every process is the real one, started as
the Procfile starts it; the client is the test, over HTTP to the web host. The scenarios run in
order on the one deployment: a model trained on `ops` is served by both inference hosts without
a restart; two beats send each scheduled run once; predictions go on while an inference host
dies; a new inference host joins and takes work; the Redis primary dies and the set goes on.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import pytest
import redis
from celery import Celery

import celeryconfig
from stockpred.infra.redis_client import connect
from stockpred.jobs.records import RUNNING_PREFIX, JobStore
from stockpred.ops.provision import run_setup
from stockpred.paths import DataTree
from stockpred.settings import Settings, load_settings
from tests.conftest import SMALL_ML_CONFIG, clean_environ
from tests.netns import Host, Network, unavailable
from tests.postgres import PostgresServer, postgres_bin
from tests.support import BIN, SentinelSet, stop_group, wait_for

SYMBOL = "NVDA"
# Horizons 1..30 are 30 cache keys per model version: each scenario asks for ones not asked
# before, so each request is work for an inference worker, not a cache hit.
ML_CONFIG = {**SMALL_ML_CONFIG, "epochs": 1, "max_horizon": 30}
TRAINED, DURING_KILL, AFTER_KILL, NEW_HOST = range(1, 6), range(6, 12), range(12, 20), range(20, 31)
WEB_PORT = 8000
LOST_WORKER_CHECK = 2  # seconds between beat's looks for jobs of silent workers
FINAL = {"succeeded", "failed", "cancelled"}
LOST_EVENTS_WINDOW = 8.0  # seconds of beat's runs counted
STOP_WITHIN = 10.0  # seconds the processes get to stop at the end


def _skip_or_fail() -> None:
    reason = unavailable()
    if reason is None:
        return
    if os.environ.get("CI"):
        pytest.fail(f"the multi-host test must run in CI: {reason}")
    pytest.skip(reason)


@dataclass
class Deployment:
    """The running hosts, their processes, and the test's clients."""

    network: Network
    root: Path
    env: dict[str, str]
    settings: Settings  # the test's own view (its REDIS_URL names the sentinels)
    redis_set: SentinelSet
    token: str
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    opener: urllib.request.OpenerDirector = field(
        default_factory=lambda: urllib.request.build_opener(urllib.request.ProxyHandler({}))
    )

    @property
    def web(self) -> str:
        return f"http://{self.network.hosts['web'].address}:{WEB_PORT}"

    def host_env(self, host: Host) -> dict[str, str]:
        """The shared settings plus this host's own data root."""
        return {**self.env, "STOCKPRED_DATA_DIR": str(self.root / "hosts" / host.name)}

    def set_up(self, host: Host) -> None:
        """What provisioning a host does: its own data root, the shared folders."""
        run_setup(load_settings(self.host_env(host)))

    def start(self, host: Host, role: str, argv: list[str], **env: str) -> None:
        """Start a process on `host`, as the Procfile names it, logged in the host's root."""
        logs = self.root / "hosts" / host.name / "process-logs"
        logs.mkdir(parents=True, exist_ok=True)
        self.procs[f"{host.name}/{role}"] = host.popen(
            argv, env={**self.host_env(host), **env}, log_path=logs / f"{role}.log"
        )

    def start_worker(self, host: Host, queue: str, *extra: str) -> None:
        argv = [str(BIN / "celery"), "-A", "workers", "worker", "--task-events"]
        argv += ["--loglevel", "INFO", "--queues", queue, "--concurrency", "1"]
        self.start(host, queue, [*argv, "--hostname", f"{queue}@{host.name}", *extra])

    def start_beat(self, host: Host) -> None:
        self.start(host, "beat", [str(BIN / "celery"), "-A", "workers", "beat"])

    def http(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        """Status and JSON body of one request to the web host, with the API token."""
        request = urllib.request.Request(
            self.web + path,
            data=json.dumps(body).encode() if body is not None else None,
            method=method,
            headers={"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"},
        )
        try:
            with self.opener.open(request, timeout=60) as answer:
                return answer.status, json.loads(answer.read())
        except urllib.error.HTTPError as err:
            return err.code, json.loads(err.read())

    def final_job(self, task_id: str, timeout: float = 120) -> dict[str, Any]:
        """The job's record once it is final, read through the API."""

        def final() -> dict[str, Any] | None:
            status, job = self.http("GET", f"/api/v1/tasks/{task_id}")
            assert status == 200, job
            return job if job["state"] in FINAL else None

        return wait_for(final, timeout, interval=0.2, what=f"job {task_id} to finish")

    def train(self) -> str:
        """Train SYMBOL through the API (on whichever training host takes it); its version."""
        status, answer = self.http("POST", f"/api/v1/train/{SYMBOL}", {"force": True})
        assert status == 202, answer
        job = self.final_job(answer["task_id"], timeout=120)
        assert job["state"] == "succeeded", job
        return str(job["result"]["version"])

    def predict(self, horizon: int) -> tuple[int, dict[str, Any]]:
        """A prediction as a client asks for one (answered within PREDICT_WAIT)."""
        return self.http("GET", f"/api/v1/predict/{SYMBOL}?horizon={horizon}")  # type: ignore[no-any-return]

    def predict_async(self, horizons: Sequence[int]) -> list[tuple[str, dict[str, Any]]]:
        """Asynchronous predictions, all sent before any is waited for; (task id, final job)."""
        ids = []
        for horizon in horizons:
            status, answer = self.http("GET", f"/api/v1/predict/{SYMBOL}?horizon={horizon}&async=1")
            assert status == 202, answer
            ids.append(answer["task_id"])
        return [(task_id, self.final_job(task_id, timeout=120)) for task_id in ids]

    def redis(self) -> redis.Redis:
        """A client of the deployment's Redis, through the sentinels."""
        return connect(self.settings)

    def served_by(self, task_id: str) -> str:
        """The node that ran a job (its record names it)."""
        client = self.redis()
        try:
            worker = JobStore(client, self.settings.job_ttl).worker_of(task_id)
        finally:
            client.close()
        assert worker is not None, task_id
        return worker.node

    def celery(self) -> Celery:
        """A Celery client configured as the web's (the broker through the sentinels)."""
        app = Celery("stockpred-multihost-tests", set_as_current=False)
        app.config_from_object("celeryconfig")
        app.add_defaults(lambda: celeryconfig.from_settings(self.settings))
        return app

    def wait_workers(self, *nodes: str, timeout: float = 180) -> None:
        """Wait until every node answers Celery's ping."""
        app = self.celery()
        try:

            def answering() -> bool:
                replies = app.control.ping(destination=list(nodes), timeout=1.0)
                return {name for reply in replies for name in reply} >= set(nodes)

            wait_for(answering, timeout, interval=0.5, what=f"workers {nodes} answering")
        finally:
            app.close()


def _common_env(
    root: Path, redis_set: SentinelSet, database_url: str, token: str
) -> dict[str, str]:
    shared = root / "shared"
    return {
        **clean_environ(),
        **redis_set.env(),
        "DATABASE_URL": database_url,
        "STOCKPRED_API_TOKEN": token,
        # What every host reads and writes: the shared store.
        "ML_MODEL_PATH": str(shared / "ml_models"),
        "SCALERS_PATH": str(shared / "scalers"),
        "STOCK_HISTORICAL_PATH": str(shared / "stock_data" / "historical"),
        "BEAT_LOCK_TIMEOUT": "5s",
        "LOST_WORKER_CHECK": f"{LOST_WORKER_CHECK}s",
        "PREDICT_WAIT": "30",
        "RATE_LIMIT_READS": "100000/minute",
        "RATE_LIMIT_WORK": "100000/minute",
        "RATE_LIMIT_MUTATIONS": "100000/minute",
    }


def _stop_all(procs: Iterable[subprocess.Popen[bytes]]) -> None:
    """SIGTERM every process group at once; kill what still runs after STOP_WITHIN seconds."""
    alive = [proc for proc in procs if proc.poll() is None]
    for proc in alive:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_WITHIN
    for proc in alive:
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            stop_group(proc, signal.SIGKILL)


@contextlib.contextmanager
def _hosts_root(keep: bool) -> Iterator[Path]:
    """A temp folder for the hosts' data roots and logs; kept (and named) with `keep`."""
    root = Path(tempfile.mkdtemp(prefix="sp-hosts-"))
    try:
        yield root
    finally:
        if keep:
            print(f"the hosts' data roots and logs are kept in {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def deployment() -> Iterator[Deployment]:
    """Five hosts on a private link, every process started and answering."""
    _skip_or_fail()
    bin_dir = postgres_bin()
    assert bin_dir is not None, "PostgreSQL is not installed (make install installs it)"
    # STOCKPRED_KEEP_HOSTS_DIR=1 keeps every host's logs (the path is printed) for a post-mortem.
    keep = bool(os.environ.get("STOCKPRED_KEEP_HOSTS_DIR"))
    with (
        _hosts_root(keep) as root,
        tempfile.TemporaryDirectory(prefix="sp-hosts-pg-") as pg_directory,
        Network() as network,
    ):
        hosts = {name: network.add_host(name) for name in ("data", "web", "inference-a")}
        hosts |= {name: network.add_host(name) for name in ("inference-b", "ops")}
        data = hosts["data"]
        redis_set = SentinelSet(root / "redis", host=data.address, launch=data.command)
        database = PostgresServer(Path(pg_directory), bin_dir, host=network.gateway)
        procs: dict[str, subprocess.Popen[bytes]] = {}
        try:
            redis_set.start()
            database.start()
            token = secrets.token_urlsafe(24)
            env = _common_env(root, redis_set, database.create_database("ledger"), token)
            settings = load_settings({**env, "STOCKPRED_DATA_DIR": str(root / "client")})
            running = Deployment(network, root, env, settings, redis_set, token, procs)
            for name in ("web", "inference-a", "inference-b", "ops"):
                running.set_up(hosts[name])
            ops_tree = DataTree.from_settings(load_settings(running.host_env(hosts["ops"])))
            ops_tree.ml_config.write_text(json.dumps(ML_CONFIG))
            upgrade = hosts["ops"].command([str(BIN / "stockpred"), "ledger", "upgrade"])
            subprocess.run(upgrade, env=running.host_env(hosts["ops"]), check=True, timeout=120)
            web = hosts["web"]
            gunicorn = [str(BIN / "gunicorn"), "--config", "docker/gunicorn.conf.py"]
            running.start(web, "web", gunicorn, WEB_HOST=web.address, WEB_PORT=str(WEB_PORT))
            running.start_beat(web)
            running.start_worker(hosts["inference-a"], "inference")
            running.start_worker(hosts["inference-b"], "inference")
            running.start_worker(hosts["ops"], "training", "--max-tasks-per-child", "1")
            running.start_worker(hosts["ops"], "maintenance")
            running.start_beat(hosts["ops"])
            running.wait_workers(
                "inference@inference-a",
                "inference@inference-b",
                "training@ops",
                "maintenance@ops",
            )
            wait_for(
                lambda: running.http("GET", "/api/v1/health")[0] == 200,
                60,
                interval=0.5,
                what="the web host's health",
            )
            yield running
        finally:
            _stop_all(procs.values())
            database.stop()
            redis_set.stop()


def test_a_model_trained_on_one_host_is_served_by_the_others_without_a_restart(
    deployment: Deployment,
) -> None:
    inference = {"inference@inference-a", "inference@inference-b"}
    pids = {name: proc.pid for name, proc in deployment.procs.items()}
    for _ in range(2):  # the second training replaces a model both hosts have loaded
        version = deployment.train()
        served = deployment.predict_async(TRAINED)
        for _, job in served:
            assert job["state"] == "succeeded", job
            assert job["result"]["model_version"] == version, job
        assert {deployment.served_by(task_id) for task_id, _ in served} == inference
    assert all(deployment.procs[name].poll() is None for name in pids)  # no restart
    assert {name: proc.pid for name, proc in deployment.procs.items()} == pids


class TaskEvents:
    """Celery's task events, as Flower receives them, collected in a thread."""

    def __init__(self, app: Celery) -> None:
        self.app = app
        self.received: list[dict[str, Any]] = []
        self.receiver: Any = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with self.app.connection_for_read() as connection:
            self.receiver = self.app.events.Receiver(
                connection, handlers={"task-received": self.received.append}
            )
            self.receiver.capture(limit=None, timeout=None, wakeup=False)

    def __enter__(self) -> TaskEvents:
        self.thread.start()
        wait_for(lambda: self.receiver is not None, 10, what="the event receiver")
        return self

    def __exit__(self, *exc: Any) -> None:
        self.receiver.should_stop = True
        self.thread.join(timeout=10)


def test_two_beats_send_each_scheduled_run_once(deployment: Deployment) -> None:
    assert deployment.procs["web/beat"].poll() is None
    assert deployment.procs["ops/beat"].poll() is None
    app = deployment.celery()
    try:
        with TaskEvents(app) as events:
            time.sleep(LOST_EVENTS_WINDOW)
    finally:
        app.close()
    sent = sorted(
        float(event["timestamp"])
        for event in events.received
        if event.get("name") == "maintenance.recover_lost_jobs"
    )
    # One run per LOST_WORKER_CHECK: two beats each sending would double the count and put
    # pairs of runs milliseconds apart.
    assert LOST_EVENTS_WINDOW / LOST_WORKER_CHECK - 2 <= len(sent) <= LOST_EVENTS_WINDOW / 2 + 1
    gaps = [later - earlier for earlier, later in itertools.pairwise(sent)]
    assert min(gaps) > LOST_WORKER_CHECK / 2, sent


def _pool_child(deployment: Deployment, name: str) -> psutil.Process:
    """The one pool child of a `-c 1` worker."""
    (child,) = psutil.Process(deployment.procs[name].pid).children()
    return child


def test_predictions_are_served_while_an_inference_host_dies(deployment: Deployment) -> None:
    host = deployment.network.hosts["inference-a"]
    running_set = f"{RUNNING_PREFIX}inference@inference-a"
    client = deployment.redis()
    # The host hangs first (its pool child stopped), so that it has surely taken a request when
    # it dies: its main process takes one message and names itself in the job's record.
    _pool_child(deployment, "inference-a/inference").send_signal(signal.SIGSTOP)
    with ThreadPoolExecutor(len(DURING_KILL)) as clients:
        answers = [clients.submit(deployment.predict, horizon) for horizon in DURING_KILL]
        taken = wait_for(
            lambda: client.smembers(running_set), 30, what="inference-a taking a request"
        )
        killed_at = time.monotonic()
        host.kill()
        during = [answer.result(timeout=90) for answer in answers]
        answered_in = time.monotonic() - killed_at
    after = [deployment.predict(horizon) for horizon in AFTER_KILL]
    client.close()

    (lost_id,) = taken
    lost = [(status, body) for status, body in during if status != 200]
    # The request the dead host had taken: failed within PREDICT_WAIT, naming the host.
    assert len(lost) == 1, during
    status, body = lost[0]
    assert status == 503 and "inference@inference-a stopped answering" in body["detail"], body
    assert answered_in < 30
    job = deployment.final_job(lost_id)
    assert job["state"] == "failed" and job["error"]["kind"] == "worker_lost", job
    # Every other request, during and after, served by the host left.
    assert all(status == 200 for status, _ in after), after
    assert sum(status == 200 for status, _ in during) == len(DURING_KILL) - 1


def test_a_new_inference_host_joins_and_takes_work(deployment: Deployment) -> None:
    host = deployment.network.add_host("inference-c")
    deployment.set_up(host)
    deployment.start_worker(host, "inference")
    deployment.wait_workers("inference@inference-c")
    served: set[str] = set()
    for start in range(NEW_HOST.start, NEW_HOST.stop, 5):  # rounds until it has taken some
        horizons = range(start, min(start + 5, NEW_HOST.stop))
        for task_id, job in deployment.predict_async(horizons):
            assert job["state"] == "succeeded", job
            served.add(deployment.served_by(task_id))
        if "inference@inference-c" in served:
            break
    assert "inference@inference-c" in served, served


def test_the_set_goes_on_after_the_redis_primary_dies(deployment: Deployment) -> None:
    redis_set = deployment.redis_set
    old = redis_set.kill_primary()
    new = redis_set.wait_failover(old, timeout=60)
    assert new != old
    # Training, publishing and serving on the promoted replica. A request that reaches the web
    # while its connections move over may be refused (503) and is asked again.
    version = wait_for(deployment.train, 120, interval=1, what="a training after the failover")
    served = deployment.predict_async(TRAINED)
    for task_id, job in served:
        assert job["state"] == "succeeded" and job["result"]["model_version"] == version, job
        assert deployment.served_by(task_id) in {"inference@inference-b", "inference@inference-c"}
