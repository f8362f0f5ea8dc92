"""The storage lock across processes, on the project's Redis (its ACL and password, over TCP).

The holder is a separate process taking the lock as a backup does; this process is the other
run. "Another host" is a process whose settings name the Redis by REDIS_URL (it starts none),
as every host of a multi-host set does; the host running its own Redis also holds its file lock.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from stockpred.infra.redis_client import connect
from stockpred.ops.provision import run_setup
from stockpred.paths import DataTree
from stockpred.settings import load_settings
from stockpred.storage.errors import StorageBusy, StorageLockUnavailable
from stockpred.storage.lock import LOCK_NAME
from stockpred.storage.service import StorageService
from tests.conftest import clean_environ
from tests.support import BIN, ROOT, free_port, start_project_redis, stop_group, wait_for

TTL = 2  # STORAGE_LOCK_TTL in seconds
KEY = f"stockpred:lock:{LOCK_NAME}"
# Holds the storage lock as a storage run does, says so, then keeps it for argv[2] seconds.
HOLDER = """
import sys, time
from stockpred.infra.redis_client import connect
from stockpred.settings import get_settings
from stockpred.storage.lock import storage_lock
settings = get_settings()
client = connect(settings) if sys.argv[1] == "redis" else None
with storage_lock(settings, client, wait=False):
    print("held", flush=True)
    time.sleep(float(sys.argv[2]))
"""


@dataclass
class Hosts:
    """The environments of the host running Redis and of another one, and the Redis address."""

    own: dict[str, str]
    other: dict[str, str]
    port: int


@pytest.fixture
def hosts(tmp_path: Path) -> Iterator[Hosts]:
    """One data tree; Redis started by its host (REDIS_PORT), reached by REDIS_URL elsewhere."""
    port = free_port()
    own = clean_environ()
    own.update(
        STOCKPRED_DATA_DIR=str(tmp_path / "pd"), REDIS_PORT=str(port), STORAGE_LOCK_TTL=f"{TTL}s"
    )
    run_setup(load_settings(own))  # REDIS_PASSWORD into config/persistent.env
    settings = load_settings(own)
    server = start_project_redis(settings, DataTree.from_settings(settings).redis / "server.log")
    other = {k: v for k, v in own.items() if k != "REDIS_PORT"}
    other["REDIS_URL"] = f"redis://127.0.0.1:{port}/0"  # REDIS_PASSWORD comes from the tree
    try:
        yield Hosts(own, other, port)
    finally:
        stop_group(server)


def hold(env: dict[str, str], seconds: float, *, mode: str = "redis") -> subprocess.Popen[str]:
    """A process holding the storage lock for `seconds`, once it says it holds it."""
    proc = subprocess.Popen(
        [str(BIN / "python"), "-c", HOLDER, mode, str(seconds)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    return proc


def finish(proc: subprocess.Popen[str]) -> None:
    """Stop a holder still running and close its pipe."""
    stop_group(proc)
    if proc.stdout is not None:
        proc.stdout.close()


def scheduled_cleanup(service: StorageService) -> dict[str, object]:
    return service.cleanup(dry_run=True, scheduled=True)


def test_a_scheduled_run_is_refused_and_a_manual_one_waits_while_another_host_holds_it(
    hosts: Hosts,
) -> None:
    settings = load_settings(hosts.other)
    client = connect(settings)
    service = StorageService(settings, client)
    holder = hold(hosts.other, 3)
    try:
        with pytest.raises(StorageBusy, match=f":{holder.pid}:"):
            scheduled_cleanup(service)
        started = time.monotonic()
        assert "removed" in service.cleanup(dry_run=True)  # manual: waits for the holder
        assert holder.wait(10) == 0
        assert time.monotonic() - started > 1.5
        assert client.get(KEY) is None  # released by both
    finally:
        finish(holder)
        client.close()


def test_a_killed_holders_lock_is_renewed_while_it_lives_and_expires_after_it_dies(
    hosts: Hosts,
) -> None:
    settings = load_settings(hosts.other)
    client = connect(settings)
    service = StorageService(settings, client)
    holder = hold(hosts.other, 60)
    try:
        held_by = client.get(KEY)
        time.sleep(TTL + 1.5)  # past its TTL: only its renewals keep it
        assert client.get(KEY) == held_by and 0 < client.pttl(KEY) <= TTL * 1000
        os.killpg(holder.pid, signal.SIGKILL)
        holder.wait(10)
        killed_at = time.monotonic()
        with pytest.raises(StorageBusy):
            scheduled_cleanup(service)

        def runs() -> bool:
            try:
                scheduled_cleanup(service)
            except StorageBusy:
                return False
            return True

        wait_for(runs, TTL + 3, interval=0.2, what="the dead holder's lock to expire")
        assert time.monotonic() - killed_at <= TTL + 1
    finally:
        finish(holder)
        client.close()


def test_the_host_running_redis_also_holds_its_file_lock_for_a_cli_run_without_redis(
    hosts: Hosts,
) -> None:
    settings = load_settings(hosts.own)
    assert settings.manages_redis
    without_redis = StorageService(settings, None)  # the CLI when its Redis does not answer
    for mode in ("redis", "file"):  # a worker's run, or another CLI run without Redis
        holder = hold(hosts.own, 30, mode=mode)
        try:
            with pytest.raises(StorageBusy, match="on this host"):
                scheduled_cleanup(without_redis)
        finally:
            finish(holder)
    assert "removed" in scheduled_cleanup(without_redis)


def test_a_host_that_cannot_reach_the_shared_redis_runs_no_storage_work(hosts: Hosts) -> None:
    unreachable = {**hosts.other, "REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"}
    with pytest.raises(StorageLockUnavailable, match="REDIS_URL"):
        scheduled_cleanup(StorageService(load_settings(unreachable), None))
    cli = subprocess.run(
        [str(BIN / "stockpred"), "storage", "cleanup", "--dry-run"],
        cwd=ROOT,
        env=unreachable,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert cli.returncode == 1 and "REDIS_URL" in cli.stderr, cli.stderr
