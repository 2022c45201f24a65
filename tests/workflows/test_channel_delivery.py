"""Outbound delivery on the time-skipping server: a channel's 429 ``Retry-After`` is waited
out, a channel that keeps failing has its message marked failed after hours of retries, and
the chat's next message still goes."""

import asyncio
from datetime import timedelta

from sqlalchemy import select
from temporalio import activity
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from channels.delivery import DeliveryFailure
from core.events.models import Event
from core.models import Message
from tests.channels.receiver import Receiver, Reply
from tests.workflows.harness import Harness
from workflows.channel_delivery import KEEP_TRYING, ChannelDeliveryWorkflow, workflow_id


async def welcome_of(harness: Harness, receiver: Receiver, chat: str) -> Message:
    """A client writes on a webhook channel; its welcome text, once stored."""
    (ann,) = await harness.operators(1)
    line = await harness.line([ann], handover_after=3600)
    channel = await harness.channel(line.line_id, "webhook", url=receiver.url)
    dialog = await harness.client_writes(channel, chat)
    state = await harness.eventually(dialog, lambda s: s.greeted)
    async with harness.sessions() as session:
        query = select(Message).where(
            Message.dialog_id == state.dialog_id, Message.author == "system"
        )
        welcome = await session.scalar(query.order_by(Message.id).limit(1))
    assert welcome is not None
    return welcome


async def asked(receiver: Receiver) -> None:
    """The channel has been asked once at least (within 10 s of real time)."""
    for _ in range(500):
        if receiver.requests:
            return
        await asyncio.sleep(0.02)
    raise AssertionError("the channel was never asked")


async def status_of(harness: Harness, message_id: int) -> tuple[str | None, str | None]:
    async with harness.sessions() as session:
        row = await session.get(Message, message_id)
    assert row is not None
    return row.delivery_status, row.delivery_error


async def settled(harness: Harness, message_id: int, status: str) -> str | None:
    """The message's error once its status is ``status`` (within 10 s of real time)."""
    for _ in range(500):
        found, error = await status_of(harness, message_id)
        if found == status:
            return error
        await asyncio.sleep(0.02)
    raise AssertionError(f"message {message_id} is {await status_of(harness, message_id)}")


async def test_a_429_is_waited_out_for_as_long_as_the_channel_asks(
    harness: Harness, receiver: Receiver
):
    receiver.answer(Reply(429, {"Retry-After": "120"}))  # then 200
    welcome = await welcome_of(harness, receiver, "delivery-429")
    await settled(harness, welcome.id, "pending")
    await asked(receiver)

    await harness.sleep(100)
    assert (len(receiver.requests), (await status_of(harness, welcome.id))[0]) == (1, "pending")
    await harness.sleep(25)

    assert await settled(harness, welcome.id, "sent") is None
    assert len(receiver.requests) == 2


async def test_a_channel_that_keeps_failing_fails_the_message_after_hours_and_the_next_goes(
    harness: Harness, receiver: Receiver
):
    receiver.answer(*[503] * 200)
    welcome = await welcome_of(harness, receiver, "delivery-down")
    await asked(receiver)

    await harness.sleep(KEEP_TRYING.total_seconds() - 600)
    assert (await status_of(harness, welcome.id))[0] == "pending"
    await harness.sleep(timedelta(minutes=20).total_seconds())

    assert "503" in (await settled(harness, welcome.id, "failed") or "")
    tries = len(receiver.requests)
    assert 20 < tries < 60  # backoff from 1 s, doubling, at most 10 min apart
    async with harness.sessions() as session:
        failed = await session.scalars(
            select(Event).where(
                Event.type == "message.failed", Event.dialog_id == welcome.dialog_id
            )
        )
        assert [e.data["message_id"] for e in failed] == [welcome.id]


async def test_a_message_owed_again_while_it_is_being_sent_goes_again(
    env: WorkflowEnvironment, task_queue: str
):
    """A resend that comes after the message failed but before the run moved on to the next
    one (the relay's signal meets the message still at the head of the run's list) is not
    lost: the message goes again."""
    sent: list[int] = []
    first_attempt_may_end = asyncio.Event()

    @activity.defn(name="send")
    async def send(message_id: int) -> str:
        sent.append(message_id)
        if len(sent) == 1:
            await first_attempt_may_end.wait()
        return "sent"

    @activity.defn(name="give_up")
    async def give_up(failure: DeliveryFailure) -> None:
        raise AssertionError(f"no message should fail here: {failure}")

    async with Worker(
        env.client,
        task_queue=task_queue,
        workflows=[ChannelDeliveryWorkflow],
        activities=[send, give_up],
    ):
        handle = await env.client.start_workflow(
            ChannelDeliveryWorkflow.run, [7], id=workflow_id(7001), task_queue=task_queue
        )
        for _ in range(500):
            if sent:
                break
            await asyncio.sleep(0.01)
        await handle.signal(ChannelDeliveryWorkflow.owe, 7)  # owed again while being sent
        first_attempt_may_end.set()
        for _ in range(500):
            if len(sent) == 2:
                break
            await asyncio.sleep(0.01)

    assert sent == [7, 7]
