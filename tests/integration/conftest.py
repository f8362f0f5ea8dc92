"""Fixtures of the integration layer that need a server besides Redis."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.postgres import PostgresServer, postgres_bin


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A real PostgreSQL for the whole session (missing binaries fail in CI, skip elsewhere)."""
    bin_dir = postgres_bin()
    if bin_dir is None:
        message = "PostgreSQL is not installed: `make system-deps` installs it"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    with tempfile.TemporaryDirectory(prefix="sp-postgres-") as directory:
        server = PostgresServer(Path(directory), bin_dir)
        try:
            server.start()
            yield server
        finally:
            server.stop()
