"""Line settings changes: merge a patch, validate it, save it and let routing follow.

One function holds these rules so that the API, and the tests that stand in for it, change a
line the same way: every reference a setting makes must exist, and a change (of queue members
too) rebalances the line's offers and wakes its open dialogs in the caller's transaction.
"""

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core import routing
from core.bots import live_bot
from core.line_settings import LineSettings, Member, Queue, merge_patch
from core.models import Agreement, Department, Line, Operator
from core.quick_answers import QuickAnswerList


class UnknownReference(ValueError):
    """A setting names an operator, department, agreement or bot that does not exist."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


async def check_references(session: AsyncSession, settings: LineSettings) -> None:
    """Members, KPI recipients, the agreement, the quick answer list and an enabled bot must
    exist: a typo must not silently empty a queue. Raises ``UnknownReference`` naming the
    first that does not."""
    operators = set(await session.scalars(select(Operator.id)))
    departments = set(await session.scalars(select(Department.id)))
    for index, member in enumerate(settings.queue.members):
        known = operators if member.type == "operator" else departments
        if member.id not in known:
            raise UnknownReference(
                f"queue.members[{index}].id", f"{member.type} {member.id} does not exist"
            )
    for key in settings.queue.operator_overrides:
        if int(key) not in operators:
            raise UnknownReference(
                f"queue.operator_overrides.{key}", f"operator {key} does not exist"
            )
    agreement_id = settings.agreement.agreement_id
    if agreement_id is not None and await session.get(Agreement, agreement_id) is None:
        raise UnknownReference("agreement.agreement_id", f"agreement {agreement_id} does not exist")
    list_id = settings.quick_answers_list_id
    if list_id is not None and await session.get(QuickAnswerList, list_id) is None:
        raise UnknownReference(
            "quick_answers_list_id", f"quick answer list {list_id} does not exist"
        )
    bot_id = settings.bot.bot_id
    if settings.bot.enabled and bot_id is not None and not await live_bot(session, bot_id, True):
        # Checked only while enabled: a line may keep the id of a bot deleted meanwhile.
        raise UnknownReference("bot.bot_id", f"bot {bot_id} does not exist")
    for item_name in ("first_answer", "further_answer"):
        item = getattr(settings.kpi, item_name)
        for index, recipient in enumerate(item.recipients):
            if recipient not in operators:
                raise UnknownReference(
                    f"kpi.{item_name}.recipients[{index}]", f"operator {recipient} does not exist"
                )


def default_name(line_id: int) -> str:
    """The name of a line created or left without one."""
    return f"Line {line_id}"


# What each ``queue.operator_display`` mode has the admin enter; leaving the mode resets it.
_DISPLAY_DATA = {"line": "operator_overrides", "hidden": "hidden_identity"}


def _display_switch(current: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """The patch, plus a reset of what the ``operator_display`` mode being left had entered.

    The reference article: saving another display mode resets the data entered for the old
    one. Data the same patch sends is kept, and a patch that keeps the mode resets nothing.
    """
    queue_patch = patch.get("queue")
    if not isinstance(queue_patch, dict):
        return patch
    leaving = current["queue"]["operator_display"]
    entering = queue_patch.get("operator_display", leaving)
    field = _DISPLAY_DATA.get(leaving)
    if entering == leaving or field is None or field in queue_patch:
        return patch
    default = Queue().model_dump(mode="json")[field]
    return {**patch, "queue": {**queue_patch, field: default}}


async def update_settings(
    session: AsyncSession, line: Line, patch: dict[str, Any], now: datetime
) -> None:
    """Apply a partial settings change (groups merge field by field; lists and maps are
    replaced whole), as of ``now``.

    Raises pydantic's ``ValidationError`` for a bad value and ``UnknownReference`` for a
    reference to nothing, before anything changes. Removed members lose their offers and
    dialogs, new ones may serve the waiting queue, and open dialogs take on the new rules.
    Switching ``queue.operator_display`` resets the data of the mode left behind.
    """
    patch = _display_switch(line.settings, patch)
    merged = LineSettings.model_validate(merge_patch(line.settings, patch, LineSettings))
    await check_references(session, merged)
    if merged.name is None:
        merged.name = default_name(line.id)
    line.settings = merged.dump()
    await routing.settings_changed(session, line.id, now)


async def set_members(
    session: AsyncSession, line: Line, members: Sequence[Member], now: datetime
) -> None:
    """Replace the line's queue members: a settings change of ``queue.members``."""
    patch = {"queue": {"members": [member.model_dump() for member in members]}}
    await update_settings(session, line, patch, now)
