"""Plumbing with no domain knowledge: Redis clients, counters, throttles, files, clocks, logs."""
