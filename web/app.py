"""`create_app`: the composition root of the web process."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from stockpred.settings import Settings, get_settings
from web.admission import AdmissionControl
from web.api import (
    accuracy,
    historical,
    jobs,
    ledger,
    meta,
    models,
    predictions,
    stats,
    storage,
    symbols,
    training,
)
from web.errors import register_error_handlers
from web.fastpath import CachedPredictionFastPath
from web.metrics import install_metrics
from web.middleware import install_middleware
from web.pages import install_pages
from web.services import EXTENSION_KEY, Services

MAX_BODY_BYTES = 64 * 1024  # the largest body this API documents is a few hundred bytes


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """Build the Flask app. `config` may carry Flask keys and `STOCKPRED_SERVICES` (tests)."""
    app = Flask(__name__)
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES  # larger bodies: 413 before any parsing
    if config:
        app.config.update(config)
    svc = app.config.get("STOCKPRED_SERVICES")
    if svc is None:
        settings: Settings = app.config.get("STOCKPRED_SETTINGS") or get_settings()
        svc = Services(settings=settings, started_at=time.time())
    app.extensions[EXTENSION_KEY] = svc
    install_metrics(app, svc)
    register_error_handlers(app)
    install_middleware(app)
    app.register_blueprint(meta.bp)
    app.register_blueprint(jobs.bp)
    app.register_blueprint(historical.bp)
    app.register_blueprint(predictions.bp)
    app.register_blueprint(training.bp)
    app.register_blueprint(models.bp)
    app.register_blueprint(stats.bp)
    app.register_blueprint(storage.bp)
    app.register_blueprint(ledger.bp)
    app.register_blueprint(symbols.bp)
    app.register_blueprint(accuracy.bp)
    install_pages(app, svc.settings)
    # Outermost first: the client's address, then its rate limits, then cache hits.
    hits = CachedPredictionFastPath(app.wsgi_app, lambda: svc.prediction_lookup)
    wsgi = AdmissionControl(hits, lambda: svc.rate_limits)
    proxies = svc.settings.web_trusted_proxies
    # The proxies' X-Forwarded-Proto too: the dashboard's session cookie is Secure behind TLS.
    fixed = ProxyFix(wsgi, x_for=proxies, x_proto=proxies) if proxies else wsgi
    app.wsgi_app = fixed  # type: ignore[method-assign]
    return app
