"""Rules of the layout: import directions, no TensorFlow in web, routes, Make and Procfile agree."""

from __future__ import annotations

import importlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import celeryconfig
from stockpred.ops.procset import procfile_entries, selected_entries
from stockpred.queues import QUEUES, queue_for_task
from stockpred.settings import SettingsError, load_settings, variable_names
from tests.support import ROOT


def modules_after_import(statement: str) -> set[str]:
    code = f"import json, sys; {statement}; print(json.dumps(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return set(json.loads(out.stdout))


def test_importing_web_does_not_import_tensorflow() -> None:
    loaded = modules_after_import("import web; web.create_app()")
    assert "tensorflow" not in loaded
    assert "keras" not in loaded
    assert not {"pandas", "yfinance", "sklearn"} & loaded, "the web stays light"


def test_importing_the_workers_and_tasks_does_not_import_tensorflow() -> None:
    loaded = modules_after_import("import workers; workers.app.loader.import_default_modules()")
    assert "tensorflow" not in loaded


@pytest.mark.parametrize(
    "module",
    [
        "stockpred.settings",
        "stockpred.paths",
        "stockpred.jobs.records",
        "stockpred.jobs.submit",
        "stockpred.ops.provision",
        "stockpred.infra.logs",
        "stockpred.ops.cli",
        "stockpred.ledger.store",
        "stockpred.ledger.service",
        "stockpred.ledger.migrate",
    ],
)
def test_the_domain_imports_neither_web_tasks_workers_nor_flask(module: str) -> None:
    loaded = modules_after_import(f"import {module}")
    assert not {"web", "tasks", "workers", "flask", "celery"} & loaded


def test_every_task_and_beat_entry_routes_to_a_declared_queue() -> None:
    assert celeryconfig.check_routes() == []
    result = subprocess.run(
        [sys.executable, "-m", "celeryconfig"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "routes ok" in result.stdout


def test_a_task_named_for_an_unknown_queue_is_caught() -> None:
    assert queue_for_task("inference.predict") == "inference"
    assert queue_for_task("reporting.send") is None
    assert queue_for_task("predict") is None


def test_celery_reliability_settings() -> None:
    assert {q.name for q in celeryconfig.task_queues} == set(QUEUES)
    assert celeryconfig.task_acks_late and celeryconfig.task_reject_on_worker_lost
    assert celeryconfig.worker_prefetch_multiplier == 1
    assert celeryconfig.accept_content == ["json"]
    assert celeryconfig.task_track_started and celeryconfig.worker_send_task_events
    settings = load_settings({})
    derived = celeryconfig.from_settings(settings)
    limits = celeryconfig.time_limits(int(settings.training_time_limit.total_seconds()))
    visibility = derived["broker_transport_options"]["visibility_timeout"]
    assert max(limits.values()) < visibility
    assert derived["result_backend_transport_options"]["visibility_timeout"] == visibility
    assert derived["broker_url"] == derived["result_backend"] == settings.celery_url
    # Beat keeps its schedule in the Redis the broker uses, through redis-py's URL for it.
    assert "beat_schedule_filename" not in derived
    assert celeryconfig.beat_scheduler == "redbeat.RedBeatScheduler"
    assert derived["redbeat_redis_url"] == settings.redis_client_url
    assert derived["redbeat_lock_timeout"] == settings.beat_lock_timeout.total_seconds()
    assert derived["beat_max_loop_interval"] * 5 == derived["redbeat_lock_timeout"]


def test_tcp_keepalive_is_asked_only_of_tcp_connections() -> None:
    """redis-py's Unix-socket connections refuse socket_keepalive: no task could be sent."""
    on_socket = celeryconfig.from_settings(load_settings({}))
    on_tcp = celeryconfig.from_settings(load_settings({"REDIS_URL": "redis://h:6379/0"}))
    assert on_socket["redis_socket_keepalive"] is False
    assert on_tcp["redis_socket_keepalive"] is True
    assert on_socket["redbeat_redis_url"].startswith("unix://")
    assert "socket_keepalive" not in on_socket["redbeat_redis_options"]


def test_a_beat_lock_shorter_than_five_ticks_of_a_second_is_refused() -> None:
    with pytest.raises(SettingsError, match="BEAT_LOCK_TIMEOUT=4s"):
        load_settings({"BEAT_LOCK_TIMEOUT": "4s"})


def test_the_apps_take_what_follows_from_the_settings_lazily() -> None:
    from workers import app

    for module in app.conf.include:  # the task modules a worker imports (without its signals)
        importlib.import_module(module)
    settings = load_settings({})
    assert app.conf.broker_url == settings.celery_url
    assert app.conf.beat_schedule["cache-cleanup"]["schedule"] == settings.cache_cleanup_interval
    assert (
        app.conf.broker_transport_options
        == celeryconfig.from_settings(settings)["broker_transport_options"]
    )
    train = app.tasks["training.train"]
    limit = int(settings.training_time_limit.total_seconds())
    assert (train.time_limit, train.soft_time_limit) == (limit, int(limit * 0.9))
    assert app.tasks["inference.predict"].time_limit == 120
    assert app.tasks["inference.predict"].track_started is False


def test_importing_the_worker_side_reads_no_settings_and_creates_nothing(tmp_path: Path) -> None:
    missing = tmp_path / "missing"
    code = (
        "import sys, workers; "
        "assert 'prometheus_client' not in sys.modules, 'imported before its folder is set'; "
        "import celeryconfig, tasks.context, tasks.inference, tasks.training, tasks.maintenance"
    )
    env = {**os.environ, "STOCKPRED_DATA_DIR": str(missing), "WEB_PORT": "x"}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert not missing.exists()
    assert list(tmp_path.iterdir()) == []


def make_dry_run(target: str) -> str:
    out = subprocess.run(
        ["make", "--no-print-directory", "-n", target, "VENV=VENVDIR", "STAMP=/dev/null"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return out.stdout.strip().splitlines()[-1].replace("VENVDIR/bin/", "")


@pytest.mark.parametrize(
    "name",
    ["web", "worker-inference", "worker-training", "worker-maintenance", "beat", "flower", "redis"],
)
def test_each_make_target_runs_the_procfile_command(name: str) -> None:
    assert make_dry_run(name) == procfile_entries(ROOT / "Procfile")[name]


def test_make_help_lists_every_target_with_a_line() -> None:
    makefile = (ROOT / "Makefile").read_text()
    targets = set(re.findall(r"^([a-z][a-z-]+):", makefile, flags=re.M))
    documented = set(re.findall(r"^([a-z][a-z-]+):.*## ", makefile, flags=re.M))
    assert targets == documented
    out = subprocess.run(
        ["make", "--no-print-directory", "help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout
    for target in targets:
        assert target in out
    required = {
        "help",
        "setup",
        "run",
        "test",
        "lint",
        "web",
        "worker-inference",
        "worker-training",
        "worker-maintenance",
        "beat",
        "flower",
        "storage-setup",
        "storage-test",
        "clean",
    }
    assert required <= targets


def test_the_process_set_skips_redis_when_an_external_server_is_used() -> None:
    own = selected_entries(load_settings({}), ROOT / "Procfile")
    external = selected_entries(load_settings({"REDIS_URL": "redis://h:1/0"}), ROOT / "Procfile")
    assert "redis" in own and "redis" not in external
    assert set(own) - {"redis"} == set(external)


def test_the_workers_match_the_documented_launch_profiles() -> None:
    entries = procfile_entries(ROOT / "Procfile")
    assert "--queues inference --concurrency 2" in entries["worker-inference"]
    assert "--concurrency 1 --max-tasks-per-child 1" in entries["worker-training"]
    assert "--queues maintenance --concurrency 1" in entries["worker-maintenance"]
    for queue in QUEUES:
        assert f"--hostname {queue}@%h" in entries[f"worker-{queue}"]


def test_readme_starts_with_the_two_commands_and_documents_every_setting() -> None:
    readme = (ROOT / "README.md").read_text()
    head = "\n".join(readme.splitlines()[:15])
    assert "make run" in head and "make test" in head
    section = readme.split("\n## Settings\n", 1)[1].split("\n### ", 1)[0]
    rows = [line.split("|")[1] for line in section.splitlines() if line.startswith("| `")]
    documented = {name for row in rows for name in re.findall(r"`([A-Z][A-Z0-9_]+)`", row)}
    declared = set(variable_names())
    assert not declared - documented, f"settings missing from README: {declared - documented}"
    assert not documented - declared, f"README documents unknown settings: {documented - declared}"


def test_forecasts_are_scored_each_trading_day_after_the_close_prices_are_refreshed() -> None:
    import celeryconfig

    entries = {entry["task"]: entry["schedule"] for entry in celeryconfig.BEAT_SCHEDULE.values()}
    scoring = entries["maintenance.score_forecasts"]
    refresh = entries["maintenance.refresh_tracked_prices"]
    assert scoring.day_of_week == refresh.day_of_week == {1, 2, 3, 4, 5}
    # After the 16:00 New York close in summer (20:00 UTC) and winter (21:00 UTC) time alike,
    # and after the refresh of the closes it scores against.
    (hour,), (minute,) = scoring.hour, scoring.minute
    (refresh_hour,), (refresh_minute,) = refresh.hour, refresh.minute
    assert (hour, minute) > (refresh_hour, refresh_minute) >= (21, 0)


def test_the_daily_run_forecasts_each_trading_day_from_the_refreshed_closes() -> None:
    import celeryconfig

    entries = {entry["task"]: entry["schedule"] for entry in celeryconfig.BEAT_SCHEDULE.values()}
    daily, refresh = entries["maintenance.daily_run"], entries["maintenance.refresh_tracked_prices"]
    assert daily.day_of_week == {1, 2, 3, 4, 5}
    (hour,), (minute,) = daily.hour, daily.minute
    (refresh_hour,), (refresh_minute,) = refresh.hour, refresh.minute
    assert (hour, minute) > (refresh_hour, refresh_minute)
