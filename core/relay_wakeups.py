"""When the outbox relay looks for new rows: on a PostgreSQL notification, else by polling.

PostgreSQL notifies ``openlines_outbox`` when a transaction that added outbox rows commits
(a trigger, migration 0004), so an idle relay sleeps until there is work instead of querying
the database 50 times a second; that polling cost an idle worker a fifth of a core. A
notification is a hint, not the record: the relay still looks every ``FALLBACK_S`` (for
claims that expired and deliveries that failed), and polls every ``POLL_S`` on SQLite, which
has no notifications, and on PostgreSQL while the listening connection is down.
"""

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from core.background import in_background
from core.pg_listen import conninfo_of, listen

log = logging.getLogger("openlines.relay")

CHANNEL = "openlines_outbox"
POLL_S = 0.02
FALLBACK_S = 1.0


class Wakeups:
    """Whether outbox rows were committed since the relay last looked; ``listening()`` runs
    the PostgreSQL listener that says so."""

    def __init__(self, database_url: str | None = None) -> None:
        """``database_url``: the relay's database; polling only when None or not PostgreSQL."""
        self._conninfo = conninfo_of(database_url)
        self._due = asyncio.Event()
        self.listening_now = False

    @property
    def due(self) -> bool:
        """Whether a notification came since ``looking()``."""
        return self._due.is_set()

    def looking(self) -> None:
        """The relay is about to look: what was notified so far is covered by that look."""
        self._due.clear()

    async def wait(self, stop: asyncio.Event) -> None:
        """Until notified since ``looking()``, ``stop`` is set, or it is time to look anyway."""
        waits = [asyncio.ensure_future(self._due.wait()), asyncio.ensure_future(stop.wait())]
        try:
            await asyncio.wait(
                waits,
                timeout=FALLBACK_S if self.listening_now else POLL_S,
                return_when=asyncio.FIRST_COMPLETED,
            )
        finally:
            for waiting in waits:
                waiting.cancel()

    @contextlib.asynccontextmanager
    async def listening(self) -> AsyncIterator["Wakeups"]:
        """Listen for notifications (PostgreSQL) for the duration of the block."""
        if self._conninfo is None:
            yield self
            return
        async with in_background(self._listen(self._conninfo)):
            yield self

    async def _listen(self, conninfo: str) -> None:
        await listen(conninfo, CHANNEL, lambda _: self._due.set(), self._up, log)

    def _up(self, up: bool) -> None:
        self.listening_now = up
        if up:
            self._due.set()  # rows committed before LISTEN took effect
