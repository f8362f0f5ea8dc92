"""The compose file's sentinel profile, run here: its node and sentinel scripts fail over.

No Docker engine is needed: the scripts of `redis`, `redis-replica` and `sentinel-1..3` run
with the local redis-server, on free loopback ports and temp folders instead of the compose
network's names and /data (and a primary found silent after 1 s instead of 5 s, to keep the
test short). What runs is the compose file's own text: its ACL users, the replica's password
read from stdin, the sentinel.conf it writes.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest
import redis
import yaml

from stockpred.infra.redis_client import connect
from stockpred.settings import load_settings
from tests.support import ROOT, free_port, stop_group, wait_for

SERVICES = yaml.safe_load((ROOT / "docker-compose-persistent.yml").read_text())["services"]
PASSWORD = "compose-data-password"
SENTINEL_PASSWORD = "compose-sentinel-password"
T = TypeVar("T")


def script_of(service: str) -> tuple[str, list[str]]:
    """The service's shell script as the container runs it ($$ → $), and its arguments."""
    command = SERVICES[service]["command"]
    assert command[:2] == ["sh", "-c"], command
    return str(command[2]).replace("$$", "$"), [str(arg) for arg in command[3:]]


@dataclass
class ComposeProfile:
    """The profile's processes on this machine."""

    root: Path
    conf: Path
    ports: dict[str, int] = field(default_factory=dict)
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def env(self, **more: str) -> dict[str, str]:
        return {
            "PATH": os.environ["PATH"],
            "REDIS_PASSWORD": PASSWORD,
            "REDIS_SENTINEL_PASSWORD": SENTINEL_PASSWORD,
            **more,
        }

    def run(self, name: str, script: str, args: list[str], env: dict[str, str]) -> None:
        with (self.root / f"{name}.log").open("ab") as log:
            self.procs[name] = subprocess.Popen(
                ["sh", "-c", script, *args],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def start_node(self, service: str) -> None:
        """`redis` or `redis-replica`, as compose runs it, on its loopback port."""
        script, args = script_of(service)
        port = self.ports.setdefault(service, free_port())
        script = script.replace("/usr/local/etc/redis/redis.conf", str(self.conf)).replace(
            "--bind 0.0.0.0", f"--bind 127.0.0.1 --port {port}"
        )
        names = {"redis": "127.0.0.1", "6379": str(self.ports["redis"])}  # the compose network's
        args = [names.get(arg, arg) for arg in args]
        self.run(service, script, args, self.env(REDIS_NODE_DIR=str(self.root / service)))

    def start_sentinel(self, service: str) -> None:
        script, args = script_of(service)
        port = self.ports.setdefault(service, free_port())
        script = (
            script.replace("/data", str(self.root))
            .replace("port 26379", f"port {port}\nbind 127.0.0.1")
            .replace("redis 6379", f"127.0.0.1 {self.ports['redis']}")
            .replace("down-after-milliseconds $master 5000", "down-after-milliseconds $master 1000")
        )
        self.run(service, script, args, self.env())

    def replication(self, service: str) -> dict[str, Any]:
        """INFO replication of one data node."""
        client = redis.Redis(port=self.ports[service], password=PASSWORD, socket_timeout=5)
        try:
            return dict(client.info("replication"))
        finally:
            client.close()

    def ask_sentinels(self, question: Callable[[redis.Redis], T]) -> list[T]:
        """Each sentinel's answer to `question` (a call on a client of it)."""
        answers = []
        for name in ("sentinel-1", "sentinel-2", "sentinel-3"):
            client = redis.Redis(
                port=self.ports[name],
                password=SENTINEL_PASSWORD,
                decode_responses=True,
                socket_timeout=5,
            )
            try:
                answers.append(question(client))
            finally:
                client.close()
        return answers

    def sentinels_ready(self) -> bool:
        """Every sentinel knows the other two and the replica, and sees the primary up.

        Sentinels learn of each other from hello messages and of replicas from the primary's
        INFO (every 10 s): killed before that, the primary has no replica to promote, the
        failover is aborted and retried only after twice the failover timeout (minutes).
        """
        return all(
            master["num-other-sentinels"] >= 2
            and master["num-slaves"] >= 1
            and not (master["is_sdown"] or master["is_odown"])
            for master in self.ask_sentinels(lambda client: client.sentinel_master("mymaster"))
        )

    def sentinel_addresses(self) -> set[tuple[str, int]]:
        found = self.ask_sentinels(
            lambda client: client.sentinel_get_master_addr_by_name("mymaster")
        )
        return {(str(host), int(port)) for host, port in found}


@pytest.fixture
def profile(tmp_path: Path) -> Iterator[ComposeProfile]:
    """The primary, its replica and three sentinels from the compose file's scripts."""
    conf = tmp_path / "redis.conf"
    conf.write_text('save ""\nappendonly yes\n')
    running = ComposeProfile(tmp_path, conf)
    try:
        running.start_node("redis")
        running.start_node("redis-replica")
        for name in ("sentinel-1", "sentinel-2", "sentinel-3"):
            running.start_sentinel(name)

        def in_sync() -> bool:
            info = running.replication("redis")
            return info["connected_slaves"] == 1 and info["slave0"]["state"] == "online"

        wait_for(in_sync, 30, interval=0.2, what="the replica in sync through its own user")
        yield running
    finally:
        for proc in running.procs.values():
            stop_group(proc)


def test_the_profile_fails_over_and_the_old_primary_rejoins_as_a_replica(
    profile: ComposeProfile, tmp_path: Path
) -> None:
    settings = load_settings(
        {
            "STOCKPRED_DATA_DIR": str(tmp_path / "pd"),
            "REDIS_URL": ";".join(
                f"sentinel://127.0.0.1:{profile.ports[f'sentinel-{n}']}" for n in (1, 2, 3)
            ),
            "REDIS_PASSWORD": PASSWORD,
            "REDIS_SENTINEL_PASSWORD": SENTINEL_PASSWORD,
        }
    )
    client = connect(settings)
    try:
        wait_for(
            lambda: profile.sentinel_addresses() == {("127.0.0.1", profile.ports["redis"])},
            30,
            what="every sentinel naming the primary",
        )
        wait_for(profile.sentinels_ready, 60, interval=0.5, what="the sentinels and the replica")
        client.set("compose-profile", "before")
        assert client.wait(1, 5000) == 1
        stop_group(profile.procs.pop("redis"), sig=9)

        def written_after_failover() -> bool:
            # The client's own retries span a few seconds; a busy machine's failover may take
            # longer, and a command failing meanwhile is what an API request sees as a 503.
            try:
                return bool(client.set("compose-profile-after", "1"))
            except (redis.ConnectionError, redis.TimeoutError) as exc:
                failures.append(exc)
                return False

        failures: list[Exception] = []
        wait_for(written_after_failover, 60, interval=0.5, what="a write after the failover")
        assert client.get("compose-profile") == "before"
        assert int(client.info("server")["tcp_port"]) == profile.ports["redis-replica"]
        # What `restart: unless-stopped` does: the old primary comes back with its script, and
        # the sentinels turn it into a replica of the new one (it logs in as stockpred-replica).
        profile.start_node("redis")

        def rejoined() -> bool:
            info = profile.replication("redis")
            return info["role"] == "slave" and info["master_link_status"] == "up"

        wait_for(rejoined, 30, interval=0.2, what="the old primary replicating the new one")
    finally:
        client.close()
