"""When the outbox relay looks for work: on a PostgreSQL notification, else by polling.

PostgreSQL notifies ``openlines_outbox`` / ``openlines_events`` when a transaction that added
outbox or event rows commits (a trigger, migration 0004), so an idle relay sleeps until there
is work instead of querying the database 50 times a second; that polling cost an idle worker
a fifth of a core. A notification is a hint, not the record: the relay still looks every
``FALLBACK_S`` (for claims that expired and deliveries that failed), and polls every
``POLL_S`` on SQLite, which has no notifications, and on PostgreSQL while the listening
connection is down.
"""

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

import psycopg
from sqlalchemy.engine import make_url

log = logging.getLogger("openlines.relay")

POLL_S = 0.02
FALLBACK_S = 1.0
RECONNECT_S = 1.0


class Wakeup:
    """New rows in one table: whether some were committed since the relay last looked."""

    def __init__(self, table: str, wakeups: "Wakeups") -> None:
        self.channel = f"openlines_{table}"
        self._wakeups = wakeups
        self._due = asyncio.Event()

    @property
    def due(self) -> bool:
        """Whether a notification came since ``looking()``."""
        return self._due.is_set()

    def notified(self) -> None:
        self._due.set()

    def looking(self) -> None:
        """The relay is about to look: what was notified so far is covered by that look."""
        self._due.clear()

    async def wait(self, stop: asyncio.Event) -> None:
        """Until notified since ``looking()``, ``stop`` is set, or it is time to look anyway."""
        waits = [asyncio.ensure_future(self._due.wait()), asyncio.ensure_future(stop.wait())]
        try:
            await asyncio.wait(
                waits,
                timeout=FALLBACK_S if self._wakeups.listening_now else POLL_S,
                return_when=asyncio.FIRST_COMPLETED,
            )
        finally:
            for waiting in waits:
                waiting.cancel()


class Wakeups:
    """The relay's two wake-ups, ``outbox`` and ``events``; ``listening()`` runs the
    PostgreSQL listener that sets them."""

    def __init__(self, database_url: str | None = None) -> None:
        """``database_url``: the relay's database; polling only when None or not PostgreSQL."""
        url = make_url(database_url) if database_url else None
        self._conninfo = (
            url.set(drivername="postgresql").render_as_string(hide_password=False)
            if url is not None and url.get_backend_name() == "postgresql"
            else None
        )
        self.outbox = Wakeup("outbox", self)
        self.events = Wakeup("events", self)
        self.listening_now = False

    @contextlib.asynccontextmanager
    async def listening(self) -> AsyncIterator["Wakeups"]:
        """Listen for notifications (PostgreSQL) for the duration of the block."""
        if self._conninfo is None:
            yield self
            return
        task = asyncio.create_task(self._listen(self._conninfo))
        try:
            yield self
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _listen(self, conninfo: str) -> None:
        by_channel = {wakeup.channel: wakeup for wakeup in (self.outbox, self.events)}
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(
                    conninfo, autocommit=True
                ) as connection:
                    for channel in by_channel:
                        await connection.execute(f"LISTEN {channel}")
                    self.listening_now = True
                    for wakeup in by_channel.values():
                        wakeup.notified()  # rows committed before LISTEN took effect
                    async for notification in connection.notifies():
                        by_channel[notification.channel].notified()
            except (psycopg.Error, OSError) as error:
                log.warning("not listening for relay notifications (polling): %s", error)
            finally:
                self.listening_now = False
            await asyncio.sleep(RECONNECT_S)
