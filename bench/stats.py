"""Percentiles and summaries of measured durations, the one way every item reports them."""

import math
from collections.abc import Sequence


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100); ``inf`` entries count as 'never happened'."""
    if not values:
        raise ValueError("no values")
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def summary_ms(seconds: Sequence[float]) -> dict[str, float | int | None]:
    """count, p50, p95, p99 and max in milliseconds (None when there is nothing to summarize)."""
    if not seconds:
        return {"count": 0, "p50_ms": None, "p95_ms": None, "p99_ms": None, "max_ms": None}
    return {
        "count": len(seconds),
        "p50_ms": _ms(percentile(seconds, 50)),
        "p95_ms": _ms(percentile(seconds, 95)),
        "p99_ms": _ms(percentile(seconds, 99)),
        "max_ms": _ms(max(seconds)),
    }


def summary_s(seconds: Sequence[float]) -> dict[str, float | int | None]:
    """count, p50, p99 and max in seconds, for lags that are naturally seconds."""
    if not seconds:
        return {"count": 0, "p50_s": None, "p99_s": None, "max_s": None}
    return {
        "count": len(seconds),
        "p50_s": _round(percentile(seconds, 50), 4),
        "p99_s": _round(percentile(seconds, 99), 4),
        "max_s": _round(max(seconds), 4),
    }


def _ms(seconds: float) -> float:
    return _round(seconds * 1000, 1)


def _round(value: float, digits: int) -> float:
    return value if math.isinf(value) else round(value, digits)
