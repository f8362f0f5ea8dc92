"""The supervisord configuration generated from the Procfile, as supervisord itself reads it."""

from __future__ import annotations

import shlex
import socket
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from supervisor.datatypes import RestartUnconditionally
from supervisor.options import ServerOptions

from stockpred.ops.procset import (
    PreflightError,
    preflight,
    procfile_entries,
    selected_entries,
    supervised_commands,
    write_supervisor_config,
)
from stockpred.ops.redis_server import redis_server_argv
from stockpred.ops.supervisor_conf import APP_GROUP, START_RETRIES, START_SECONDS
from stockpred.paths import DataTree
from stockpred.settings import Settings
from tests.support import BIN, ROOT


def parsed(conf: Path) -> dict[str, Any]:
    """Group name → {program name → supervisord's own config object} for `conf`."""
    options = ServerOptions()
    options.realize(["-c", str(conf)])
    return {
        group.name: {process.name: process for process in group.process_configs}
        for group in options.process_group_configs
    }


def test_every_procfile_entry_is_a_supervised_program_with_the_same_command(
    settings: Settings,
) -> None:
    entries = supervised_commands(settings, selected_entries(settings, ROOT / "Procfile"))
    groups = parsed(write_supervisor_config(settings, entries, ROOT))
    programs = {name: p for group in groups.values() for name, p in group.items()}
    assert {name: p.command for name, p in programs.items()} == entries  # %h survives as %h
    assert set(programs) == set(procfile_entries(ROOT / "Procfile"))
    for program in programs.values():
        assert program.autorestart is RestartUnconditionally
        assert (program.startsecs, program.startretries) == (START_SECONDS, START_RETRIES)
        assert program.stopasgroup and program.killasgroup
        assert program.stdout_logfile == "/dev/stdout" and program.redirect_stderr
        assert program.directory == str(ROOT)


def test_redis_starts_first_and_the_others_stop_together_before_it(settings: Settings) -> None:
    entries = selected_entries(settings, ROOT / "Procfile")
    conf = write_supervisor_config(settings, entries, ROOT)
    options = ServerOptions()
    options.realize(["-c", str(conf)])
    order = [group.name for group in sorted(options.process_group_configs)]
    assert order == ["redis", APP_GROUP]  # started in this order, stopped in reverse
    assert set(parsed(conf)[APP_GROUP]) == set(entries) - {"redis"}


def test_with_an_external_redis_no_redis_program_is_configured(settings: Settings) -> None:
    external = settings.model_copy(update={"redis_url": "redis://elsewhere:6379/0"})
    entries = selected_entries(external, ROOT / "Procfile")
    assert "redis" not in parsed(write_supervisor_config(external, entries, ROOT))


def test_the_config_and_its_folder_are_private_and_named_by_the_tree(settings: Settings) -> None:
    tree = DataTree.from_settings(settings)
    conf = write_supervisor_config(settings, {"web": "true"}, ROOT)
    assert conf == tree.supervisord_conf
    assert stat.S_IMODE(conf.stat().st_mode) == 0o600
    assert stat.S_IMODE(tree.supervisor.stat().st_mode) == 0o700
    text = conf.read_text()
    for path in (tree.supervisord_socket, tree.supervisord_pid, tree.supervisord_log):
        assert str(path) in text


def test_a_malformed_or_repeated_procfile_line_is_refused_with_its_line(tmp_path: Path) -> None:
    procfile = tmp_path / "Procfile"
    procfile.write_text("# comment\n\nweb: gunicorn\nnot a line\n")
    with pytest.raises(PreflightError, match=r"Procfile:4"):
        procfile_entries(procfile)
    procfile.write_text("web: a\nweb: b\n")
    with pytest.raises(PreflightError, match="defined twice"):
        procfile_entries(procfile)


def test_a_second_run_on_the_same_data_folder_is_refused(settings: Settings) -> None:
    tree = DataTree.from_settings(settings)
    tree.supervisor.mkdir(parents=True, exist_ok=True)
    with socket.socket(socket.AF_UNIX) as listener:
        listener.bind(str(tree.supervisord_socket))
        listener.listen(1)
        with pytest.raises(PreflightError, match="another `make run`"):
            preflight(settings.model_copy(update={"redis_url": "redis://elsewhere:6379/0"}))


def test_a_stdout_that_is_a_file_becomes_append_only(tmp_path: Path) -> None:
    out = tmp_path / "run.log"
    probe = (
        "import fcntl, os; from stockpred.ops.procset import append_to_stdout_file; "
        "append_to_stdout_file(); print(bool(fcntl.fcntl(1, fcntl.F_GETFL) & os.O_APPEND))"
    )
    with out.open("wb") as handle:  # truncating, not appending: what `make run > file` gives
        subprocess.run([sys.executable, "-c", probe], stdout=handle, check=True, cwd=ROOT)
    assert out.read_text().strip() == "True"


def test_ctl_on_a_data_folder_that_never_ran_the_set_says_so(data_env: dict[str, str]) -> None:
    out = subprocess.run(
        [str(BIN / "stockpred"), "ctl", "status"],
        env=data_env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode != 0
    assert "supervisord.conf is missing" in out.stderr


def test_the_redis_wrapper_is_resolved_to_the_redis_server_it_would_exec(
    settings: Settings,
) -> None:
    procfile = selected_entries(settings, ROOT / "Procfile")
    assert procfile["redis"] == "stockpred redis-server"
    resolved = supervised_commands(settings, procfile)
    assert shlex.split(resolved["redis"]) == redis_server_argv(settings)
    assert {k: v for k, v in resolved.items() if k != "redis"} == {
        k: v for k, v in procfile.items() if k != "redis"
    }


def test_a_stdout_that_is_a_socket_still_receives_what_is_written_to_dev_stdout() -> None:
    probe = (
        "from stockpred.ops.procset import relay_socket_stdout; relay_socket_stdout(); "
        "open('/dev/stdout', 'ab').write(b'through the relay')"
    )
    ours, theirs = socket.socketpair()
    with ours, theirs:
        subprocess.run([sys.executable, "-c", probe], stdout=theirs, check=True, cwd=ROOT)
        theirs.close()
        ours.settimeout(10)
        received = b""
        while chunk := ours.recv(1024):
            received += chunk
    assert received == b"through the relay"
