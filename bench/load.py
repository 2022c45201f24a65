"""Open-loop load at a fixed arrival rate, and the search for the highest rate that holds.

The same driver and the same rules serve openlines (dialogs through the API) and bare
Temporal (``bench.bare``), so their throughputs compare like for like. A step *holds* when at
least 99 % of what was sent is done within 1 s of being sent (p99 ≤ 1 s, nothing lost) and the
driver really issued the rate it was asked for.
"""

import asyncio
import time
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Any, Protocol

from bench.stats import summary_ms

HOLD_WITHIN_S = 1.0
HOLD_FRACTION = 0.99
HALVINGS = 3


@dataclass
class Outcome:
    """What one step's sink saw: per item, when it was sent, taken and seen done."""

    sent: int = 0
    failed: int = 0  # sends refused or failed
    from_taken: list[float] = field(default_factory=list)  # taken (202 / started) -> done
    from_sent: list[float] = field(default_factory=list)  # sent -> done
    request: list[float] = field(default_factory=list)  # sent -> taken
    observer: dict[str, Any] = field(default_factory=dict)  # how "done" was seen, its cost
    recorded: list[float] = field(default_factory=list)  # taken -> done by the system's clock
    failures: dict[str, int] = field(default_factory=dict)  # why sends failed, where known


class Sink(Protocol):
    """What a load step drives: starts one dialog per ``send`` and watches for it to be done."""

    async def send(self, seq: int) -> None: ...

    def observing(self) -> AbstractAsyncContextManager[Any]: ...

    async def drained(self, within: float) -> bool: ...

    def outcome(self) -> Outcome: ...


@dataclass
class Step:
    """One measured step: the asked and issued rates and what came of them."""

    rate: float
    duration: float
    issued_rate: float
    outcome: Outcome
    sink: Sink  # to ask more of afterwards
    done_by_drain: int  # items done by the end of the drain (the rest, if any, came later)

    @property
    def within(self) -> float:
        """Fraction of the sent items done within 1 s of being sent."""
        ok = sum(1 for latency in self.outcome.from_sent if latency <= HOLD_WITHIN_S)
        return ok / self.outcome.sent if self.outcome.sent else 0.0

    @property
    def holds(self) -> bool:
        return self.within >= HOLD_FRACTION and self.issued_rate >= 0.9 * self.rate

    @property
    def throughput(self) -> float:
        """Items per second done by the end of the drain, however late."""
        return self.done_by_drain / self.duration

    def report(self) -> dict[str, Any]:
        out = self.outcome
        return {
            "rate": self.rate,
            "issued_rate": round(self.issued_rate, 1),
            "duration_s": self.duration,
            "sent": out.sent,
            "failed": out.failed,
            "failures": out.failures,
            "done": len(out.from_sent),
            "done_by_drain": self.done_by_drain,
            "within_1s": round(self.within, 4),
            "holds": self.holds,
            "throughput": round(self.throughput, 1),
            "latency_from_accepted": summary_ms(out.from_taken),
            "latency_from_sent": summary_ms(out.from_sent),
            "latency_recorded_from_accepted": summary_ms(out.recorded),
            "request": summary_ms(out.request),
            "observer": out.observer,
        }


async def run_step(
    sink: Sink, rate: float, duration: float, drain_s: float, settle_s: float = 0
) -> Step:
    """Send ``rate`` items a second for ``duration`` s without waiting on answers, then give
    the last ones ``drain_s`` to be done. What is still not done then has failed the step, and
    gets up to ``settle_s`` more so that its backlog does not weigh on the next step; the
    latencies are taken after that, so a backlog's late items count with their whole wait."""
    count = max(1, round(rate * duration))
    async with sink.observing():
        start = time.monotonic()
        tasks = []
        for seq in range(count):
            delay = start + seq / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(sink.send(seq)))
        issued_for = time.monotonic() - start + 1 / rate
        await asyncio.gather(*tasks)
        drained = await sink.drained(drain_s)
        done_by_drain = len(sink.outcome().from_sent)
        if not drained and settle_s:
            await sink.drained(settle_s)
        return Step(rate, duration, count / issued_for, sink.outcome(), sink, done_by_drain)


@dataclass
class Search:
    """The steps tried and the highest one that held."""

    steps: list[Step]
    best: Step | None
    bounded: bool  # a higher rate was tried and failed (else the best is a lower bound)

    @property
    def rate(self) -> float:
        """The highest sustained rate; when no step held, the most done per second by any
        step, however late (``sustained`` says which)."""
        if self.best is not None:
            return self.best.issued_rate
        return max((step.throughput for step in self.steps), default=0.0)

    @property
    def closest(self) -> Step | None:
        """The best step, or when none held, the one that came nearest (most within 1 s)."""
        return self.best or max(self.steps, key=lambda step: step.within, default=None)

    def report(self) -> dict[str, Any]:
        closest = self.closest
        return {
            "sustained_rate": round(self.rate, 1),
            "sustained": self.best is not None,
            "bounded": self.bounded,
            "best": closest.report() if closest else None,
            "steps": [step.report() for step in self.steps],
        }


async def find_max_rate(
    new_sink: Callable[[float], Awaitable[Sink]],
    start: float,
    factor: float,
    duration: float,
    drain_s: float,
    settle_s: float,
    refinements: int,
    max_rate: float,
    stop_at: float | None = None,
) -> Search:
    """Multiply the rate by ``factor`` until a step fails, then bisect ``refinements`` times
    between the last that held and the first that failed. A failing first step halves the
    rate (``HALVINGS`` times at most). ``stop_at`` (``time.time()``) ends the search early,
    though never before its first step or while no step has held."""
    steps: list[Step] = []
    best: Step | None = None
    failed: Step | None = None

    async def attempt(rate: float, in_time: bool = True) -> Step | None:
        late = stop_at is not None and time.time() + duration + drain_s + 1 > stop_at
        if late and in_time and steps:
            return None
        step = await run_step(await new_sink(rate), rate, duration, drain_s, settle_s)
        steps.append(step)
        return step

    rate = start
    while rate <= max_rate:
        step = await attempt(rate)
        if step is None:
            break
        if not step.holds:
            failed = step
            break
        best = step
        rate *= factor
    while best is None and failed is not None and failed.rate > start / factor**HALVINGS:
        # Going down ignores ``stop_at``: a search should end with a rate that held.
        step = await attempt(failed.rate / factor, in_time=False)
        assert step is not None
        if step.holds:
            best = step
        else:
            failed = step
    for _ in range(refinements if best and failed else 0):
        assert best is not None and failed is not None
        step = await attempt((best.rate + failed.rate) / 2)
        if step is None:
            break
        if step.holds:
            best = step
        else:
            failed = step
    return Search(steps, best, bounded=failed is not None)
