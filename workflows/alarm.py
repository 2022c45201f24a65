"""One workflow timer standing for a dialog's nearest deadline.

Deadlines move all the time (each client message moves the expiry, each reply the inactivity
close). A new timer per move would cost two history events (a cancel and a start) per
message. The alarm is kept while no deadline comes before it: a deadline that moved later
lets it ring early, the dialog finds nothing due, and the alarm is set again.
"""

import asyncio
from datetime import datetime

from temporalio import workflow


class Alarm:
    def __init__(self) -> None:
        self._timer: asyncio.Future[None] | None = None
        self._at: datetime | None = None

    def rang(self) -> bool:
        return self._timer is not None and self._timer.done()

    def set_for(self, deadline: datetime | None) -> None:
        """Ring at ``deadline`` unless already set to ring no later."""
        if self.rang():
            self._timer, self._at = None, None
        if deadline is None:
            return
        if self._timer is not None:
            if self._at is not None and self._at <= deadline:
                return
            self._timer.cancel()
        self._at = deadline
        seconds = (deadline - workflow.now()).total_seconds()
        self._timer = asyncio.ensure_future(asyncio.sleep(max(seconds, 0)))

    def is_stale(self, nearest: datetime | None) -> bool:
        """It rang, or the nearest deadline now comes before it (a reply starts a timer)."""
        if self.rang():
            return True
        return nearest is not None and (self._at is None or nearest < self._at)
