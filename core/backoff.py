"""Waiting longer between tries while something stays down, and saying so once.

The relay, the event dispatcher and the API's event feed loop forever; when the database
goes away each try fails at once. Without a growing wait they would log a traceback every
few milliseconds.
"""

import asyncio
import contextlib
import logging

from sqlalchemy.exc import DisconnectionError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

DATABASE_DOWN = (OperationalError, InterfaceError, PoolTimeoutError, DisconnectionError)
"""What SQLAlchemy raises when the database cannot be reached or drops the connection (a
restart, a full pool, a locked SQLite file): trying again later may succeed."""


class Backoff:
    """A wait that doubles from ``first_s`` to ``most_s`` while tries keep failing."""

    def __init__(self, log: logging.Logger, what: str, first_s: float = 0.1, most_s: float = 5.0):
        self._log = log
        self._what = what
        self._first_s = first_s
        self._most_s = most_s
        self._wait_s = 0.0

    @property
    def failing(self) -> bool:
        return self._wait_s > 0

    def succeeded(self) -> None:
        if self.failing:
            self._log.info("%s: working again", self._what)
        self._wait_s = 0.0

    async def failed(self, error: BaseException, stop: asyncio.Event | None = None) -> None:
        """Log the failure (the first of a run in full; a database outage without a
        traceback) and wait, or until ``stop`` is set."""
        if not self.failing:
            if isinstance(error, DATABASE_DOWN):
                self._log.warning(
                    "%s: the database is unavailable (%s); retrying with backoff",
                    self._what,
                    type(error).__name__,
                )
            else:
                self._log.error("%s failed; retrying with backoff", self._what, exc_info=error)
        self._wait_s = min(self._most_s, max(self._first_s, self._wait_s * 2))
        if stop is None:
            await asyncio.sleep(self._wait_s)
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), self._wait_s)
