"""A PostgreSQL ledger in backups: `pg_dump` (custom format) out, `pg_restore` back in.

pg_dump reads one consistent snapshot of the database while writers go on (its own
transaction, REPEATABLE READ). pg_restore runs in a single transaction with --clean, so a
restore replaces the ledger's tables entirely or not at all. The password reaches the tools
through PGPASSWORD in their environment, never on a command line another user could read.
"""

from __future__ import annotations

import glob
import logging
import os
import shutil
import subprocess
from pathlib import Path

from sqlalchemy.engine import make_url

from stockpred.ledger.database import shown_url

log = logging.getLogger(__name__)
TIMEOUT_S = 3600


class DumpFailed(RuntimeError):
    """pg_dump or pg_restore is missing or failed; the message says which and why."""


def is_postgresql(url: str) -> bool:
    """Whether a DATABASE_URL names a PostgreSQL database."""
    return make_url(url).get_backend_name() == "postgresql"


def _tool(name: str) -> str:
    """The client binary on PATH, else the newest of Debian's versioned folders."""
    found = shutil.which(name) or next(
        iter(sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)), None
    )
    if found is None:
        raise DumpFailed(f"{name} is not installed (Debian: apt-get install postgresql-client)")
    return found


def client_env(url: str) -> dict[str, str]:
    """libpq's environment for the database `url` names (PGHOST, PGPASSWORD, ...)."""
    parsed = make_url(url)
    env = {
        key: value
        for key, value in (
            ("PGHOST", parsed.host or str(parsed.query.get("host") or "")),
            ("PGPORT", str(parsed.port or "")),
            ("PGUSER", parsed.username or ""),
            ("PGPASSWORD", parsed.password or ""),
            ("PGDATABASE", parsed.database or ""),
            ("PGSSLMODE", str(parsed.query.get("sslmode") or "")),
        )
        if value
    }
    return {**os.environ, **env}


def _run(command: list[str], url: str) -> None:
    try:
        # The command is ours: a resolved tool path, fixed flags, a file path, a database name.
        done = subprocess.run(  # noqa: S603
            command,
            env=client_env(url),
            capture_output=True,
            text=True,
            timeout=TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise DumpFailed(f"{Path(command[0]).name} on {shown_url(make_url(url))}: {exc}") from exc
    if done.returncode != 0:
        raise DumpFailed(
            f"{Path(command[0]).name} on {shown_url(make_url(url))} exited {done.returncode}: "
            f"{done.stderr.strip()[-500:]}"
        )


def dump(url: str, target: Path) -> None:
    """Write a consistent dump of the database `url` names to the new file `target` (fsynced)."""
    _run(
        [_tool("pg_dump"), "--format=custom", "--no-owner", "--no-privileges", "-f", str(target)],
        url,
    )
    with open(target, "rb") as handle:
        os.fsync(handle.fileno())
    log.info("dumped the ledger %s to %s", shown_url(make_url(url)), target)


def restore(dump_file: Path, url: str) -> None:
    """Replace the ledger's tables in the database `url` names with those of `dump_file`."""
    _run(
        [
            _tool("pg_restore"),
            "--clean",
            "--if-exists",
            "--single-transaction",
            "--no-owner",
            "--no-privileges",
            "--exit-on-error",
            "-d",
            make_url(url).database or "",
            str(dump_file),
        ],
        url,
    )
    log.info("restored the ledger %s from %s", shown_url(make_url(url)), dump_file)
