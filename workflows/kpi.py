"""KPI timers of a dialog: how long operators take to answer the client.

An item starts with a client message when no earlier item is pending and ends with the
operator's reply; the first of a session is held to ``kpi.first_answer.limit``, later ones
to ``kpi.further_answer.limit``. An item past its limit is marked overdue once and the
line's recipients are notified; its answer still counts in the numbers.
"""

from datetime import datetime

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.kpi import KpiActivities
    from workflows import activity_calls
    from workflows.models import DialogState, KpiItem, KpiNumbers, KpiOverdue


def client_wrote(state: DialogState, now: datetime) -> None:
    """A client message starts an item, unless one is already waiting for its answer."""
    if state.kpi_since is None:
        state.kpi_since = now
        state.kpi_overdue_told = False


def after_reply(state: DialogState, now: datetime) -> KpiNumbers | None:
    """The dialog's numbers once this reply is in, or None if it answers no item."""
    if state.kpi_since is None:
        return None
    return state.kpi.answered(round((now - state.kpi_since).total_seconds()))


def replied(state: DialogState, numbers: KpiNumbers | None, since: datetime | None) -> None:
    """The reply went through: the item it answered (the one of ``since``) is done. An item
    a client message started while the reply was being stored stays open."""
    if numbers is not None:
        state.kpi = numbers
    if state.kpi_since == since:
        state.kpi_since = None
        state.kpi_overdue_told = False


async def overdue(state: DialogState, item: KpiItem) -> None:
    """The item ran out: mark the dialog and notify the line's recipients."""
    assert state.kpi_since is not None
    count = state.kpi.overdue + 1
    await activity_calls.run_local(
        KpiActivities.overdue,
        KpiOverdue(
            dialog_id=state.dialog_id,
            item=item,
            since=state.kpi_since,
            overdue=count,
            at=workflow.now(),
        ),
    )
    state.kpi = state.kpi.model_copy(update={"overdue": count})
    state.kpi_overdue_told = True
