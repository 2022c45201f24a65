"""The dialog's automatic texts and its closing: what the workflow asks of its activities and
what it keeps of their answers. The words come from the line's settings at sending time.

They run as local activities: short database writes (for the ``api`` channel the stored
message is the delivery), one marker in history each and no round trip through the server.
"""

from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.auto_replies import AutoReplyActivities
    from workflows import activity_calls
    from workflows.models import (
        AutoText,
        AutoTextKind,
        ClientRating,
        ClientTurn,
        CloseReason,
        CloseRequest,
        Closing,
        DialogState,
        RatingOutcome,
        Routing,
    )


async def greet(state: DialogState, routing: Routing | None, message_ids: list[int]) -> None:
    """New client messages: welcome (first message), the agreement notice or the consent it
    waits for, and the off-hours text, as they apply. No activity when none can."""
    off_hours_possible = routing is not None and routing.off_hours_text
    if state.greeted and not state.consent_pending:
        if state.off_hours_sent or not off_hours_possible:
            return
    turn = ClientTurn(
        dialog_id=state.dialog_id,
        message_ids=message_ids,
        first=not state.greeted,
        off_hours_sent=state.off_hours_sent,
        at=workflow.now(),
    )
    greeting = await activity_calls.run_local(AutoReplyActivities.greet, turn)
    state.greeted = True
    state.off_hours_sent = greeting.off_hours_sent
    state.consent_pending = greeting.consent_pending


async def send(state: DialogState, kind: AutoTextKind) -> None:
    """The no-answer mark (and its text), or the off-hours text when nobody is available."""
    text = AutoText(dialog_id=state.dialog_id, kind=kind, at=workflow.now())
    await activity_calls.run_local(AutoReplyActivities.send_text, text)


async def start_closing(state: DialogState, reason: CloseReason, within: timedelta) -> Closing:
    """Send the close text and the rating request as the line's settings say now; returns
    what they said (``rating_wait`` 0: the caller closes it at once). The caller decides the
    dialog's status: the client may have written meanwhile."""
    request = CloseRequest(dialog_id=state.dialog_id, reason=reason, at=workflow.now())
    return await activity_calls.run_local(AutoReplyActivities.start_closing, request, within)


def awaits_rating(state: DialogState) -> bool:
    return state.rating_requested and state.rating is None


async def record_rating(
    state: DialogState, rating: ClientRating, within: timedelta
) -> RatingOutcome:
    """Record the client's rating (refused with a message after the time limit)."""
    outcome = await activity_calls.run_local(
        AutoReplyActivities.record_rating, rating.model_copy(update={"at": workflow.now()}), within
    )
    if outcome.recorded:
        state.rating = rating.value
    return outcome
