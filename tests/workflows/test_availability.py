"""Who can be offered a dialog at all: availability checking, fired operators, and what
happens to the queue when an operator comes or goes."""

import asyncio
from datetime import timedelta

import pytest

from core.config import get_settings
from tests.workflows.harness import Harness
from workflows.dialog import DialogWorkflow
from workflows.models import ClientMessage


@pytest.fixture
def worktime_tracking(monkeypatch: pytest.MonkeyPatch) -> None:
    """The install tracks working time (``OPENLINES_WORKTIME_TRACKING``)."""
    monkeypatch.setattr(get_settings(), "worktime_tracking", True)


async def test_with_availability_checking_online_operators_not_on_vacation_are_offered(
    harness: Harness,
):
    """Without worktime tracking, being online decides; the workday does not matter."""
    now = await harness.now()
    (offline,) = await harness.operators(1, presence="offline")
    (on_vacation,) = await harness.operators(1, vacation_until=now + timedelta(days=1))
    (paused,) = await harness.operators(1, workday="paused")
    (ended,) = await harness.operators(1, workday="ended")
    (back_from_vacation,) = await harness.operators(1, vacation_until=now - timedelta(days=1))
    (ready,) = await harness.operators(1)
    members = [offline, on_vacation, paused, ended, back_from_vacation, ready]
    channel = await harness.line(members, distribution="all", check_availability=True)

    dialog = await harness.client_writes(channel, "chat-1")

    await harness.offered(dialog, [paused, ended, back_from_vacation, ready])


async def test_with_worktime_tracking_the_started_workday_decides_not_presence(
    harness: Harness, worktime_tracking: None
):
    now = await harness.now()
    (offline,) = await harness.operators(1, presence="offline")  # workday started
    (on_vacation,) = await harness.operators(1, vacation_until=now + timedelta(days=1))
    (paused,) = await harness.operators(1, workday="paused")
    (ended,) = await harness.operators(1, workday="ended")
    (ready,) = await harness.operators(1)
    members = [offline, on_vacation, paused, ended, ready]
    channel = await harness.line(members, distribution="all", check_availability=True)

    dialog = await harness.client_writes(channel, "chat-1")

    await harness.offered(dialog, [offline, ready])


async def test_availability_checking_is_on_for_a_new_line(harness: Harness):
    (offline,) = await harness.operators(1, presence="offline")
    (online,) = await harness.operators(1)
    channel = await harness.line([offline, online], distribution="strictly")

    dialog = await harness.client_writes(channel, "chat-1")

    await harness.offered(dialog, [online])  # strictly would offer the first member first


async def test_evenly_with_availability_checking_skips_unavailable_operators(harness: Harness):
    now = await harness.now()
    (offline,) = await harness.operators(1, presence="offline")
    (on_vacation,) = await harness.operators(1, vacation_until=now + timedelta(hours=1))
    (ready,) = await harness.operators(1)
    channel = await harness.line(
        [offline, on_vacation, ready], distribution="evenly", check_availability=True
    )
    for chat in ("chat-1", "chat-2", "chat-3"):
        dialog = await harness.client_writes(channel, chat)
        await harness.offered(dialog, [ready])  # evenly would pick the never-offered others


async def test_without_availability_checking_offline_operators_are_offered(harness: Harness):
    (offline,) = await harness.operators(1, presence="offline", workday="ended")
    channel = await harness.line([offline], check_availability=False)
    dialog = await harness.client_writes(channel, "chat-1")
    await harness.offered(dialog, [offline])


async def test_a_fired_operator_is_never_offered_even_without_availability_checking(
    harness: Harness,
):
    now = await harness.now()
    (fired,) = await harness.operators(1, fired=True, fired_at=now)
    (other,) = await harness.operators(1)
    all_line = await harness.line([fired, other], distribution="all", check_availability=False)
    everyone = await harness.client_writes(all_line, "chat-1")
    await harness.offered(everyone, [other])

    strict_line = await harness.line([fired], distribution="strictly", check_availability=False)
    nobody = await harness.client_writes(strict_line, "chat-2")
    await harness.waiting(nobody)


async def test_with_nobody_available_the_dialog_waits_and_keeps_its_expiry(harness: Harness):
    (offline,) = await harness.operators(1, presence="offline")
    channel = await harness.line([offline], check_availability=True, handover_after=60)
    dialog = await harness.client_writes(channel, "chat-1")
    written_at = await harness.now()

    state = await harness.waiting(dialog)
    expiry = state.deadlines["expiry"]
    assert written_at + timedelta(days=30) <= expiry <= written_at + timedelta(days=30, seconds=5)
    assert "handover" not in state.deadlines  # no offer, so nothing to hand over

    await harness.sleep(600)  # several handover periods: still nobody
    state = await harness.waiting(dialog)
    assert state.deadlines["expiry"] == expiry

    result = await harness.result(dialog)  # nobody ever came: the expiry ends it
    assert (result.status, result.close_reason) == ("closed", "expired")


async def test_a_waiting_dialog_is_offered_as_soon_as_an_operator_comes_online(
    harness: Harness,
):
    (operator,) = await harness.operators(1, presence="offline")
    channel = await harness.line([operator], check_availability=True, handover_after=3600)
    dialog = await harness.client_writes(channel, "chat-1")
    await harness.waiting(dialog)

    await harness.operator_changes(operator, presence="online")

    state = await harness.offered(dialog, [operator])
    assert state.status == "queued"
    accepted = await harness.accept(dialog, operator)
    assert (accepted.status, accepted.operator_id) == ("accepted", operator)


async def test_operators_returning_to_work_get_waiting_dialogs_oldest_first(harness: Harness):
    now = await harness.now()
    (operator,) = await harness.operators(1, vacation_until=now + timedelta(days=7))
    channel = await harness.line([operator], check_availability=True, max_dialogs_per_operator=1)
    older = await harness.client_writes(channel, "chat-1")
    await harness.waiting(older)
    younger = await harness.client_writes(channel, "chat-2")
    await harness.waiting(younger)

    await harness.operator_changes(operator, vacation_until=None)

    await harness.offered(older, [operator])
    await harness.waiting(younger)  # the limit of one is taken by the older dialog


async def test_an_offer_to_an_operator_who_goes_offline_moves_on_at_once(harness: Harness):
    a, b = await harness.operators(2)
    channel = await harness.line(
        [a, b], distribution="strictly", check_availability=True, handover_after=3600
    )
    dialog = await harness.client_writes(channel, "chat-1")
    await harness.offered(dialog, [a])

    await harness.operator_changes(a, presence="offline")  # no workflow time passes

    state = await harness.offered(dialog, [b])
    assert state.status == "queued"
    rejected = await harness.refused(harness.accept(dialog, a))
    assert "is not offered to operator" in rejected


async def test_an_offer_to_an_operator_who_goes_on_vacation_moves_on_at_once(harness: Harness):
    a, b = await harness.operators(2)
    channel = await harness.line(
        [a, b], distribution="strictly", check_availability=True, handover_after=3600
    )
    dialog = await harness.client_writes(channel, "chat-1")
    await harness.offered(dialog, [a])

    await harness.operator_changes(a, vacation_until=await harness.now() + timedelta(days=7))

    await harness.offered(dialog, [b])


async def test_an_offer_to_an_operator_who_ends_the_workday_waits_for_the_next_one(
    harness: Harness, worktime_tracking: None
):
    (a,) = await harness.operators(1)
    (b,) = await harness.operators(1, workday="ended")
    channel = await harness.line([a, b], check_availability=True, handover_after=3600)
    dialog = await harness.client_writes(channel, "chat-1")
    await harness.offered(dialog, [a])

    await harness.operator_changes(a, workday="ended")
    await harness.waiting(dialog)  # back in the queue, nobody to take it

    await harness.operator_changes(b, workday="started")
    await harness.offered(dialog, [b])


async def test_a_fired_operator_loses_accepted_dialogs_to_someone_else(harness: Harness):
    a, b = await harness.operators(2)
    channel = await harness.line([a, b], check_availability=False, handover_after=3600)
    dialog = await harness.client_writes(channel, "chat-1")
    await harness.offered(dialog, [a])
    await harness.accept(dialog, a)
    await harness.reply(dialog, a)

    await harness.operator_changes(a, fired=True, fired_at=await harness.now())

    state = await harness.offered(dialog, [b])
    assert (state.status, state.operator_id) == ("queued", None)
    accepted = await harness.accept(dialog, b)
    assert (accepted.status, accepted.operator_id) == ("accepted", b)
    row = await harness.row(dialog)
    assert (row.operator_id, row.status) == (b, "accepted")


async def test_an_offline_operator_keeps_accepted_dialogs(harness: Harness):
    a, b = await harness.operators(2)
    channel = await harness.line([a, b], check_availability=True, handover_after=3600)
    dialog = await harness.client_writes(channel, "chat-1")
    await harness.offered(dialog, [a])
    await harness.accept(dialog, a)

    await harness.operator_changes(a, presence="offline")

    await harness.sleep(1)
    state = await harness.state(dialog)
    assert (state.status, state.operator_id, state.offered_to) == ("accepted", a, [])
    assert (await harness.row(dialog)).operator_id == a


async def test_a_client_writing_to_an_operator_who_went_offline_goes_back_to_the_queue(
    harness: Harness,
):
    """lifecycle.md: with check_availability, a client message to a dialog whose accepted
    operator is no longer available sends it back to the queue (not pinned, not the only
    member)."""
    a, b = await harness.operators(2)
    channel = await harness.line([a, b], check_availability=True, handover_after=3600)
    dialog = await harness.client_writes(channel, "chat-1")
    await harness.offered(dialog, [a])
    await harness.accept(dialog, a)
    await harness.operator_changes(a, presence="offline")

    await harness.client_writes(channel, "chat-1", "Hello? Anyone?")

    state = await harness.offered(dialog, [b])
    assert (state.status, state.operator_id) == ("queued", None)


async def test_a_fired_operator_loses_the_dialog_even_if_the_client_writes_meanwhile(
    harness: Harness,
):
    """The client's message reaches the workflow while the firing's routing transaction is
    still open; the workflow's write of its state waits for the line lock, then must not give
    the dialog back to the fired operator."""
    a, b = await harness.operators(2)
    channel = await harness.line([a, b], handover_after=3600)
    dialog = await harness.client_writes(channel, "chat-1")
    await harness.offered(dialog, [a])
    accepted = await harness.accept(dialog, a)
    await harness.row_shows(dialog, "accepted")

    async with harness.operator_changing(a, fired=True, fired_at=await harness.now()):
        message = ClientMessage(  # a client message: the workflow only looks at its id
            message_id=10**9, dialog_id=accepted.dialog_id, sent_at=await harness.now()
        )
        await dialog.signal(DialogWorkflow.client_message, message)
        await asyncio.sleep(0.5)  # the workflow turns, its projection waits for the lock

    state = await harness.offered(dialog, [b])
    assert (state.status, state.operator_id) == ("queued", None)
    row = await harness.row(dialog)
    assert (row.operator_id, row.offered_to) == (None, [b])


async def test_waiting_dialogs_go_to_an_operator_the_moment_their_vacation_ends(harness: Harness):
    (ann,) = await harness.operators(1)
    channel = await harness.line([ann], check_availability=True)
    await harness.operator_changes(ann, vacation_until=await harness.now() + timedelta(days=2))
    dialog = await harness.client_writes(channel, "chat-vacation")
    await harness.eventually(dialog, lambda s: s.status == "queued" and s.offered_to == [])
    await harness.sleep(2 * 24 * 3600 - 60)
    assert (await harness.state(dialog)).offered_to == []
    await harness.sleep(60)
    await harness.offered(dialog, [ann])


async def test_an_operator_removed_from_the_queue_loses_offers_and_accepted_dialogs(
    harness: Harness,
):
    ann, bob = await harness.operators(2)
    channel = await harness.line([ann, bob], distribution="evenly")
    offered = await harness.client_writes(channel, "chat-removed-1")
    await harness.offered(offered, [ann])
    taken = await harness.client_writes(channel, "chat-removed-2")
    await harness.offered(taken, [bob])
    await harness.accept(taken, bob)

    await harness.set_members(channel.line_id, [ann])  # Bob leaves the queue

    state = await harness.eventually(taken, lambda s: s.operator_id is None)
    assert state.status == "queued"
    await harness.offered(taken, [ann])
    assert (await harness.state(offered)).offered_to == [ann]
