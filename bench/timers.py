"""Item 4: how late handover timers fire with many dialogs open and waiting.

Most of the open dialogs wait on a quiet line (``handover_after`` 12 h: each holds a running
timer that does not fire during the run). The probes wait on a line with ``distribution:
strictly`` and ``handover_after`` 60 s (the minimum), which offers every new dialog to its
first operator; when the timer fires the offer moves to the next one, which the dialog list
shows. (With all 10,000 on 60 s handovers the item would measure a storm of 166 handovers a
second, beyond what this machine routes, not timer accuracy.)

Per probe: lag = (first poll answer showing the offer moved) - ``deadlines.handover`` (read
from ``GET /v1/dialogs/{id}``, the workflow's own deadline). The workflow-clock lag (the new
offer's time minus the old deadline, from the next ``deadlines.handover``) is reported beside
it: it leaves out the activity and the polling.

Only moves whose deadline comes after every dialog is open count: dialogs offered while the
rest are still being created are followed to their next handover (another 60 s) instead.
"""

import asyncio
import heapq
import time
from collections.abc import Coroutine
from datetime import datetime
from typing import Any

import httpx

from bench.client import Api, ApiCallError, Line
from bench.offers import QUIET_HANDOVER_S, OfferSink
from bench.stats import summary_s
from bench.watch import Check, ListWatcher

HANDOVER_S = 60  # the minimum the line settings allow
PROBES = 200  # dialogs whose handovers are measured; the rest of ``count`` waits quietly
EARLY_S = 0.3  # start polling for a move this long before its deadline
DETAIL_CONCURRENCY = 4
CREATE_CONCURRENCY = 8  # dialogs being filed at once while opening
OFFER_WAIT_S = 120  # after the last is filed, how long the rest may take to be offered


async def _cancel(*tasks: asyncio.Task[Any]) -> None:
    """Cancel the tasks and wait until they have ended, whatever they ended with."""
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def moved_from(offered_to: list[int]) -> Check:
    """The dialog is offered to somebody else now."""
    return lambda item: bool(item["offered_to"]) and item["offered_to"] != offered_to


class TimerItem:
    """Opens the dialogs, then follows each to a counted handover; runs in the background so
    that ``--quick`` can do the other items while the first 60 s pass."""

    def __init__(self, api: Api, operator_ids: list[int], count: int, rate: float, grace_s: float):
        self.api = api
        self.operator_ids = operator_ids
        self.count = count
        self.probes = min(PROBES, max(count // 2, 1))
        self.background = count - self.probes
        self.background_open = 0
        self.rate = rate
        self.grace_s = grace_s
        self.deadline: dict[int, float] = {}
        self.offer: dict[int, list[int]] = {}
        self.done: set[int] = set()
        self.missed: set[int] = set()
        self.unknown: set[int] = set()  # no deadline could be read
        self.lag_seen: list[float] = []
        self.lag_workflow: list[float] = []
        self.offered = 0
        self.all_open_at: float | None = None
        self.open_s = 0.0
        self._due: list[tuple[float, int]] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._details = asyncio.Semaphore(DETAIL_CONCURRENCY)
        self._opened = asyncio.Event()
        self._task: asyncio.Task[dict[str, Any]] | None = None
        self.line: Line | None = None
        self.moves: ListWatcher | None = None

    async def start(self) -> None:
        """Make the line and start opening dialogs in the background."""
        self.line = await self.api.line(
            "bench timers",
            self.operator_ids,
            queue={"distribution": "strictly", "handover_after": HANDOVER_S},
        )
        self.moves = ListWatcher(self.api, self.line.id)
        self._task = asyncio.create_task(self._run())

    async def opened(self) -> float:
        """Wait until every dialog is open with its deadline known; the first deadline."""
        assert self._task is not None
        waiter = asyncio.create_task(self._opened.wait())
        await asyncio.wait([self._task, waiter], return_when=asyncio.FIRST_COMPLETED)
        waiter.cancel()
        if self._task.done():
            self._task.result()  # raises what went wrong
        return min(self.deadline.values(), default=time.time())

    async def finish(self) -> dict[str, Any]:
        """Wait until every dialog had its counted handover (or missed it); the results."""
        assert self._task is not None
        return await self._task

    async def _run(self) -> dict[str, Any]:
        assert self.line is not None and self.moves is not None
        sink = OfferSink(self.api, self.line, "timer")
        started = time.time()
        if self.background:
            quiet = await self.api.line(
                "bench open dialogs",
                self.operator_ids,
                queue={"distribution": "strictly", "handover_after": QUIET_HANDOVER_S},
            )
            waiting = OfferSink(self.api, quiet, "open")
            async with waiting.observing():
                await self._create(waiting, self.background)
                # Filing outruns routing: wait for the backlog, or the probes would queue
                # behind it and their timers start late.
                await waiting.drained(OFFER_WAIT_S + self.background / 5)
            self.background_open = len(waiting.filed) - len(waiting.watcher.awaited)
        async with self.moves.running():
            follower = asyncio.create_task(self._follow(sink))
            try:
                async with sink.observing():
                    await self._create(sink, self.probes)
                    await sink.drained(OFFER_WAIT_S)
                self.offered = len(self.offer) + len(sink.watcher.seen)  # some not yet taken
                self.all_open_at = time.time()
                self.open_s = self.all_open_at - started
                while len(self.deadline) + len(self.unknown) < self.offered:
                    if time.time() > self.all_open_at + 60:
                        break  # stop waiting for the slowest reads; the rest goes on
                    await asyncio.sleep(0.05)
                self._opened.set()
                end = self.all_open_at + HANDOVER_S + self.grace_s + 5
                while len(self.done) + len(self.missed) + len(self.unknown) < self.offered:
                    if time.time() > end:
                        break
                    await asyncio.sleep(0.1)
            finally:
                await _cancel(follower, *self._tasks)
        return self.report()

    async def aclose(self) -> None:
        """Stop whatever still runs (a run cut short): nothing may outlive the API client."""
        if self._task is not None:
            await _cancel(self._task)

    async def _create(self, sink: OfferSink, count: int) -> None:
        """File ``count`` dialogs at most ``rate`` a second and a few at a time: a slow
        system is filled as fast as it takes them, not flooded."""
        start = time.monotonic()
        seqs = iter(range(count))

        async def filer() -> None:
            for seq in seqs:
                delay = start + seq / self.rate - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                await sink.send(seq)

        await asyncio.gather(*(filer() for _ in range(CREATE_CONCURRENCY)))

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _follow(self, sink: OfferSink) -> None:
        """Every 20 ms: new offers get their deadline read, due dialogs get watched, moves
        get measured, and moves far past their deadline are given up as missed."""
        assert self.moves is not None
        while True:
            while sink.watcher.seen:
                dialog_id, (_, item) = sink.watcher.seen.popitem()
                self.offer[dialog_id] = item["offered_to"]
                self._spawn(self._first_deadline(dialog_id))
            now = time.time()
            while self._due and self._due[0][0] <= now + EARLY_S:
                _, dialog_id = heapq.heappop(self._due)
                self.moves.expect(dialog_id, moved_from(self.offer[dialog_id]))
            for dialog_id in list(self.moves.seen):
                seen_at, item = self.moves.seen.pop(dialog_id)
                self._spawn(self._moved(dialog_id, seen_at, item))
            for dialog_id in list(self.moves.awaited):
                if now > self.deadline[dialog_id] + self.grace_s:
                    del self.moves.awaited[dialog_id]
                    self.missed.add(dialog_id)
            await asyncio.sleep(0.02)

    async def _first_deadline(self, dialog_id: int) -> None:
        deadline = await self._read_deadline(dialog_id, after=None)
        if deadline is None:
            self.unknown.add(dialog_id)
            return
        self.deadline[dialog_id] = deadline
        heapq.heappush(self._due, (deadline, dialog_id))

    async def _moved(self, dialog_id: int, seen_at: float, item: dict[str, Any]) -> None:
        old = self.deadline[dialog_id]
        new = await self._read_deadline(dialog_id, after=old)
        if self.all_open_at is not None and old >= self.all_open_at:
            self.lag_seen.append(seen_at - old)
            if new is not None:
                self.lag_workflow.append(new - HANDOVER_S - old)
            self.done.add(dialog_id)
        elif new is None:
            self.unknown.add(dialog_id)
        else:  # moved before every dialog was open: measure its next handover instead
            self.deadline[dialog_id] = new
            self.offer[dialog_id] = item["offered_to"]
            heapq.heappush(self._due, (new, dialog_id))

    async def _read_deadline(self, dialog_id: int, after: float | None) -> float | None:
        """The workflow's handover deadline, once it is later than ``after`` (the workflow
        learns of an offer a moment after the database shows it)."""
        for _ in range(100):
            try:
                async with self._details:
                    detail = await self.api.dialog(dialog_id)
            except (httpx.HTTPError, ApiCallError):
                await asyncio.sleep(0.2)
                continue
            value = detail["deadlines"].get("handover")
            if value is not None:
                deadline = datetime.fromisoformat(value).timestamp()
                if after is None or deadline > after + 0.001:
                    return deadline
            await asyncio.sleep(0.05)
        return None

    def report(self) -> dict[str, Any]:
        return {
            "dialogs": self.count,
            "open": self.background_open + self.offered,
            "background": self.background_open,
            "probes": self.probes,
            "offered": self.offered,
            "open_s": round(self.open_s, 1),
            "handover_after_s": HANDOVER_S,
            "moved": len(self.done),
            "missed": len(self.missed),
            "unknown": len(self.unknown),
            "lag_observed": summary_s(self.lag_seen),
            "lag_workflow_clock": summary_s(self.lag_workflow),
        }
