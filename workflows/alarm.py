"""One workflow timer standing for a dialog's nearest deadline.

Deadlines move all the time (each client message moves the expiry, each reply the inactivity
close). A new timer per move would cost two history events (a cancel and a start) per
message. The alarm is kept while no deadline comes before it: a deadline that moved later
lets it ring early, the dialog finds nothing due, and the alarm is set again. Each timer is
named in the Temporal UI for the deadline it was set for ("handover", "expiry", ...).
"""

import asyncio
from datetime import datetime

from temporalio import workflow


class Alarm:
    def __init__(self) -> None:
        self._timer: asyncio.Task[None] | None = None
        self._at: datetime | None = None

    def rang(self) -> bool:
        return self._timer is not None and self._timer.done()

    def set_for(self, deadlines: dict[str, datetime]) -> None:
        """Ring at the nearest of ``deadlines`` unless already set to ring no later."""
        if self.rang():
            self._timer, self._at = None, None
        if not deadlines:
            return
        name, at = min(deadlines.items(), key=lambda item: item[1])
        if self._timer is not None:
            if self._at is not None and self._at <= at:
                return
            self._timer.cancel()
        self._at = at
        seconds = (at - workflow.now()).total_seconds()
        summary = f"{name} at {at.isoformat(timespec='seconds')}"
        # Already due: no timer, it rings on the next turn of the loop.
        waiting = workflow.sleep(seconds, summary=summary) if seconds > 0 else asyncio.sleep(0)
        self._timer = asyncio.create_task(waiting)

    def is_stale(self, deadlines: dict[str, datetime]) -> bool:
        """It rang, or the nearest deadline now comes before it (a reply starts a timer)."""
        if self.rang():
            return True
        nearest = min(deadlines.values(), default=None)
        return nearest is not None and (self._at is None or nearest < self._at)
