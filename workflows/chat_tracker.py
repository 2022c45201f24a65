"""The CRM side of a dialog: recognise the client before the dialog is routed.

The chat tracker (``activities/chat_tracker.py``) links the dialog to its CRM contact on the
first message, so routing can offer it to the contact's responsible operator, and again for
every message that may hold a phone number or an email. It commits the lead a new client is
owed; the worker creates the lead apart from the dialog, so a CRM outage never holds it up.
"""

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.chat_tracker import ChatTrackerActivities
    from workflows import activity_calls
    from workflows.models import ClientMessage, ClientTurn, DialogState, Pending


def client_wrote(state: DialogState, pending: Pending, message: ClientMessage) -> None:
    """Owe the tracker the dialog's first message and every one that may name a contact."""
    if not state.tracked or message.contact_hint:
        pending.track.append(message.message_id)


async def track(state: DialogState, pending: Pending) -> None:
    """Run the tracker on the messages it is owed."""
    if not pending.track:
        return
    message_ids = list(pending.track)
    turn = ClientTurn(
        dialog_id=state.dialog_id,
        message_ids=message_ids,
        first=not state.tracked,
        off_hours_sent=state.off_hours_sent,
        at=workflow.now(),
    )
    await activity_calls.run_local(ChatTrackerActivities.track, turn)
    del pending.track[: len(message_ids)]  # only now: a failed run is tried again
    state.tracked = True
