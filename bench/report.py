"""The results as one table beside the design.md targets, and as JSON."""

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

TARGETS = {
    "offer_p99_ms_at_50_per_s": 150,
    "throughput_ratio": 0.7,
    "timer_lag_p99_s_at_10000_open": 1.0,
    "typical_history_events": 120,
    "worker_peak_rss_mb": 500,
}


def _ms(summary: dict[str, Any], *keys: str) -> str:
    if not summary.get("count"):
        return "no samples"
    return "  ".join(f"{key.split('_')[0]} {summary[key]:g} ms" for key in keys)


def _latency_details(step: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """The other views of one step's offer latency."""
    return [
        (
            "    202 -> offer's own timestamp",
            _ms(step["latency_recorded_from_accepted"], "p50_ms", "p95_ms", "p99_ms"),
            "",
            "",
        ),
        ("    POST sent -> seen", _ms(step["latency_from_sent"], "p50_ms", "p99_ms"), "", ""),
        ("    POST sent -> 202", _ms(step["request"], "p50_ms", "p99_ms"), "", ""),
    ]


def _unseen(step: dict[str, Any]) -> str:
    """Says how many sent items were never seen done (their latency is in no percentile),
    and why sends failed."""
    missing = step["sent"] - step["done"]
    if not missing:
        return ""
    why = ", ".join(f"{count} {kind}" for kind, count in step.get("failures", {}).items())
    return f"  ({missing} of {step['sent']} never seen{'; failed: ' + why if why else ''})"


def _bound(search: dict[str, Any]) -> str:
    """Marks a rate no step sustained, or one the search never saw fail (quick runs stop)."""
    if not search["sustained"]:
        return " (no rate held: most done/s, however late)"
    return "" if search["bounded"] else " (lower bound: no higher rate tried)"


def _meets(value: float | None, limit: float, at_most: bool = True) -> str:
    if value is None:
        return "n/a"
    return "yes" if (value <= limit if at_most else value >= limit) else "NO"


def rows(results: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """(item, measured, target, meets) for every line of the table."""
    offer = results["offer_latency"]
    fixed, best = offer["fixed"], offer["max_sustained"]
    throughput = results["throughput"]
    timer = results["timer"]
    history = results["history"]
    memory = results["memory"]
    fixed_p99 = fixed["latency_from_accepted"]["p99_ms"]
    out = [
        (
            f"1 offer latency at {fixed['rate']:g}/s for {fixed['duration_s']:g} s (202 -> seen)",
            _ms(fixed["latency_from_accepted"], "p50_ms", "p95_ms", "p99_ms") + _unseen(fixed),
            "p99 <= 150 ms at 50/s",
            _meets(fixed_p99, 150) if fixed["rate"] >= 50 else "n/a (rate)",
        ),
        *_latency_details(fixed),
    ]
    if best:
        label = "max sustained" if best["holds"] else "nearest (no rate held)"
        out.append(
            (
                f"1 offer latency at {label} {best['issued_rate']:g}/s",
                _ms(best["latency_from_accepted"], "p50_ms", "p95_ms", "p99_ms"),
                "",
                "",
            )
        )
        out += _latency_details(best)
    for action in ("accept", "reply", "close"):
        out.append(
            (f"2 {action} round trip", _ms(results["actions"][action], "p50_ms", "p99_ms"), "", "")
        )
    out += [
        (
            "3 openlines dialogs/s (offered < 1 s)",
            f"{throughput['openlines_per_s']:g}{_bound(throughput['openlines'])}",
            "",
            "",
        ),
        (
            "3 bare Temporal workflows/s",
            f"{throughput['bare_per_s']:g}{_bound(throughput['bare'])}",
            "",
            "",
        ),
        (
            "3 throughput ratio",
            f"{throughput['ratio']:g}",
            ">= 0.7",
            _meets(throughput["ratio"], 0.7, at_most=False),
        ),
    ]
    lag = timer["lag_observed"]
    out.append(
        (
            f"4 handover lag, {timer['open']} open ({timer['offered']} probes)",
            f"p50 {lag['p50_s']} s  p99 {lag['p99_s']} s  max {lag['max_s']} s"
            f"  (moved {timer['moved']}, missed {timer['missed']})",
            "p99 <= 1 s at 10,000 open",
            _meets(lag["p99_s"], 1.0) if timer["open"] >= 10_000 else "n/a (open)",
        )
    )
    wf_lag = timer["lag_workflow_clock"]
    out.append(("    workflow clock", f"p50 {wf_lag['p50_s']} s  p99 {wf_lag['p99_s']} s", "", ""))
    for name, label in (("typical", "typical dialog"), ("with_transfer", "with a transfer")):
        run = history[name]
        extra = (
            f" (all {len(run['runs'])} runs: {run['events_all_runs']})"
            if len(run["runs"]) > 1
            else ""
        )
        done = "" if run["run_completed"] else ", run still open"
        if run["refused"]:
            done += ", script cut short (an action was refused, see JSON)"
        target = "<= 120 events" if name == "typical" else ""
        meets = _meets(run["events"], 120) if name == "typical" else ""
        out.append((f"5 history, {label}", f"{run['events']} events{extra}{done}", target, meets))
    for name in ("worker", "api", "temporal"):
        process = memory[name]
        target = "<= 500 MB" if name == "worker" else ""
        meets = _meets(process["peak_rss_mb"], 500) if name == "worker" else ""
        out.append(
            (
                f"6 {name} peak RSS",
                f"{process['peak_rss_mb']} MB (with {memory['open_dialogs']} open: "
                f"{process['rss_mb_with_open']} MB)",
                target,
                meets,
            )
        )
    return out


def print_table(results: dict[str, Any]) -> None:
    """The table, headed by what kind of run it was."""
    kind = (
        "QUICK run: scaled down, not comparable with the targets"
        if results["quick"]
        else "full run"
    )
    print(
        f"\nopenlines benchmark: {kind}; {results['database']}, {results['cpus']} CPUs, "
        f"{results['operators']} operators, {results['elapsed_s']:g} s\n"
    )
    print_rows([("item", "measured", "target (design.md)", "meets"), *rows(results)])


def print_rows(table: Sequence[Sequence[str]]) -> None:
    """Rows in aligned columns, the first (the header) underlined."""
    widths = [max(len(row[column]) for row in table) for column in range(len(table[0]))]
    for index, row in enumerate(table):
        print(
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        )
        if index == 0:
            print("  ".join("-" * width for width in widths))


def write_json(results: dict[str, Any], path: Path) -> None:
    path.write_text(json.dumps(results, indent=2) + "\n")
