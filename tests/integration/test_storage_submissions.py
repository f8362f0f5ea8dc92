"""Storage requests through the web with no worker listening: identical pending work is one
job, and a restore or verify without a name is fixed to the newest backup when submitted."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from flask.testing import FlaskClient

from stockpred.infra.redis_client import connect
from stockpred.jobs.records import JobStore
from stockpred.paths import DataTree
from stockpred.settings import Settings
from stockpred.storage.backup import create_backup
from tests.support import RedisServer


@pytest.fixture
def lonely(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """Settings whose Redis no worker consumes: submitted jobs stay queued."""
    server = RedisServer(tmp_path_factory.mktemp("storage-no-workers"))
    server.start()
    try:
        yield settings.model_copy(update={"redis_url": server.url})
    finally:
        server.stop()


@pytest.fixture
def api(lonely: Settings) -> Iterator[FlaskClient]:
    """The web app on that Redis."""
    from web import create_app

    app = create_app({"STOCKPRED_SETTINGS": lonely, "TESTING": True})
    yield app.test_client()
    app.extensions["stockpred"].close()


def post(api: FlaskClient, settings: Settings, path: str, body: dict[str, Any]) -> Any:
    response = api.post(
        f"/api/v1/storage/{path}",
        json=body,
        headers={"Authorization": f"Bearer {settings.api_token}"},
    )
    return response.status_code, response.get_json()


def test_a_second_identical_request_returns_the_pending_job_until_it_finishes(
    api: FlaskClient, lonely: Settings
) -> None:
    first = post(api, lonely, "backup", {"categories": ["config"]})
    again = post(api, lonely, "backup", {"categories": ["config"]})
    other = post(api, lonely, "backup", {"categories": ["models"]})
    assert first[0] == again[0] == other[0] == 202
    assert again[1]["task_id"] == first[1]["task_id"], "the same work waiting is one job"
    assert other[1]["task_id"] != first[1]["task_id"], "other arguments are other work"
    store = JobStore(connect(lonely), lonely.job_ttl)
    assert store.update(first[1]["task_id"], state="succeeded", result={"name": "x"})
    after = post(api, lonely, "backup", {"categories": ["config"]})
    assert after[0] == 202 and after[1]["task_id"] != first[1]["task_id"], "finished: queue anew"


def test_a_restore_without_a_name_is_fixed_to_the_newest_backup_at_submission(
    api: FlaskClient, lonely: Settings
) -> None:
    tree = DataTree.from_settings(lonely)
    assert post(api, lonely, "verify", {})[0] == 404, "no backup yet: nothing to pick"
    older = create_backup(tree, categories=["config"]).info.name
    status, body = post(api, lonely, "restore", {"categories": ["config"]})
    assert status == 202
    store = JobStore(connect(lonely), lonely.job_ttl)
    job = store.get(body["task_id"])
    assert job is not None and job.params is not None
    assert job.params["backup"] == older
    verify = store.get(post(api, lonely, "verify", {})[1]["task_id"])
    assert verify is not None and verify.params == {"backup": older}
