"""Celery tasks, one module per queue: thin adapters from JSON arguments to `stockpred` calls.

Names are `<queue>.<verb>`; routing by that prefix lives in celeryconfig. Tasks take symbols, ids,
numbers and ISO dates, return small JSON-safe dicts, and are safe to run twice.
"""
