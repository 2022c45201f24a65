"""Activities about operators rather than one dialog."""

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity

from core import routing


class OperatorActivities:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    @activity.defn
    async def availability_changed(self, operator_id: int, at: datetime) -> list[int]:
        """Rebalance the operator's lines as of ``at`` (their vacation ended); returns the
        dialogs woken."""
        async with self._sessions() as session, session.begin():
            woken = await routing.operator_changed(session, operator_id, at)
        return sorted(woken)
