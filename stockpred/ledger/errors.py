"""The ledger's failures that callers tell apart (importing this loads no database library)."""

from __future__ import annotations


class LedgerUnavailable(RuntimeError):
    """The ledger's database cannot be reached or migrated; the message masks any password."""
