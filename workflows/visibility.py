"""What ops see of a dialog in the Temporal UI: search attributes and a one-line summary."""

from datetime import datetime

from temporalio import workflow

from workflows import search_attributes as sa
from workflows.models import DialogState

Published = tuple[object, ...]


def publish(state: DialogState, last: Published | None) -> Published:
    """Set the current details and upsert the search attributes, if they changed since
    ``last``; returns what is now published.

    Each upsert is a history event, so an upsert is made only when a search attribute's value
    changed (status, operator, line, stalled); a new deadline changes only the details, which
    are no event.
    """
    deadline: datetime | None = min(state.deadlines.values(), default=None)
    stalled = state.stalled_since is not None
    published = (
        state.status,
        state.operator_id,
        state.line_id,
        stalled,
        deadline,
        state.close_reason,
    )
    if published == last:
        return published
    workflow.set_current_details(
        f"dialog {state.dialog_id}: {state.status}"
        + (f", operator {state.operator_id}" if state.operator_id else "")
        + (f", offered to {state.offered_to}" if state.offered_to else "")
        + (f", next deadline {deadline.isoformat()}" if deadline else "")
        + (f", closed: {state.close_reason}" if state.close_reason else "")
        + (
            f", database unreachable since {state.stalled_since.isoformat()} (retrying)"
            if state.stalled_since
            else ""
        )
    )
    if last is None or last[:4] != published[:4]:
        workflow.upsert_search_attributes(
            [
                sa.LINE_ID.value_set(state.line_id),
                sa.CLIENT_ID.value_set(state.chat_id),
                sa.CHANNEL_TYPE.value_set(state.channel_type),
                sa.DIALOG_STATUS.value_set(state.status),
                sa.OPERATOR_ID.value_set(state.operator_id)
                if state.operator_id is not None
                else sa.OPERATOR_ID.value_unset(),
                sa.DIALOG_STALLED.value_set(stalled),
            ]
        )
    return published
