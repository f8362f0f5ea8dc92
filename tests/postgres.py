"""A real PostgreSQL server for tests: Debian's binaries, a temp cluster, a free port.

PostgreSQL refuses to run as root: under root the cluster belongs to the `postgres` system
user (created by Debian's package) and its processes run as that user; otherwise as ourselves.
Clients log in with a password over TCP, as a deployment's DATABASE_URL would.
"""

from __future__ import annotations

import glob
import os
import pwd
import secrets
import signal
import subprocess
from pathlib import Path
from typing import Any

import psycopg

from tests.support import free_port, stop_group, wait_for

SYSTEM_USER = "postgres"
ROLE = "stockpred"


def postgres_bin() -> Path | None:
    """The newest installed PostgreSQL's bin folder (Debian keeps it off PATH), or None."""
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda path: int(Path(path).parent.parent.name),
    )
    return Path(found[-1]).parent if found else None


class PostgresServer:
    """A throw-away PostgreSQL cluster in `directory`, listening on `host`:`port`."""

    def __init__(self, directory: Path, bin_dir: Path, host: str = "127.0.0.1") -> None:
        self.directory = directory
        self.bin_dir = bin_dir
        self.host = host  # the one address it listens on
        self.port = free_port()
        self.password = secrets.token_urlsafe(12)
        self.proc: subprocess.Popen[bytes] | None = None

    def _as_owner(self) -> dict[str, Any]:
        """Popen arguments that drop root to the postgres system user."""
        if os.geteuid() != 0:
            return {}
        return {"user": SYSTEM_USER, "group": SYSTEM_USER, "extra_groups": []}

    def start(self) -> None:
        if os.geteuid() == 0:
            owner = pwd.getpwnam(SYSTEM_USER)
            os.chown(self.directory, owner.pw_uid, owner.pw_gid)
        password_file = self.directory / "password"
        password_file.write_text(self.password + "\n")
        if os.geteuid() == 0:
            os.chown(password_file, owner.pw_uid, owner.pw_gid)
        data = self.directory / "data"
        subprocess.run(
            [
                str(self.bin_dir / "initdb"),
                "--pgdata",
                str(data),
                "--username",
                ROLE,
                "--pwfile",
                str(password_file),
                "--auth-host",
                "scram-sha-256",
                "--auth-local",
                "peer",
                "--encoding",
                "UTF8",
                "--no-locale",
                "--no-sync",
            ],
            check=True,
            capture_output=True,
            timeout=120,
            **self._as_owner(),
        )
        if self.host != "127.0.0.1":  # initdb lets in loopback only: let in the host's subnet
            with (data / "pg_hba.conf").open("a") as hba:
                hba.write("host all all samenet scram-sha-256\n")
        with (self.directory / "postgres.log").open("ab") as log:
            self.proc = subprocess.Popen(
                [
                    str(self.bin_dir / "postgres"),
                    "-D",
                    str(data),
                    "-p",
                    str(self.port),
                    "-k",
                    str(self.directory),
                    "-c",
                    f"listen_addresses={self.host}",
                    # A test cluster: speed over durability.
                    "-c",
                    "fsync=off",
                    "-c",
                    "full_page_writes=off",
                    "-c",
                    "synchronous_commit=off",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                **self._as_owner(),
            )
        wait_for(self._ready, 30, interval=0.1, what=f"postgres on {self.port}")

    def _ready(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            log = (self.directory / "postgres.log").read_text(errors="replace")
            raise RuntimeError(f"postgres exited early:\n{log}")
        with psycopg.connect(self.dsn("postgres"), connect_timeout=2):
            return True

    def dsn(self, database: str) -> str:
        return f"postgresql://{ROLE}:{self.password}@{self.host}:{self.port}/{database}"

    def url(self, database: str) -> str:
        """A SQLAlchemy URL as DATABASE_URL would give it."""
        return f"postgresql+psycopg://{ROLE}:{self.password}@{self.host}:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        """Create an empty database; return its SQLAlchemy URL."""
        with psycopg.connect(self.dsn("postgres"), autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')  # type: ignore[arg-type]
        return self.url(name)

    def stop(self) -> None:
        if self.proc is not None:
            stop_group(self.proc, signal.SIGINT)  # PostgreSQL's fast shutdown
            self.proc = None
