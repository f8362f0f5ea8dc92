"""The bearer token check: whether a request carries `Authorization: Bearer <STOCKPRED_API_TOKEN>`.

The one owner of the comparison; web.middleware decides per request (once, in `g`) and what
follows asks `authenticated()`: mutating routes refuse without it, an anonymous request never
starts a training and gets no internal detail in a 5xx answer.
"""

from __future__ import annotations

import hmac

from flask import g


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
