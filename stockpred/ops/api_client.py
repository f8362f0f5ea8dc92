"""A small client of the service's own HTTP API, for the CLI (standard library only)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

from stockpred.settings import Settings


class ApiUnavailable(RuntimeError):
    """The web service did not answer."""


class ApiClient:
    """Calls http://127.0.0.1:WEB_PORT (or STOCKPRED_API_URL) with the configured token."""

    def __init__(self, settings: Settings, base_url: str | None = None) -> None:
        host = "127.0.0.1" if settings.web_host in ("0.0.0.0", "::") else settings.web_host
        self.base = (base_url or f"http://{host}:{settings.web_port}").rstrip("/")
        self.token = settings.api_token
        if not self.base.startswith(("http://", "https://")):
            raise ValueError(f"the API URL must be http(s), got {self.base!r}")
        # Our own service is local: never send its calls (and token) through HTTP(S)_PROXY.
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def call(
        self, method: str, path: str, body: dict[str, Any] | None = None, timeout: float = 30
    ) -> tuple[int, dict[str, Any]]:
        """Send a request; return (status, JSON body) for any HTTP answer."""
        data = None if body is None else json.dumps(body).encode()
        # The base URL is checked to be http(s) in __init__.
        request = urllib.request.Request(self.base + path, data=data, method=method)  # noqa: S310
        request.add_header("Content-Type", "application/json")
        if self.token and method != "GET":
            request.add_header("Authorization", f"Bearer {self.token}")
        try:
            with self._opener.open(request, timeout=timeout) as response:
                return response.status, json.loads(response.read() or b"{}")
        except urllib.error.HTTPError as err:
            try:
                return err.code, json.loads(err.read() or b"{}")
            except ValueError:
                return err.code, {"error": err.reason}
        except (urllib.error.URLError, OSError) as err:
            raise ApiUnavailable(
                f"the web service at {self.base} did not answer ({err}); start it with "
                "`make run`, or use --local"
            ) from None
