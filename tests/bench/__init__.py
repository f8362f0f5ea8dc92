"""The performance benchmark: `python -m tests.bench` (see `__main__`); not collected by pytest."""
