"""Operator changes: presence, workday, vacation, firing and profile, with the routing each
one sets off.

One function holds these rules so that the API, and the tests that stand in for it, change
an operator the same way: firing stamps ``fired_at``, a vacation owes its end timer an outbox
row, and every change rebalances the operator's lines in the caller's transaction.
"""

from datetime import datetime
from typing import Literal, TypedDict, Unpack

from sqlalchemy.ext.asyncio import AsyncSession

from core import routing
from core.api_keys import revoke_keys_of
from core.models import Operator, Outbox

Presence = Literal["online", "offline"]
Workday = Literal["started", "paused", "ended"]


class OperatorChanges(TypedDict, total=False):
    """Fields an operator change may set; a field left out keeps its value."""

    name: str
    email: str | None
    position: str | None
    avatar_url: str | None
    fired: bool
    vacation_until: datetime | None  # None ends the vacation
    presence: Presence
    workday: Workday


async def change(
    session: AsyncSession, operator: Operator, now: datetime, **changes: Unpack[OperatorChanges]
) -> set[int]:
    """Apply ``changes`` to the operator, then rebalance every line they are in
    (``routing.operator_changed``), all in the caller's transaction.

    Firing sets ``fired_at`` to ``now`` (rehiring clears it) and revokes the operator's API
    keys; a new or ended vacation owes the
    vacation workflow an outbox row, whose timer serves the waiting queue when it ends.
    Returns the dialogs owed a wake-up (already written to the outbox).
    """
    fired = changes.pop("fired", operator.fired)
    for field, value in changes.items():
        setattr(operator, field, value)
    if fired != operator.fired:
        operator.fired = fired
        operator.fired_at = now if fired else None
        if fired:
            await revoke_keys_of(session, now, operator_id=operator.id)
    if "vacation_until" in changes:
        session.add(Outbox(kind="vacation", operator_id=operator.id))
    return await routing.operator_changed(session, operator.id, now)
