"""The fault suite: real process sets, faults injected, what the user sees and what is on disk.

`make test` runs it in the form that fits CI; `make chaos` sets STOCKPRED_CHAOS=full for the
longer form (more rounds, longer floods). Each scenario reads its budget from `chaos_budget`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import pytest

FULL_ENV = "STOCKPRED_CHAOS"


@dataclass(frozen=True)
class ChaosBudget:
    """How hard a scenario pushes: rounds of a fault, seconds of a flood, clients in it."""

    full: bool
    rounds: int
    flood_seconds: float
    clients: int


def budget_from_environment() -> ChaosBudget:
    """The CI form unless STOCKPRED_CHAOS=full (make chaos)."""
    if os.environ.get(FULL_ENV, "").lower() == "full":
        return ChaosBudget(full=True, rounds=3, flood_seconds=60.0, clients=16)
    return ChaosBudget(full=False, rounds=1, flood_seconds=10.0, clients=6)


@pytest.fixture(scope="session")
def chaos_budget() -> ChaosBudget:
    return budget_from_environment()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test under tests/chaos carries the `chaos` marker (`-m "not chaos"` skips them)."""
    for item in items:
        if "tests/chaos/" in str(item.fspath).replace(os.sep, "/"):
            item.add_marker(pytest.mark.chaos)
