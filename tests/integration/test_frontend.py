"""The nginx frontend's real configuration (docker/nginx/nginx.conf) in front of the real web app.

nginx runs from the repository's config with only the upstream, port and folders moved to this
machine; the web app is served by werkzeug on a free port (real Redis, no workers needed).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from werkzeug.serving import make_server

from stockpred.settings import Settings
from tests.process_set import http_get
from tests.support import ROOT, RedisServer, free_port, stop_group, wait_for
from web import create_app

BROWSER = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}


@pytest.fixture
def web_port(settings: Settings, redis_server: RedisServer) -> Iterator[int]:
    """The web app on a free port, on the session's Redis."""
    on_redis = settings.model_copy(update={"redis_url": redis_server.url})
    app = create_app({"STOCKPRED_SETTINGS": on_redis})
    port = free_port()
    server = make_server("127.0.0.1", port, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield port
    server.shutdown()
    server.server_close()
    app.extensions["stockpred"].close()


@pytest.fixture
def frontend(tmp_path: Path, web_port: int) -> Iterator[str]:
    """nginx with the repository's config, proxying to the web app; its base URL."""
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    if not os.path.exists(nginx):
        pytest.fail("nginx is missing: `make install` installs nginx-light")
    port = free_port()
    (tmp_path / "logs").mkdir()
    (tmp_path / "cache").mkdir()
    text = (
        (ROOT / "docker" / "nginx" / "nginx.conf")
        .read_text()
        .replace("web:8080", f"127.0.0.1:{web_port}")
        .replace("listen 8081", f"listen 127.0.0.1:{port}")
        .replace("/var/log/nginx", str(tmp_path / "logs"))
        .replace("/var/cache/nginx", str(tmp_path / "cache"))
        .replace("/tmp/nginx.pid", str(tmp_path / "nginx.pid"))
    )
    (tmp_path / "nginx.conf").write_text(text)
    proc = subprocess.Popen(
        [nginx, "-c", str(tmp_path / "nginx.conf"), "-p", str(tmp_path), "-g", "daemon off;"],
        start_new_session=True,
        stderr=subprocess.DEVNULL,  # its errors go to logs/error.log
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: _answers(f"{base}/signin"), 20, interval=0.1, what="nginx")
        yield base
    finally:
        stop_group(proc)


def _answers(url: str) -> bool:
    try:
        return http_get(url)[0] == 200
    except OSError:  # not listening yet
        return False


def test_the_frontend_serves_the_dashboard_and_the_api_from_the_web_app(frontend: str) -> None:
    request = urllib.request.Request(f"{frontend}/", headers=BROWSER)
    with urllib.request.urlopen(request, timeout=10) as page:
        assert page.status == 200 and page.headers.get_content_type() == "text/html"
        assert b"<h1>Overview</h1>" in page.read()
    status, body = http_get(f"{frontend}/")
    assert status == 200 and b'"service"' in body  # an API client still gets the JSON index
    status, body = http_get(f"{frontend}/dashboard/static/uPlot.iife.min.js")
    assert status == 200 and len(body) > 40_000
    status, body = http_get(f"{frontend}/signin", BROWSER)
    assert status == 200 and b"csrf_token" in body
    assert http_get(f"{frontend}/symbols/BAD!!")[0] == 400
