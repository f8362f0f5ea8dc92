"""Test hosts in network namespaces: each its own namespace and address on one private link.

The link is a Linux bridge in the test's own namespace, which has an address on it too (the
operator's machine: the test's HTTP and Redis clients, and a database server, use it). Every
host is a namespace joined to the bridge by a veth pair, with loopback and one address, and
no route beyond the link: nothing a host sends leaves it. Needs root and iproute2's `ip`.
`Network.close` kills whatever still runs in the namespaces and removes them and the bridge.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import os
import shutil
import signal
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support import ROOT

log = logging.getLogger(__name__)
# Where the link's /24 is looked for; one not routed on this machine is taken.
SUBNETS = ipaddress.ip_network("10.231.0.0/16")
GATEWAY_HOST = 254  # the test's own address on the link: <subnet>.254


def unavailable() -> str | None:
    """Why namespaced hosts cannot be made here, or None when they can."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    if shutil.which("ip") is None:
        return "iproute2's `ip` is not installed"
    return None


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=30)


def _taken_networks() -> list[ipaddress.IPv4Network]:
    """The IPv4 networks this machine already routes or has addresses in."""
    found = []
    for argv in (["ip", "-4", "-o", "addr"], ["ip", "-4", "route"]):
        out = subprocess.run(argv, check=True, capture_output=True, text=True, timeout=30).stdout
        for word in out.split():
            with contextlib.suppress(ValueError):
                found.append(ipaddress.ip_network(word, strict=False))
    return [net for net in found if isinstance(net, ipaddress.IPv4Network)]


def _free_subnet() -> ipaddress.IPv4Network:
    taken = _taken_networks()
    candidates = list(SUBNETS.subnets(new_prefix=24))
    start = os.getpid() % len(candidates)  # two test runs at once pick different ones
    for subnet in candidates[start:] + candidates[:start]:
        if not any(subnet.overlaps(net) for net in taken if net.prefixlen > 0):
            return subnet
    raise RuntimeError(f"no free /24 in {SUBNETS} for the test hosts")


@dataclass
class Host:
    """One namespaced host: its namespace, its address and the veth end on the bridge."""

    name: str
    namespace: str
    address: str
    veth: str

    def command(self, argv: Sequence[str]) -> list[str]:
        """`argv` run inside this host."""
        return ["ip", "netns", "exec", self.namespace, *argv]

    def popen(
        self, argv: Sequence[str], *, env: Mapping[str, str], log_path: Path
    ) -> subprocess.Popen[bytes]:
        """Start `argv` on this host in its own process group, its output in `log_path`."""
        with log_path.open("ab") as out:
            return subprocess.Popen(
                self.command(argv),
                cwd=ROOT,
                env=dict(env),
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def pids(self) -> list[int]:
        """Every process running in this host's namespace."""
        done = subprocess.run(
            ["ip", "netns", "pids", self.namespace],
            check=False,
            capture_output=True,
            text=True,
            timeout=30,
        )
        return [int(pid) for pid in done.stdout.split()]

    def kill(self) -> None:
        """What a power cut does: the host leaves the link at once, then all its processes die.

        The link goes down first, so no process gets to close a connection (no FIN or RST
        reaches the others, as with a host that loses power).
        """
        _ip("link", "set", self.veth, "down")
        for pid in self.pids():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


class Network:
    """A private link and the namespaced hosts on it."""

    def __init__(self) -> None:
        self.tag = f"{os.getpid() % 0x10000:04x}"
        self.subnet = _free_subnet()
        self.bridge = f"spbr{self.tag}"
        self.gateway = str(self.subnet.network_address + GATEWAY_HOST)
        self.hosts: dict[str, Host] = {}

    def start(self) -> None:
        """Make the bridge, with the test's own address on it."""
        _ip("link", "add", self.bridge, "type", "bridge")
        _ip("addr", "add", f"{self.gateway}/{self.subnet.prefixlen}", "dev", self.bridge)
        _ip("link", "set", self.bridge, "up")

    def add_host(self, name: str) -> Host:
        """A new namespace joined to the link, at the next address."""
        number = len(self.hosts) + 1
        host = Host(
            name,
            namespace=f"sp-{self.tag}-{name}",
            address=str(self.subnet.network_address + number),
            veth=f"spv{self.tag}{number:02d}",
        )
        _ip("netns", "add", host.namespace)
        self.hosts[name] = host
        _ip(
            "link",
            "add",
            host.veth,
            "type",
            "veth",
            "peer",
            "name",
            "eth0",
            "netns",
            host.namespace,
        )
        _ip("link", "set", host.veth, "master", self.bridge)
        _ip("link", "set", host.veth, "up")
        inside = ["-n", host.namespace]
        _ip(*inside, "addr", "add", f"{host.address}/{self.subnet.prefixlen}", "dev", "eth0")
        _ip(*inside, "link", "set", "eth0", "up")
        _ip(*inside, "link", "set", "lo", "up")
        return host

    def close(self) -> None:
        """Kill what runs on every host, remove the namespaces, then the bridge."""
        for host in self.hosts.values():
            for pid in host.pids():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            try:
                _ip("netns", "delete", host.namespace)  # takes its veth pair with it
            except subprocess.CalledProcessError as exc:
                log.warning("could not delete namespace %s: %s", host.namespace, exc.stderr)
        self.hosts = {}
        with contextlib.suppress(subprocess.CalledProcessError):
            _ip("link", "delete", self.bridge)

    def __enter__(self) -> Network:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
