"""What ops see of a dialog in the Temporal UI: search attributes and a one-line summary."""

from datetime import datetime

from temporalio import workflow

from workflows import search_attributes as sa
from workflows.models import DialogState

Published = tuple[object, ...]


def publish(state: DialogState, last: Published | None) -> Published:
    """Upsert the search attributes and set the current details, if they changed since
    ``last``; returns what is now published. Each upsert is a history event."""
    deadline: datetime | None = min(state.deadlines.values(), default=None)
    published = (state.status, state.operator_id, deadline, state.close_reason)
    if published == last:
        return published
    workflow.upsert_search_attributes(
        [
            sa.LINE_ID.value_set(state.line_id),
            sa.CLIENT_ID.value_set(state.chat_id),
            sa.CHANNEL_TYPE.value_set(state.channel_type),
            sa.DIALOG_STATUS.value_set(state.status),
            sa.OPERATOR_ID.value_set(state.operator_id)
            if state.operator_id is not None
            else sa.OPERATOR_ID.value_unset(),
        ]
    )
    workflow.set_current_details(
        f"dialog {state.dialog_id}: {state.status}"
        + (f", operator {state.operator_id}" if state.operator_id else "")
        + (f", offered to {state.offered_to}" if state.offered_to else "")
        + (f", next deadline {deadline.isoformat()}" if deadline else "")
        + (f", closed: {state.close_reason}" if state.close_reason else "")
    )
    return published
