"""Summaries of samples and the figure records the benchmark reports."""

from __future__ import annotations

import operator
import statistics
from collections.abc import Callable, Sequence
from typing import Any

_OPERATORS: dict[str, Callable[[float, float], bool]] = {
    "<=": operator.le,
    ">=": operator.ge,
    "<": operator.lt,
    ">": operator.gt,
}


def percentile(samples: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100) by linear interpolation between closest ranks."""
    ordered = sorted(samples)
    if not ordered:
        raise ValueError("no samples")
    position = (len(ordered) - 1) * q / 100
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def summarize(samples: Sequence[float], digits: int = 3) -> dict[str, Any]:
    """Count, median (= p50), p99, min and max of samples, rounded."""
    return {
        "n": len(samples),
        "median": round(statistics.median(samples), digits),
        "p50": round(percentile(samples, 50), digits),
        "p99": round(percentile(samples, 99), digits),
        "min": round(min(samples), digits),
        "max": round(max(samples), digits),
    }


def meets(ratio: float, target: str) -> bool:
    """Whether `ratio` satisfies a target such as "<= 1.2" or ">= 0.7"."""
    symbol, _, bound = target.partition(" ")
    return _OPERATORS[symbol](ratio, float(bound))


def figure(name: str, ratio: float, target: str, detail: dict[str, Any]) -> dict[str, Any]:
    """One entry of the benchmark's JSON: the ratio, its target, whether it passed, the data."""
    return {
        "name": name,
        "ratio": round(ratio, 4),
        "target": target,
        "pass": meets(ratio, target),
        "detail": detail,
    }
