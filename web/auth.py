"""The bearer token check: whether a request carries `Authorization: Bearer <STOCKPRED_API_TOKEN>`.

The one owner of the comparison; web.middleware decides per request (once, in `g`) and what
follows asks `authenticated()`: mutating routes refuse without it, an anonymous request never
starts a training and gets no internal detail in a 5xx answer. The dashboard's pages (blueprint
`pages`) also accept an operator's session, which signing in with the token opened; the JSON API
never does, so it needs no CSRF token.
"""

from __future__ import annotations

import hmac

from flask import g, session

PAGES = "pages"  # the dashboard's blueprint (web.pages)
SESSION_KEY = "operator"


def token_matches(authorization: str, expected: str | None) -> bool:
    """True when the header is `Bearer <expected>` and a token is configured."""
    if not expected:
        return False
    scheme, _, supplied = authorization.partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(
        supplied.strip().encode(), expected.encode()
    )


def authenticated() -> bool:
    """Whether the current request carried the API token (False before it was checked)."""
    return bool(g.get("authenticated", False))


def session_signed_in() -> bool:
    """Whether the request's session says an operator signed in with the token (web.pages)."""
    return session.get(SESSION_KEY) is True
