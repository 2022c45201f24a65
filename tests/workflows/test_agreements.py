"""The personal-data notice: sent at a new client's first message; the client's next message
is recorded as consent to that version of the agreement."""

import asyncio
from typing import Any

from temporalio.client import WorkflowHandle

from core.line_settings import Close, TextRatingTexts
from core.models import Channel
from tests.workflows.harness import Harness
from workflows.models import DialogState

WELCOME = "Hi! This is Acme support."
NOTICE = "We process your data to answer you. Writing again means you agree."
CLOSING_TEXTS = [Close().text, TextRatingTexts().request]  # the defaults


async def received(harness: Harness, dialog_id: int, expected: list[str]) -> None:
    """The client has got exactly ``expected`` (waiting up to 10 s for texts on their way)."""
    deadline = asyncio.get_running_loop().time() + 10.0
    while (texts := await harness.texts_received(dialog_id)) != expected:
        assert asyncio.get_running_loop().time() < deadline, texts
        await asyncio.sleep(0.02)


def required(agreement_id: int) -> dict[str, Any]:
    return {
        "welcome": {"text": WELCOME},
        "agreement": {"required": True, "agreement_id": agreement_id},
        "rating_wait": 0,
    }


async def consented(
    harness: Harness, agreement_id: int
) -> tuple[Channel, WorkflowHandle[Any, Any], int, DialogState]:
    """Chat ``chat-1`` on a new line requiring the agreement: the client writes, gets the
    notice and writes again. Returns the state once the dialog has dealt with the answer."""
    (a,) = await harness.operators(1)
    channel = await harness.line([a], required(agreement_id), handover_after=3600)
    dialog = await harness.client_writes(channel, "chat-1")
    first = await harness.eventually(dialog, lambda s: s.consent_pending)
    await received(harness, first.dialog_id, [WELCOME, NOTICE])
    assert await harness.consents(agreement_id) == []

    await harness.client_writes(channel, "chat-1", "Fine, go ahead")

    state = await harness.eventually(
        dialog, lambda s: s.client_messages == 2 and not s.consent_pending
    )
    assert (state.status, state.offered_to, state.close_reason) == ("queued", [a], None)
    return channel, dialog, a, state


async def test_the_notice_goes_first_and_the_next_message_is_the_consent(harness: Harness):
    agreement_id = await harness.agreement(NOTICE)

    channel, dialog, a, state = await consented(harness, agreement_id)

    (consent,) = await harness.consents(agreement_id)
    assert (consent.chat_id, consent.version, consent.channel_type) == (state.chat_id, 1, "api")
    assert (consent.channel_id, consent.dialog_id) == (channel.id, state.dialog_id)
    assert consent.message_id == state.seen_message_ids[1]  # the client's second message
    assert consent.created_at is not None
    assert await harness.texts_received(state.dialog_id) == [WELCOME, NOTICE]
    await harness.accept(dialog, a)
    await harness.closed_for_good(dialog, a, state.dialog_id)
    assert await harness.texts_received(state.dialog_id) == [WELCOME, NOTICE, *CLOSING_TEXTS]
    assert len(await harness.consents(agreement_id)) == 1


async def test_messages_after_the_consent_record_nothing_more(harness: Harness):
    agreement_id = await harness.agreement(NOTICE)
    channel, dialog, a, state = await consented(harness, agreement_id)

    await harness.client_writes(channel, "chat-1", "So, about my order")

    await harness.eventually(dialog, lambda s: s.client_messages == 3)
    accepted = await harness.accept(dialog, a)  # after the dialog has dealt with the message
    assert (accepted.status, accepted.consent_pending) == ("accepted", False)
    assert len(await harness.consents(agreement_id)) == 1
    assert await harness.texts_received(state.dialog_id) == [WELCOME, NOTICE]
    await harness.closed_for_good(dialog, a, state.dialog_id)
    assert await harness.texts_received(state.dialog_id) == [WELCOME, NOTICE, *CLOSING_TEXTS]
    assert len(await harness.consents(agreement_id)) == 1


async def test_a_later_session_of_a_client_who_consented_gets_no_notice(harness: Harness):
    agreement_id = await harness.agreement(NOTICE)
    channel, dialog, a, state = await consented(harness, agreement_id)
    await harness.accept(dialog, a)
    await harness.closed_for_good(dialog, a, state.dialog_id)

    await harness.client_writes(channel, "chat-1", "Me again")

    later = await harness.eventually(dialog, lambda s: s.dialog_id != state.dialog_id and s.greeted)
    assert not later.consent_pending
    later = await harness.offered(dialog, [a])
    assert (later.status, later.client_messages, later.close_reason) == ("queued", 1, None)
    assert await harness.texts_received(later.dialog_id) == []  # no notice, no welcome
    assert await harness.texts_received(state.dialog_id) == [WELCOME, NOTICE, *CLOSING_TEXTS]
    await harness.accept(dialog, a)
    await harness.closed_for_good(dialog, a, later.dialog_id)
    assert await harness.texts_received(later.dialog_id) == CLOSING_TEXTS
    assert len(await harness.consents(agreement_id)) == 1


async def test_the_consent_records_the_agreements_current_version(harness: Harness):
    agreement_id = await harness.agreement(NOTICE, version=3)

    _, dialog, a, state = await consented(harness, agreement_id)

    assert [c.version for c in await harness.consents(agreement_id)] == [3]
    await harness.accept(dialog, a)
    await harness.closed_for_good(dialog, a, state.dialog_id)
    assert await harness.texts_received(state.dialog_id) == [WELCOME, NOTICE, *CLOSING_TEXTS]


async def test_without_required_there_is_no_notice_and_no_consent(harness: Harness):
    agreement_id = await harness.agreement(NOTICE)
    (a,) = await harness.operators(1)
    settings = {"welcome": {"text": WELCOME}, "agreement": {"agreement_id": agreement_id}}
    channel = await harness.line([a], settings, handover_after=3600)
    dialog = await harness.client_writes(channel, "chat-1")
    first = await harness.eventually(dialog, lambda s: s.greeted)
    assert not first.consent_pending

    await harness.client_writes(channel, "chat-1", "OK")

    await harness.eventually(dialog, lambda s: s.client_messages == 2)
    accepted = await harness.accept(dialog, a)  # after the dialog has dealt with the message
    assert (accepted.status, accepted.consent_pending) == ("accepted", False)
    assert await harness.texts_received(first.dialog_id) == [WELCOME]
    assert await harness.consents(agreement_id) == []
    await harness.closed_for_good(dialog, a, first.dialog_id)
    assert await harness.texts_received(first.dialog_id) == [WELCOME, *CLOSING_TEXTS]
    assert await harness.consents(agreement_id) == []
