"""Items 1 and 3 for openlines: new dialogs through the API until each is offered.

Every step gets a line of its own (same operators, handover 12 h so no timer fires during the
run). Routing reads the line's whole waiting queue for every offer
(``core.routing.assign_waiting``), and nobody accepts these dialogs, so on one shared line
each step would run slower than the last for the earlier steps' leftovers alone.
"""

import asyncio
import itertools
from collections import Counter
from contextlib import AbstractAsyncContextManager
from datetime import datetime
from typing import Any

import httpx

from bench.client import Api, ApiCallError, Filed, Line
from bench.load import Outcome
from bench.stats import summary_ms
from bench.watch import ListWatcher

QUIET_HANDOVER_S = 43200  # the maximum: offers made by the load never move during the run

_lines = itertools.count(1)


class OfferSink:
    """Sends one new chat's first message per ``send``; done when the dialog is offered."""

    def __init__(self, api: Api, line: Line, prefix: str) -> None:
        self.api = api
        self.line = line
        self.prefix = prefix
        self.watcher = ListWatcher(api, line.id)
        self.sent = 0
        self.failures: Counter[str] = Counter()  # why sends failed: error type or answer
        self.filed: dict[int, Filed] = {}

    async def send(self, seq: int) -> None:
        self.sent += 1
        try:
            filed = await self.api.inbound(self.line, f"{self.prefix}-{seq}", "m-1", "Hello")
        except httpx.HTTPError as error:
            self.failures[type(error).__name__] += 1
            return
        except ApiCallError as error:
            self.failures[str(error)[:80]] += 1
            return
        self.filed[filed.dialog_id] = filed
        self.watcher.expect(filed.dialog_id)

    def observing(self) -> AbstractAsyncContextManager[Any]:
        return self.watcher.running()

    async def drained(self, within: float) -> bool:
        return await self.watcher.wait(within)

    async def recorded(self) -> list[float]:
        """Per offered dialog, from its 202 to the offer's own recorded time (a lower bound:
        routing stamps the offer when its workflow task starts, before it commits), read back
        as ``deadlines.handover`` minus ``handover_after``. Asked after the step, untimed."""
        slots = asyncio.Semaphore(4)

        async def one(filed: Filed) -> float | None:
            async with slots:
                detail = await self.api.dialog(filed.dialog_id)
            handover = detail["deadlines"].get("handover")
            if handover is None:
                return None
            offered_at = datetime.fromisoformat(handover).timestamp() - QUIET_HANDOVER_S
            return offered_at - filed.answered_at

        seen = [self.filed[dialog_id] for dialog_id in self.watcher.seen]
        latencies = await asyncio.gather(*(one(filed) for filed in seen))
        return [latency for latency in latencies if latency is not None]

    def outcome(self) -> Outcome:
        polls = self.watcher.poll_s
        observer = {"polls": len(polls), "poll": summary_ms(polls), "errors": self.watcher.errors}
        failed = sum(self.failures.values())
        out = Outcome(self.sent, failed, observer=observer, failures=dict(self.failures))
        for dialog_id, filed in self.filed.items():
            out.request.append(filed.answered_at - filed.sent_at)
            if dialog_id in self.watcher.seen:
                seen_at = self.watcher.seen[dialog_id][0]
                out.from_taken.append(seen_at - filed.answered_at)
                out.from_sent.append(seen_at - filed.sent_at)
        return out


async def new_offer_sink(api: Api, operator_ids: list[int], label: str) -> OfferSink:
    """A sink on a fresh line of the given operators (evenly, no limit, quiet handover)."""
    number = next(_lines)
    line = await api.line(
        f"bench {label} {number}",
        operator_ids,
        queue={"handover_after": QUIET_HANDOVER_S},
    )
    return OfferSink(api, line, f"{label}-{number}")
