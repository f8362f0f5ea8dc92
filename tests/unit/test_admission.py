"""Admission control: which requests count against which limit, and the one 429 answer."""

from __future__ import annotations

import logging
import threading
from typing import Any

import pytest
import redis
from flask.testing import FlaskClient
from limits.storage import MemoryStorage

from stockpred.settings import Settings
from tests.unit.test_fastpath import STORED, FakeLookup
from tests.unit.test_web import TOKEN, make_app
from web.admission import MUTATIONS, READS, RateLimits
from web.metrics import web_metrics
from web.services import EXTENSION_KEY, Services


def limited(settings: Settings, **limits: str) -> Settings:
    """Settings with small limits, e.g. reads="2/minute"."""
    update: dict[str, Any] = {"api_token": TOKEN}
    update.update({f"rate_limit_{name}": value for name, value in limits.items()})
    return settings.model_copy(update=update)


def client_with_cache(settings: Settings) -> FlaskClient:
    """The app with NVDA h1 cached (answered by the fast path)."""
    app = make_app(settings)
    svc: Services = app.extensions[EXTENSION_KEY]
    svc.prediction_lookup = FakeLookup({("NVDA", 1): STORED})  # type: ignore[assignment]
    return app.test_client()


def assert_429(response: Any, limit_class: str) -> None:
    assert response.status_code == 429
    body = response.get_json()
    assert body["error"] == "too many requests" and body["status"] == 429
    assert limit_class in body["detail"] and body["request_id"]
    assert int(response.headers["Retry-After"]) >= 1


def test_cache_hits_below_flask_count_as_reads_and_are_refused_past_the_limit(
    settings: Settings,
) -> None:
    client = client_with_cache(limited(settings, reads="3/minute"))
    for _ in range(3):
        hit = client.get("/api/v1/predict/NVDA")
        assert hit.status_code == 200 and hit.headers["X-Cache"] == "hit"
    refused = client.get("/api/v1/predict/NVDA")
    assert_429(refused, READS)
    assert "X-Cache" not in refused.headers
    assert client.get("/api/v1/models").status_code == 429  # one budget for every cheap read


def test_health_and_metrics_are_never_limited(settings: Settings) -> None:
    client = make_app(limited(settings, reads="1/minute")).test_client()
    client.get("/")
    assert client.get("/").status_code == 429
    for _ in range(3):
        assert client.get("/api/v1/health").status_code != 429
        assert client.get("/metrics").status_code == 200


def test_mutations_have_their_own_limit_checked_before_the_token(settings: Settings) -> None:
    client = make_app(limited(settings, mutations="2/minute")).test_client()
    auth = {"Authorization": f"Bearer {TOKEN}"}
    assert client.post("/api/v1/_test/echo", headers=auth).status_code == 200
    assert client.post("/api/v1/_test/echo").status_code == 401  # a guess counts too
    assert_429(client.post("/api/v1/_test/echo", headers=auth), MUTATIONS)
    assert client.get("/").status_code == 200  # reads are a separate class


def test_each_client_address_has_its_own_budget(settings: Settings) -> None:
    client = make_app(limited(settings, reads="1/minute")).test_client()
    first = {"REMOTE_ADDR": "10.0.0.1"}
    assert client.get("/", environ_base=first).status_code == 200
    assert client.get("/", environ_base=first).status_code == 429
    assert client.get("/", environ_base={"REMOTE_ADDR": "10.0.0.2"}).status_code == 200


def test_forwarded_for_is_believed_only_from_the_configured_proxies(settings: Settings) -> None:
    direct = make_app(limited(settings, reads="1/minute")).test_client()
    spoofed = [{"X-Forwarded-For": "192.0.2.1"}, {"X-Forwarded-For": "192.0.2.2"}]
    assert direct.get("/", headers=spoofed[0]).status_code == 200
    assert direct.get("/", headers=spoofed[1]).status_code == 429  # same socket address

    behind_proxy = limited(settings, reads="1/minute").model_copy(update={"web_trusted_proxies": 1})
    proxied = make_app(behind_proxy).test_client()
    assert proxied.get("/", headers=spoofed[0]).status_code == 200
    assert proxied.get("/", headers=spoofed[1]).status_code == 200
    assert proxied.get("/", headers=spoofed[0]).status_code == 429


class DownStorage:
    """A limiter storage whose Redis is away."""

    def __getattr__(self, name: str) -> Any:
        def fail(*_: Any, **__: Any) -> Any:
            raise redis.ConnectionError("Connection refused")

        return fail


def test_the_limiter_fails_open_with_one_warning_when_redis_is_down(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    app = make_app(limited(settings, reads="1/minute"))
    svc: Services = app.extensions[EXTENSION_KEY]
    limits = RateLimits.in_memory(svc.settings)
    limits._limiter.storage = DownStorage()  # type: ignore[assignment]
    svc.rate_limits = limits  # type: ignore[misc]
    errors = web_metrics().limiter_errors
    before = errors._value.get()
    client = app.test_client()
    with caplog.at_level(logging.WARNING, logger="web.admission"):
        statuses = [client.get("/").status_code for _ in range(3)]
    assert statuses == [200, 200, 200]
    assert errors._value.get() == before + 3
    warnings = [r for r in caplog.records if "rate limits not enforced" in r.getMessage()]
    assert len(warnings) == 1


def test_a_read_that_queues_work_also_counts_against_the_work_limit(settings: Settings) -> None:
    client = make_app(limited(settings, work="1/minute")).test_client()
    first = client.get("/api/v1/storage/status?refresh=true")
    assert first.status_code != 429  # admitted (then failed on the fakes, which queue nothing)
    assert_429(client.get("/api/v1/storage/status?refresh=true"), "work")
    assert client.get("/api/v1/models").status_code == 200  # reads that queue nothing still go


def test_a_refused_client_is_refused_from_memory_until_its_window_ends(settings: Settings) -> None:
    limits = RateLimits.in_memory(limited(settings, reads="1/minute"))
    assert limits.hit(READS, "10.0.0.1") is None
    first = limits.hit(READS, "10.0.0.1")
    assert first is not None and 1 <= first.retry_after <= 60
    limits._limiter.storage = DownStorage()  # type: ignore[assignment]
    again = limits.hit(READS, "10.0.0.1")  # Redis is not asked: it would fail open
    assert again is not None and again.retry_after <= first.retry_after
    assert limits.hit(MUTATIONS, "10.0.0.1") is None  # another class asks (and fails open)


class CountingStorage(MemoryStorage):
    """MemoryStorage that counts the increments it is asked for."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def incr(self, key: str, expiry: float, amount: int = 1) -> int:
        self.calls += 1
        return super().incr(key, expiry, amount)


def test_a_busy_client_is_counted_in_leases_and_never_past_its_limit(settings: Settings) -> None:
    storage = CountingStorage()
    limits = RateLimits(storage, limited(settings, reads="1000/minute"))
    admitted = sum(limits.hit(READS, "10.0.0.1") is None for _ in range(1200))
    assert admitted <= 1000 and admitted >= 1000 - 50  # refused at most a lease early
    assert storage.calls < 100  # not one call per request
    counted = storage.get(limits.rules[READS][0].key_for(READS, "10.0.0.1"))
    assert counted >= admitted


class InterleavedStorage(CountingStorage):
    """Two requests counting at once; the first to start finishes first, the second after."""

    def __init__(self) -> None:
        super().__init__()
        self.started = 0
        self.second_started = threading.Event()
        self.first_done = threading.Event()

    def incr(self, key: str, expiry: float, amount: int = 1) -> int:
        self.started += 1
        if self.started == 1:
            assert self.second_started.wait(5)
            value = super().incr(key, expiry, amount)
            self.first_done.set()
            return value
        self.second_started.set()
        assert self.first_done.wait(5)
        return super().incr(key, expiry, amount)


def test_places_leased_by_concurrent_requests_are_kept(settings: Settings) -> None:
    limits = RateLimits(CountingStorage(), limited(settings, reads="1000000/minute"))
    lease_key = (READS, "10.0.0.1")
    for _ in range(20):  # a busy client: leases grow; stop when one is used up
        assert limits.hit(READS, "10.0.0.1") is None
        if limits._leases[lease_key].left == 0 and limits._leases[lease_key].size > 1:
            break
    size = limits._leases[lease_key].size
    storage = InterleavedStorage()
    storage.storage = limits._limiter.storage.storage  # type: ignore[attr-defined]
    limits._limiter.storage = storage  # type: ignore[assignment]
    leasing = threading.Thread(target=limits.hit, args=(READS, "10.0.0.1"))
    leasing.start()
    assert limits.hit(READS, "10.0.0.1") is None  # in flight beside the leasing request
    leasing.join()
    assert storage.calls == 2
    assert all(limits.hit(READS, "10.0.0.1") is None for _ in range(2 * size))
    assert storage.calls == 2  # places leased by both requests were kept


def test_an_occasional_client_is_counted_request_by_request(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    storage = CountingStorage()
    limits = RateLimits(storage, limited(settings, reads="1000/minute"))
    clock = [1000.0]
    monkeypatch.setattr("web.admission.time.monotonic", lambda: clock[0])
    for _ in range(5):
        assert limits.hit(READS, "10.0.0.2") is None
        clock[0] += 2.0  # slower than one lease lifetime
    assert storage.calls == 5
    assert storage.get(limits.rules[READS][0].key_for(READS, "10.0.0.2")) == 5
