"""A dialog's timers: when each is due, worked out from its state and its line's rules.

The names are those of lifecycle.md; ``GET /v1/dialogs/{id}`` lists them as ``deadlines``.
The main loop of ``DialogWorkflow`` keeps one workflow timer for the nearest deadline and
looks again whenever a deadline comes before it or the timer rings, so a deadline that moves
(a new message) is always kept.
"""

from datetime import datetime, timedelta

from workflows.models import DialogState, KpiItem, Routing

# A dialog nobody answers is closed this long after the client's last unanswered message.
EXPIRY = timedelta(days=30)
# A pinned dialog is closed this long after its last message.
PINNED = timedelta(days=7)


# Deadlines that end a dialog; every open dialog has at least one (design.md, invariant 8).
# The others (handover, no-answer, KPI) only move it on or tell someone.
ENDING = ("expiry", "inactivity", "pinned", "rating_wait", "bot_handover")


def deadlines(state: DialogState, routing: Routing | None) -> dict[str, datetime]:
    """The next due time of each running timer.

    Every path to an open status leaves an ending deadline: closing waits ``rating_wait``;
    otherwise ``expiry`` always runs, 30 days after the client's last unanswered message or,
    when none waits, after the dialog's last message (a dialog answered, then transferred,
    skipped or re-queued, that nobody touches again). ``inactivity`` runs whenever the
    operator's reply is the last word and someone holds the dialog, whatever status led there
    (``operator_replied``, or ``accepted`` after a transfer or intercept); ``pinned`` replaces
    it while pinned.
    """
    due: dict[str, datetime] = {}
    if state.status == "closing":
        if state.closing_since is not None and state.rating_wait is not None:
            due["rating_wait"] = state.closing_since + timedelta(seconds=state.rating_wait)
        return due
    if (since := state.unanswered_since or state.last_message_at) is not None:
        due["expiry"] = since + EXPIRY
    if state.status == "bot":  # no operator is involved yet: no offer, no-answer or KPI
        if routing is not None and routing.bot_handover_after > 0 and state.bot_since:
            due["bot_handover"] = state.bot_since + timedelta(seconds=routing.bot_handover_after)
        return due
    if state.offered_to and state.handover_at is not None:
        due["handover"] = state.handover_at
    if routing is None:
        return due
    if (
        state.operator_id is None
        and state.queued_since is not None
        and not state.no_answer_sent
        and routing.no_answer_after is not None
    ):
        due["no_answer"] = state.queued_since + timedelta(seconds=routing.no_answer_after)
    if (kpi := kpi_item(state, routing)) is not None:
        item, limit = kpi
        assert state.kpi_since is not None
        due[f"kpi_{item}"] = state.kpi_since + timedelta(seconds=limit)
    if state.pinned:
        if state.last_message_at is not None:
            due["pinned"] = state.last_message_at + PINNED
    elif (
        state.operator_id is not None
        and state.unanswered_since is None
        and state.operator_replied_at is not None
    ):
        due["inactivity"] = state.operator_replied_at + timedelta(seconds=routing.inactivity_after)
    return due


def has_ending(due: dict[str, datetime]) -> bool:
    """Whether a dialog with these deadlines has one that ends it."""
    return any(name in due for name in ENDING)


def kpi_item(state: DialogState, routing: Routing) -> tuple[KpiItem, int] | None:
    """The KPI item running now and its limit: the first answer of the session, or a further
    one; None when no client message waits for an answer, it is already overdue, or off."""
    if state.kpi_since is None or state.kpi_overdue_told:
        return None
    if state.answered:
        item: KpiItem = "further_answer"
        limit = routing.kpi_further_answer
    else:
        item, limit = "first_answer", routing.kpi_first_answer
    return (item, limit) if limit > 0 else None
