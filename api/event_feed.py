"""One reader of the events table per API process, fanning new events out to every open
stream (``api.routes.events``), instead of a query loop per stream.

The feed polls (a short read transaction each ``POLL_S``): it works the same on SQLite and
PostgreSQL and holds no connection between polls. It keeps the newest ``RETAIN`` events in
the order it read them, each with a sequence number; a stream follows the sequence. A stream
that resumes from an older event id first reads the events up to the feed's position itself,
once, then follows the feed.

On PostgreSQL an event's id is taken when it is inserted but becomes visible when its
transaction commits, so a lower id can appear after a higher one was read. Ids skipped over
are looked for again for ``GAP_WAIT_S``; such a late event joins the feed then, after higher
ids. At start the feed treats the missing ids among the newest ``MAX_GAPS`` as such gaps, so
a transaction open at that moment is not missed. Delivery is at least once: a client
deduplicates by id.

While the database is down the feed logs once and waits longer between tries (doubling up to
``MAX_BACKOFF_S``), instead of a traceback every poll.
"""

import asyncio
import contextvars
import logging
from collections import Counter, deque
from collections.abc import Sequence

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.backoff import Backoff
from core.events.models import Event

log = logging.getLogger("openlines.api.events")

POLL_S = 0.5
BATCH = 100
RETAIN = 5000
GAP_WAIT_S = 30.0
MAX_GAPS = 1000
"""Skipped ids looked for at once; a larger jump (ids the database skipped) is not a gap."""
MAX_BACKOFF_S = 5.0


class EventFeed:
    """The process's feed of new events; ``streams`` counts the open streams per key."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions
        self._entries: deque[tuple[int, Event]] = deque(maxlen=RETAIN)
        self._seq = 0  # the sequence number of the newest entry
        self._cursor = 0  # the highest event id read
        self._gaps: dict[int, float] = {}  # id skipped over -> when to stop looking for it
        self._arrived = asyncio.Condition()
        self._task: asyncio.Task[None] | None = None
        self._started = asyncio.Lock()
        self.streams: Counter[str] = Counter()

    async def position(self) -> tuple[int, int]:
        """(sequence number, event id) the feed has reached; starts the feed if need be.
        Entries after that sequence number are the events read after that id (and late
        ones)."""
        async with self._started:
            if self._task is None:
                await self._start()
        return self._seq, self._cursor

    def since(self, seq: int) -> list[Event] | None:
        """The events after sequence number ``seq``; None when some of them are no longer
        kept (the stream fell ``RETAIN`` events behind and must read the rest itself)."""
        if not self._entries or seq >= self._seq:
            return []
        first = self._entries[0][0]
        if seq < first - 1:
            return None
        return [event for _, event in list(self._entries)[seq - first + 1 :]]

    async def wait(self, seq: int, at_most_s: float) -> None:
        """Return when there are entries after ``seq``, or after ``at_most_s`` seconds."""
        async with self._arrived:
            try:
                async with asyncio.timeout(at_most_s):
                    await self._arrived.wait_for(lambda: self._seq > seq)
            except TimeoutError:
                pass

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _start(self) -> None:
        async with self._sessions() as session:
            newest = await session.scalar(select(func.max(Event.id))) or 0
            recent = set(
                await session.scalars(select(Event.id).where(Event.id > newest - MAX_GAPS))
            )
        until = asyncio.get_running_loop().time() + GAP_WAIT_S
        self._gaps = {
            i: until for i in range(max(1, newest - MAX_GAPS + 1), newest) if i not in recent
        }
        self._cursor = newest
        # A context of its own: started inside the first subscriber's request, the task
        # would otherwise carry that request's trace (and its spans) for the process's life.
        self._task = asyncio.create_task(
            self._run(), name="event-feed", context=contextvars.Context()
        )

    async def _run(self) -> None:
        backoff = Backoff(log, "event feed", first_s=POLL_S, most_s=MAX_BACKOFF_S)
        while True:
            try:
                fresh, late = await self._poll()
            except Exception as error:
                await backoff.failed(error)
                continue
            backoff.succeeded()
            await self._add(fresh, late)
            if len(fresh) < BATCH:
                await asyncio.sleep(POLL_S)

    async def _poll(self) -> tuple[list[Event], list[Event]]:
        """Up to ``BATCH`` events after the cursor, and those of the gaps now there."""
        async with self._sessions() as session:
            query = select(Event).where(Event.id > self._cursor).order_by(Event.id).limit(BATCH)
            fresh = list(await session.scalars(query))
            gaps = list(self._gaps)
            late = (
                list(await session.scalars(select(Event).where(Event.id.in_(gaps)))) if gaps else []
            )
        return fresh, late

    async def _add(self, fresh: Sequence[Event], late: Sequence[Event]) -> None:
        now = asyncio.get_running_loop().time()
        for event in late:
            self._gaps.pop(event.id, None)
        self._gaps = {gap: until for gap, until in self._gaps.items() if until > now}
        for event in fresh:
            skipped = range(self._cursor + 1, event.id)
            if len(self._gaps) + len(skipped) <= MAX_GAPS:
                self._gaps.update(dict.fromkeys(skipped, now + GAP_WAIT_S))
            self._cursor = event.id
        arrived = sorted(late, key=lambda e: e.id) + list(fresh)
        if not arrived:
            return
        async with self._arrived:
            for event in arrived:
                self._seq += 1
                self._entries.append((self._seq, event))
            self._arrived.notify_all()
