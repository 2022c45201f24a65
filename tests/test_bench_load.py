"""The benchmark's load step with a sink whose items finish when told, no system behind it:
a backlog's late items must count in the latencies with their whole wait, not drop out."""

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

from bench.load import Outcome, run_step


class DelayedSink:
    """Every item after the first ``fast`` is done ``slow_s`` after it was sent."""

    def __init__(self, fast: int, slow_s: float) -> None:
        self.fast = fast
        self.slow_s = slow_s
        self.sent_at: dict[int, float] = {}
        self.done_at: dict[int, float] = {}

    async def send(self, seq: int) -> None:
        self.sent_at[seq] = time.monotonic()
        delay = 0.01 if seq < self.fast else self.slow_s
        asyncio.get_running_loop().call_later(delay, self._done, seq)

    def _done(self, seq: int) -> None:
        self.done_at[seq] = time.monotonic()

    @contextlib.asynccontextmanager
    async def observing(self) -> AsyncIterator[None]:
        yield

    async def drained(self, within: float) -> bool:
        deadline = time.monotonic() + within
        while len(self.done_at) < len(self.sent_at):
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(0.01)
        return True

    def outcome(self) -> Outcome:
        out = Outcome(sent=len(self.sent_at))
        for seq, done_at in self.done_at.items():
            out.from_sent.append(done_at - self.sent_at[seq])
            out.from_taken.append(done_at - self.sent_at[seq])
        return out


async def test_items_done_while_settling_count_with_their_whole_wait():
    sink = DelayedSink(fast=6, slow_s=1.5)
    step = await run_step(sink, rate=20, duration=0.5, drain_s=0.2, settle_s=5)

    assert step.outcome.sent == 10
    assert len(step.outcome.from_sent) == 10  # the four late ones are in the latencies
    assert max(step.outcome.from_sent) >= 1.5
    assert step.done_by_drain == 6  # ... but not in what the step did by its end
    assert step.throughput == 6 / 0.5
    assert not step.holds  # 60 % within 1 s
    report = step.report()
    assert report["done"] == 10 and report["done_by_drain"] == 6
    assert report["latency_from_sent"]["p99_ms"] >= 1500


async def test_a_step_that_keeps_up_holds():
    sink = DelayedSink(fast=20, slow_s=1.5)
    step = await run_step(sink, rate=20, duration=1, drain_s=0.2, settle_s=5)

    assert step.holds
    assert step.done_by_drain == len(step.outcome.from_sent) == 20
    assert max(step.outcome.from_sent) < 1.0
