"""The training lock's renewal: its schedule, a lost claim, and the release at the end."""

from __future__ import annotations

import redis

from stockpred.jobs.locks import Renewal


class FakeLock:
    """Answers renewals from a script and records what was asked."""

    def __init__(self, ttl: int, outcomes: list[object]) -> None:
        self.ttl = ttl
        self.key = "stockpred:lock:train:ACME"
        self.outcomes = outcomes
        self.renewed: list[str] = []
        self.released: list[str] = []

    def renew(self, owner: str) -> int:
        self.renewed.append(owner)
        outcome = self.outcomes.pop(0) if self.outcomes else 1
        if isinstance(outcome, Exception):
            raise outcome
        assert isinstance(outcome, int)
        return outcome

    def owner(self) -> str:
        return "job-other"

    def release(self, owner: str) -> bool:
        self.released.append(owner)
        return True


class Ticks:
    """A `wait` that lets `count` intervals pass, recording each, then says stop."""

    def __init__(self, count: int) -> None:
        self.count = count
        self.waited: list[float] = []

    def __call__(self, seconds: float) -> bool:
        self.waited.append(seconds)
        return len(self.waited) > self.count


def test_it_renews_at_once_then_every_third_of_the_ttl_and_releases_at_the_end() -> None:
    lock = FakeLock(ttl=300, outcomes=[])
    ticks = Ticks(4)
    with Renewal(lock, "job-1", wait=ticks) as renewal:  # type: ignore[arg-type]
        assert lock.renewed[0] == "job-1"  # at once: a queued claim's long TTL is cut short
    assert ticks.waited == [100.0] * 5
    assert lock.renewed == ["job-1"] * 5 and renewal.renewals == 5
    assert lock.released == ["job-1"] and not renewal.lost


def test_a_redis_error_is_survived_and_the_next_renewal_tried() -> None:
    lock = FakeLock(ttl=30, outcomes=[1, redis.ConnectionError("down"), 2, 1])
    with Renewal(lock, "job-1", wait=Ticks(3)) as renewal:  # type: ignore[arg-type]
        pass
    assert len(lock.renewed) == 4 and renewal.renewals == 3 and not renewal.lost


def test_a_claim_held_by_another_job_is_lost_and_renewal_stops() -> None:
    lock = FakeLock(ttl=30, outcomes=[1, 0])
    ticks = Ticks(10)
    with Renewal(lock, "job-1", wait=ticks) as renewal:  # type: ignore[arg-type]
        pass
    assert renewal.lost and len(lock.renewed) == 2 and len(ticks.waited) == 1
    assert lock.released == ["job-1"]  # a no-op on Redis: the script checks the owner
