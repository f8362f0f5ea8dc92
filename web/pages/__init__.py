"""The dashboard: server-rendered pages, the operator's sign-in and the actions on the pages.

Pages read what the JSON API reads (web.pages.reads) and act through the code the API's views
call (web.api.*); the browser's script reads the JSON API for forecasts and job progress.
Every form carries a CSRF token (Flask-WTF's CSRFProtect, checked for this blueprint only: the
JSON API authenticates with the bearer token, never with a cookie). Signing in exchanges the
API token for a session cookie (HttpOnly, SameSite=Strict, Secure on HTTPS); anonymous
visitors read. No TensorFlow here, as everywhere in the web.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import timedelta

from flask import Flask, Request, request
from flask.sessions import SecureCookieSessionInterface
from flask_wtf.csrf import CSRFProtect

from stockpred.settings import Settings

SESSION_HOURS = 8
csrf = CSRFProtect()


class _SessionInterface(SecureCookieSessionInterface):
    """Flask's signed-cookie session, marked Secure whenever the request came over HTTPS."""

    def get_cookie_secure(self, app: Flask) -> bool:
        # Behind a TLS-terminating proxy the scheme is the proxy's X-Forwarded-Proto, which
        # ProxyFix applies when WEB_TRUSTED_PROXIES trusts it (web.app).
        current: Request = request
        return bool(current.is_secure) or bool(super().get_cookie_secure(app))


def session_secret(settings: Settings) -> str:
    """The key that signs sessions and CSRF tokens: derived from the API token.

    Every web process derives the same key, and rotating the token signs every operator out.
    Without a token nobody can sign in; a random key still lets anonymous forms render.
    """
    if not settings.api_token:
        return secrets.token_hex(32)
    return hmac.new(
        settings.api_token.encode(), b"stockpred dashboard sessions", hashlib.sha256
    ).hexdigest()


def install_pages(app: Flask, settings: Settings) -> None:
    """Configure sessions and CSRF protection, and register the pages' blueprint."""
    from web.pages.views import bp  # the views import `csrf` from this module

    if not app.config.get("SECRET_KEY"):  # a test may choose its own
        app.config["SECRET_KEY"] = session_secret(settings)
    app.config.update(
        SESSION_COOKIE_NAME="stockpred_session",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Strict",
        PERMANENT_SESSION_LIFETIME=timedelta(hours=SESSION_HOURS),
        # CSRFProtect checks only when web.pages.views asks (the API takes no cookies).
        WTF_CSRF_CHECK_DEFAULT=False,
        WTF_CSRF_TIME_LIMIT=SESSION_HOURS * 3600,
    )
    app.session_interface = _SessionInterface()
    csrf.init_app(app)
    app.register_blueprint(bp)
