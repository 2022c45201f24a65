"""Where the CPU goes: CPU milliseconds per new dialog in each process, beside bare Temporal's
per workflow, at fixed rates both systems hold (``python -m bench.cpu``).

Throughput on a 2-core machine is CPU divided among the API, the worker, the Temporal
server, PostgreSQL and the load generator, so this says which process to make cheaper.
Each process's user + system time is read from ``/proc/<pid>/stat`` before and after one
load step (PostgreSQL: the sum over its processes, when the run uses it), then divided by
the dialogs (or bare workflows) sent. The step is the benchmark's own (``bench.load``).
"""

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.bare_load import DoneLog, new_bare_sink
from bench.client import Api
from bench.database import fresh_database
from bench.load import Sink, run_step
from bench.offers import new_offer_sink
from bench.stack import BARE_TASK_QUEUE, Stack, running

TICKS = os.sysconf("SC_CLK_TCK")
DRAIN_S = 10.0


def cpu_s(pid: int | str) -> float:
    """User + system CPU seconds a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def postgres_cpu_s() -> float:
    """CPU seconds of every process named ``postgres`` this user can see (0 if none)."""
    total = 0.0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if (entry / "comm").read_text().strip() == "postgres":
                total += cpu_s(entry.name)
        except OSError:  # ended meanwhile, or not ours to read
            continue
    return total


def snapshot(system: Stack) -> dict[str, float]:
    used = {name: cpu_s(process.pid) for name, process in system.processes.items()}
    if system.database.backend == "postgresql":
        used["postgres"] = postgres_cpu_s()
    used["load generator"] = time.process_time()
    return used


async def per_item(system: Stack, sink: Sink, rate: float, duration: float) -> dict[str, Any]:
    """One step at ``rate``; CPU ms per item sent, by process, and how the step went."""
    before = snapshot(system)
    step = await run_step(sink, rate, duration, DRAIN_S)
    after = snapshot(system)
    sent = max(step.outcome.sent, 1)
    cpu_ms = {name: round((after[name] - before[name]) * 1000 / sent, 1) for name in before}
    cpu_ms["total"] = round(sum(cpu_ms.values()), 1)
    return {"rate": rate, "sent": step.outcome.sent, "within_1s": step.within, "cpu_ms": cpu_ms}


async def measure(rate: float, bare_rate: float, duration: float) -> dict[str, Any]:
    data_dir = Path(tempfile.mkdtemp(prefix="openlines-cpu-"))
    async with fresh_database(data_dir) as database, running(data_dir, database) as system:
        api = Api(system.api_url, system.admin_key)
        try:
            operator_ids = await api.operators(10)
            await run_step(await new_offer_sink(api, operator_ids, "warmup"), 10, 3, DRAIN_S)
            openlines = await per_item(
                system, await new_offer_sink(api, operator_ids, "cpu"), rate, duration
            )
            done_log = DoneLog(system.bare_log)
            await run_step(new_bare_sink(system.client, BARE_TASK_QUEUE, done_log), 10, 1, DRAIN_S)
            bare_sink = new_bare_sink(system.client, BARE_TASK_QUEUE, done_log)
            bare = await per_item(system, bare_sink, bare_rate, duration)
        finally:
            await api.aclose()
    return {"database": database.backend, "openlines": openlines, "bare": bare}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.cpu", description=__doc__)
    parser.add_argument("--rate", type=float, default=6, help="new dialogs/s (default 6)")
    parser.add_argument("--bare-rate", type=float, default=15, help="bare workflows/s (15)")
    parser.add_argument("--duration", type=float, default=30, help="seconds per step (30)")
    parser.add_argument("--json", type=Path, help="also write the results to this JSON file")
    args = parser.parse_args(argv)
    results = asyncio.run(measure(args.rate, args.bare_rate, args.duration))
    print(f"CPU ms per item ({results['database']}; user + system time of each process)\n")
    names = list(results["openlines"]["cpu_ms"])
    print(f"{'':<34}" + "".join(f"{name:>16}" for name in names))
    for label, key in (
        ("openlines, per new dialog", "openlines"),
        ("bare Temporal, per workflow", "bare"),
    ):
        row = results[key]
        title = f"{label} at {row['rate']:g}/s"
        print(f"{title:<34}" + "".join(f"{row['cpu_ms'].get(n, 0):>16}" for n in names))
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
