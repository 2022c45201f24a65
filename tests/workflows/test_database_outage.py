"""A dialog whose database is unreachable: its actions answer "unavailable" within their
deadline and change nothing; its own work stalls visibly and is done once the database is
back; it never holds its action lock for good."""

import asyncio
from datetime import timedelta

import pytest

from activities.dialogs import DialogActivities
from tests.workflows import gates
from tests.workflows.gates import Gate
from tests.workflows.harness import Harness
from workflows import search_attributes as sa
from workflows.dialog import RETRY_PAUSE, DialogWorkflow
from workflows.models import OperatorAction, Reply


@pytest.fixture
def reply_gate(monkeypatch: pytest.MonkeyPatch) -> Gate:
    return gates.install(monkeypatch, DialogActivities, "reply")


@pytest.fixture
def routing_gate(monkeypatch: pytest.MonkeyPatch) -> Gate:
    return gates.install(monkeypatch, DialogActivities, "current_routing")


async def test_an_action_during_an_outage_is_unavailable_in_time_and_not_applied(
    reply_gate: Gate, harness: Harness
):
    (a,) = await harness.operators(1)
    channel = await harness.line([a], handover_after=3600)
    dialog = await harness.client_writes(channel, "chat-1")
    await harness.offered(dialog, [a])
    await harness.accept(dialog, a)
    state = await harness.state(dialog)
    deadline = await harness.now() + timedelta(seconds=2)
    reply = Reply(dialog_id=state.dialog_id, operator_id=a, message_id=0, expires_at=deadline)

    with reply_gate.down():
        started = asyncio.get_running_loop().time()
        refused = await harness.refused(dialog.execute_update(DialogWorkflow.reply, reply))
        took = asyncio.get_running_loop().time() - started

    assert "did not answer in time" in refused
    assert took < 10, took
    after = await harness.state(dialog)
    assert (after.status, after.answered) == ("accepted", False)
    accepted_again = await dialog.execute_update(
        DialogWorkflow.pin, OperatorAction(dialog_id=state.dialog_id, operator_id=a)
    )
    assert accepted_again.pinned  # the action lock is free again


async def test_a_step_that_fails_stalls_visibly_and_is_done_once_the_database_is_back(
    routing_gate: Gate, harness: Harness
):
    (a,) = await harness.operators(1)
    channel = await harness.line([a], handover_after=3600)
    dialog = await harness.client_writes(channel, "chat-1")
    await harness.offered(dialog, [a])

    with routing_gate.down(LookupError):  # fails at once: no retry can cure it
        await dialog.signal(DialogWorkflow.wake)
        stalled = await harness.eventually(dialog, lambda s: s.stalled_since is not None)
        described = await dialog.describe()
        assert described.typed_search_attributes.get(sa.DIALOG_STALLED) is True
        taken = await harness.accept(dialog, a)  # actions are still served meanwhile
        assert taken.operator_id == a
    calls = routing_gate.calls

    await harness.sleep(RETRY_PAUSE.total_seconds())

    recovered = await harness.eventually(dialog, lambda s: s.stalled_since is None)
    assert routing_gate.calls > calls
    assert recovered.status == "accepted" and stalled.stalled_since is not None
    described = await dialog.describe()
    assert described.typed_search_attributes.get(sa.DIALOG_STALLED) is False
