"""The run: start the system, measure the six items in an order that keeps them apart, print.

Order. A full run measures items 1, 3, 2 and 5 on a quiet system, then opens ``--dialogs``
dialogs for items 4 and 6 (their handover timers fire every 60 s and would disturb the rest).
``--quick`` cannot wait the 60 s handover minimum on top of everything else, so it opens its
(100) dialogs first and does items 1, 3, 2 and 5 while their first deadline approaches: the
rate searches are cut short to end ``QUICK_MARGIN_S + QUICK_RESERVE_S`` before it (though
never before some rate held), then it measures the handovers. About 80-90 s in all on an idle
2-core machine, of which 60 s is the shortest handover the line settings allow; the price is
coarse rates (steps of 2 s, doubling) and a handover item with 100 open dialogs, not 10,000.
"""

import argparse
import asyncio
import os
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import options, report
from bench.actions import measure_actions
from bench.bare_load import DoneLog, new_bare_sink
from bench.client import Api
from bench.database import fresh_database
from bench.history import measure_history
from bench.load import Search, Sink, find_max_rate, run_step
from bench.memory import memory_mb
from bench.offers import OfferSink, new_offer_sink
from bench.stack import BARE_TASK_QUEUE, Stack, running
from bench.timers import TimerItem

QUICK_MARGIN_S = 5  # quick: everything else ends this long before the first handover deadline
QUICK_RESERVE_S = 10  # of which the rate searches leave this long to items 2 and 5
PROCESSES = ("worker", "api", "temporal")

Memory = dict[str, dict[str, float | None]]


class Progress:
    """Progress lines on stderr, so stdout holds just the table."""

    def __init__(self) -> None:
        self.started = time.monotonic()

    def elapsed(self) -> float:
        return round(time.monotonic() - self.started, 1)

    def __call__(self, message: str) -> None:
        print(f"[{self.elapsed():6.1f}s] {message}", file=sys.stderr, flush=True)


async def measure(system: Stack, plan: options.Plan, say: Progress) -> dict[str, Any]:
    """Every item against the running system; the results as one dict."""
    api = Api(system.api_url, system.admin_key)
    timer: TimerItem | None = None
    try:
        operator_ids = await api.operators(plan.operators)
        timer = TimerItem(
            api, operator_ids, plan.timer_dialogs, plan.timer_create_rate, plan.timer_grace_s
        )
        return await _measure(system, api, operator_ids, timer, plan, say)
    finally:
        if timer is not None:
            await timer.aclose()
        await api.aclose()


async def _measure(
    system: Stack,
    api: Api,
    operator_ids: list[int],
    timer: TimerItem,
    plan: options.Plan,
    say: Progress,
) -> dict[str, Any]:
    memory_open: Memory = {}

    async def open_timer_dialogs() -> float:
        say(f"items 4+6: opening {plan.timer_dialogs} waiting dialogs")
        await timer.start()
        first_deadline = await timer.opened()
        memory_open.update(_memory(system))
        due_in = first_deadline - time.time()
        say(f"  open in {timer.open_s:.1f} s; first handover deadline in {due_in:.0f} s")
        return first_deadline

    stop_at: float | None = None
    if plan.quick:
        stop_at = await open_timer_dialogs() - QUICK_MARGIN_S
    elif plan.warmup_s:
        say(f"warm-up: 20/s for {plan.warmup_s:g} s")
        warmup = await new_offer_sink(api, operator_ids, "warmup")
        await run_step(warmup, 20, plan.warmup_s, plan.drain_s)

    say(f"item 1: {plan.fixed_rate:g} new dialogs/s for {plan.fixed_duration:g} s")
    sink = await new_offer_sink(api, operator_ids, "fixed")
    fixed = await run_step(sink, plan.fixed_rate, plan.fixed_duration, plan.drain_s, plan.settle_s)
    fixed.outcome.recorded = await sink.recorded()
    searches_stop = None if stop_at is None else stop_at - QUICK_RESERVE_S
    openlines, bare = await _throughput(system, api, operator_ids, plan, say, searches_stop)
    say(f"item 2: accept, reply and close on {plan.action_dialogs} dialogs")
    actions = await measure_actions(api, operator_ids, plan.action_dialogs, plan.action_concurrency)
    say("item 5: scripted dialogs for history size")
    history = await measure_history(api, system.client, operator_ids)

    if not plan.quick:
        # Open them at the rate the system was seen to sustain: faster only builds a backlog.
        timer.rate = min(timer.rate, max(openlines.rate, 1.0))
        await open_timer_dialogs()
    say("item 4: waiting for the handovers")
    timers = await timer.finish()
    memory_end = _memory(system)

    return {
        "offer_latency": {"fixed": fixed.report(), "max_sustained": openlines.report()["best"]},
        "actions": actions,
        "throughput": {
            "openlines_per_s": round(openlines.rate, 1),
            "bare_per_s": round(bare.rate, 1),
            "ratio": round(openlines.rate / bare.rate, 3) if bare.rate else 0.0,
            "openlines": openlines.report(),
            "bare": bare.report(),
        },
        "timer": timers,
        "history": history,
        "memory": {
            "open_dialogs": timers["open"],
            **{
                name: {**memory_end[name], "rss_mb_with_open": memory_open[name]["rss_mb"]}
                for name in PROCESSES
            },
        },
    }


async def _throughput(
    system: Stack,
    api: Api,
    operator_ids: list[int],
    plan: options.Plan,
    say: Progress,
    stop_at: float | None,
) -> tuple[Search, Search]:
    """Items 1 and 3: the highest sustained rate of openlines, then of bare Temporal, whose
    search starts at the rate where openlines' failed (it is not expected to do less)."""

    async def offer_sink(rate: float) -> Sink:
        say(f"  openlines at {rate:g}/s")
        return await new_offer_sink(api, operator_ids, "step")

    say("items 1+3: highest sustained openlines rate")
    half_time = None if stop_at is None else time.time() + (stop_at - time.time()) / 2
    openlines = await _search(plan, offer_sink, plan.step_start, half_time)
    if openlines.closest and isinstance(openlines.closest.sink, OfferSink):
        openlines.closest.outcome.recorded = await openlines.closest.sink.recorded()

    done_log = DoneLog(system.bare_log)

    async def bare_sink(rate: float) -> Sink:
        say(f"  bare Temporal at {rate:g}/s")
        return new_bare_sink(system.client, BARE_TASK_QUEUE, done_log)

    say("item 3: highest sustained bare Temporal rate")
    await run_step(new_bare_sink(system.client, BARE_TASK_QUEUE, done_log), 10, 1, plan.drain_s)
    failed = [step.rate for step in openlines.steps if not step.holds]
    held = openlines.best.rate * plan.step_factor if openlines.best else plan.step_start
    start = max(failed, default=held)
    bare = await _search(plan, bare_sink, start, stop_at)
    return openlines, bare


async def _search(plan: options.Plan, new_sink: Any, start: float, stop_at: float | None) -> Search:
    return await find_max_rate(
        new_sink,
        start=start,
        factor=plan.step_factor,
        duration=plan.step_duration,
        drain_s=plan.drain_s,
        settle_s=plan.settle_s,
        refinements=plan.step_refinements,
        max_rate=plan.step_max_rate,
        stop_at=stop_at,
    )


def _memory(system: Stack) -> Memory:
    return {name: memory_mb(system.processes[name].pid) for name in PROCESSES}


async def run(plan: options.Plan, say: Progress) -> dict[str, Any]:
    """Start everything in a temporary folder, measure, stop everything; the results."""
    data_dir = Path(tempfile.mkdtemp(prefix="openlines-bench-"))
    failed = True
    try:
        async with fresh_database(data_dir) as database:
            say(f"starting Temporal, worker and API ({database.backend}) in {data_dir}")
            async with running(data_dir, database) as system:
                say("running")
                results = await measure(system, plan, say)
            results.update(
                quick=plan.quick,
                database=database.backend,
                cpus=os.cpu_count(),
                operators=plan.operators,
                elapsed_s=say.elapsed(),
                targets=report.TARGETS,
            )
        failed = False
        return results
    except (asyncio.CancelledError, KeyboardInterrupt):
        failed = False  # stopped on purpose: nothing to look into
        raise
    finally:
        if plan.keep or failed:
            print(f"data folder (logs) kept: {data_dir}", file=sys.stderr)
        else:
            shutil.rmtree(data_dir, ignore_errors=True)


async def run_until_stopped(plan: options.Plan, say: Progress) -> dict[str, Any]:
    """``run``, cancelled by SIGTERM as by Ctrl-C, so both stop every process (and drop the
    PostgreSQL database) on the way out."""
    task = asyncio.current_task()
    assert task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    return await run(plan, say)


def main(argv: list[str] | None = None) -> int:
    """``python -m bench``: run, print the table, write the JSON if asked."""
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    options.add_arguments(parser)
    return run_args(parser.parse_args(argv))


def run_args(args: argparse.Namespace) -> int:
    """Run with already parsed flags (``openlines bench`` shares them)."""
    plan = options.plan_from(args)
    say = Progress()
    try:
        results = asyncio.run(run_until_stopped(plan, say))
    except (asyncio.CancelledError, KeyboardInterrupt):
        say("stopped; every process it started has been stopped too")
        return 130
    report.print_table(results)
    if plan.json_path is not None:
        report.write_json(results, plan.json_path)
        print(f"\nwritten to {plan.json_path}")
    return 0
