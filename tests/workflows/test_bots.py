"""A line's chat-bot takes new dialogs first and hands them to the operators or closes them."""

from typing import Any

from sqlalchemy import select
from temporalio.client import WorkflowHandle

from core.events.models import Event
from core.models import Bot, Message
from tests.workflows.harness import Harness
from workflows.dialog import DialogWorkflow
from workflows.models import BotAction, BotReply, DialogState, OperatorAction, Transfer

WELCOME = "Hi! This is Acme support."


async def registered_bot(harness: Harness) -> int:
    async with harness.sessions() as session, session.begin():
        bot = Bot(name="Helper")
        session.add(bot)
        await session.flush()
        return bot.id


async def bot_line(harness: Harness, operators: list[int], **bot: Any) -> tuple[Any, int]:
    """A line whose chat-bot (``bot`` settings over defaults) takes dialogs first."""
    bot_id = await registered_bot(harness)
    settings = {"bot": {"enabled": True, "bot_id": bot_id, **bot}, "welcome": {"text": WELCOME}}
    return await harness.line(operators, settings, handover_after=3600), bot_id


async def with_bot(harness: Harness, dialog: WorkflowHandle[Any, Any]) -> DialogState:
    return await harness.eventually(dialog, lambda s: s.status == "bot")


async def bot_says(
    harness: Harness, dialog: WorkflowHandle[Any, Any], bot_id: int, text: str
) -> DialogState:
    """The bot writes, as the API does it: the message stored first, then the update."""
    state = await harness.state(dialog)
    async with harness.sessions() as session, session.begin():
        message = Message(chat_id=state.chat_id, dialog_id=state.dialog_id, author="bot", text=text)
        session.add(message)
        await session.flush()
    reply = BotReply(dialog_id=state.dialog_id, bot_id=bot_id, message_id=message.id)
    result: DialogState = await dialog.execute_update(DialogWorkflow.bot_reply, reply)
    return result


async def bot_does(dialog: WorkflowHandle[Any, Any], update: Any, bot_id: int) -> DialogState:
    state: DialogState = await dialog.query(DialogWorkflow.state)
    result: DialogState = await dialog.execute_update(
        update, BotAction(dialog_id=state.dialog_id, bot_id=bot_id)
    )
    return result


async def test_the_bot_takes_a_new_chat_and_hands_it_to_the_queue_when_it_asks(
    harness: Harness,
):
    (ann,) = await harness.operators(1)
    channel, bot_id = await bot_line(harness, [ann])
    dialog = await harness.client_writes(channel, "chat-1", "I need a refund")

    state = await with_bot(harness, dialog)
    assert (state.bot_id, state.offered_to, state.operator_id) == (bot_id, [], None)
    row = await harness.dialog_row(state.dialog_id)
    assert (row.status, row.bot_id, row.offered_to) == ("bot", bot_id, [])

    await bot_says(harness, dialog, bot_id, "What is your order number?")
    await harness.client_writes(channel, "chat-1", "A-1234")
    state = await harness.eventually(dialog, lambda s: s.client_messages == 2)
    assert (state.status, state.offered_to) == ("bot", [])

    handed = await bot_does(dialog, DialogWorkflow.bot_handover, bot_id)
    assert handed.status == "queued"
    await harness.offered(dialog, [ann])
    accepted = await harness.accept(dialog, ann)
    assert (accepted.status, accepted.operator_id, accepted.bot_id) == ("accepted", ann, None)
    # No welcome: the bot greets in its own words; everything the client saw is in history.
    assert await harness.messages(state.dialog_id) == [
        ("client", "I need a refund"),
        ("bot", "What is your order number?"),
        ("client", "A-1234"),
    ]


async def test_the_bot_hands_over_after_exactly_handover_after(harness: Harness):
    (ann,) = await harness.operators(1)
    channel, _ = await bot_line(harness, [ann], handover_after=600)
    dialog = await harness.client_writes(channel, "chat-1")
    state = await with_bot(harness, dialog)
    assert "bot_handover" in state.deadlines
    await harness.sleep(599)
    assert (await harness.state(dialog)).status == "bot"
    await harness.sleep(1)
    state = await harness.offered(dialog, [ann])
    assert state.status == "queued"


async def test_with_handover_after_0_the_bot_keeps_the_dialog_until_it_asks(harness: Harness):
    (ann,) = await harness.operators(1)
    channel, _ = await bot_line(harness, [ann], handover_after=0)
    dialog = await harness.client_writes(channel, "chat-1")
    state = await with_bot(harness, dialog)
    assert "bot_handover" not in state.deadlines
    await harness.sleep(7 * 24 * 3600)
    state = await harness.state(dialog)
    assert (state.status, state.offered_to) == ("bot", [])


async def test_a_bot_close_ends_the_dialog_without_texts(harness: Harness):
    (ann,) = await harness.operators(1)
    channel, bot_id = await bot_line(harness, [ann])
    dialog = await harness.client_writes(channel, "chat-1", "What are your hours?")
    state = await with_bot(harness, dialog)
    await bot_says(harness, dialog, bot_id, "9 to 5, Monday to Friday.")
    await bot_does(dialog, DialogWorkflow.bot_close, bot_id)
    result = await harness.result(dialog)
    assert (result.status, result.close_reason, result.operator_id) == ("closed", "bot", None)
    row = await harness.dialog_row(state.dialog_id)
    assert (row.status, row.close_reason) == ("closed", "bot")
    assert await harness.messages(state.dialog_id) == [
        ("client", "What are your hours?"),
        ("bot", "9 to 5, Monday to Friday."),
    ]


async def test_join_first_leaves_later_sessions_to_the_queue(harness: Harness):
    (ann,) = await harness.operators(1)
    channel, bot_id = await bot_line(harness, [ann], join="first")
    first = await harness.client_writes(channel, "chat-1")
    await with_bot(harness, first)
    closed = await bot_does(first, DialogWorkflow.bot_close, bot_id)
    second = await harness.client_writes(channel, "chat-1", "Me again")
    state = await harness.offered(second, [ann])
    assert (state.dialog_id, state.status, state.bot_id) == (closed.dialog_id + 1, "queued", None)


async def test_join_always_gives_every_session_to_the_bot(harness: Harness):
    (ann,) = await harness.operators(1)
    channel, bot_id = await bot_line(harness, [ann], join="always")
    first = await harness.client_writes(channel, "chat-1")
    await with_bot(harness, first)
    closed = await bot_does(first, DialogWorkflow.bot_close, bot_id)
    second = await harness.client_writes(channel, "chat-1", "Me again")
    state = await harness.eventually(second, lambda s: s.dialog_id == closed.dialog_id + 1)
    state = await with_bot(harness, second)
    assert (state.bot_id, state.offered_to) == (bot_id, [])


async def test_with_leave_queue_the_bot_may_not_write_once_it_handed_over(harness: Harness):
    (ann,) = await harness.operators(1)
    channel, bot_id = await bot_line(harness, [ann], leave="queue")
    dialog = await harness.client_writes(channel, "chat-1")
    await with_bot(harness, dialog)
    await bot_does(dialog, DialogWorkflow.bot_handover, bot_id)
    await harness.offered(dialog, [ann])
    refused = await harness.refused(bot_says(harness, dialog, bot_id, "Still here!"))
    assert f"is not held by bot {bot_id}" in refused
    refused = await harness.refused(bot_does(dialog, DialogWorkflow.bot_close, bot_id))
    assert f"is not held by bot {bot_id}" in refused


async def test_with_leave_close_the_bot_stays_and_may_write_but_not_close(harness: Harness):
    (ann,) = await harness.operators(1)
    channel, bot_id = await bot_line(harness, [ann], leave="close")
    dialog = await harness.client_writes(channel, "chat-1")
    await with_bot(harness, dialog)
    await bot_does(dialog, DialogWorkflow.bot_handover, bot_id)
    await harness.offered(dialog, [ann])
    await harness.accept(dialog, ann)
    state = await bot_says(harness, dialog, bot_id, "Ann will help you now.")
    assert (state.status, state.operator_id, state.bot_id) == ("accepted", ann, bot_id)
    refused = await harness.refused(bot_does(dialog, DialogWorkflow.bot_close, bot_id))
    assert f"is not held by bot {bot_id}" in refused


async def kpi_bot_dialog(
    harness: Harness, handover_after: int
) -> tuple[int, WorkflowHandle[Any, Any], DialogState]:
    """A dialog the bot holds on a line whose operator (returned) has 60 s to answer first."""
    (ann,) = await harness.operators(1)
    bot_id = await registered_bot(harness)
    settings = {
        "bot": {"enabled": True, "bot_id": bot_id, "handover_after": handover_after},
        "kpi": {"first_answer": {"limit": 60}},
    }
    channel = await harness.line([ann], settings, handover_after=3600)
    dialog = await harness.client_writes(channel, "chat-1")
    return ann, dialog, await with_bot(harness, dialog)


async def test_time_with_the_bot_does_not_count_against_the_operators_kpi(harness: Harness):
    ann, dialog, state = await kpi_bot_dialog(harness, handover_after=600)
    assert not any(name.startswith("kpi_") for name in state.deadlines)
    await harness.sleep(600)  # the bot hands over
    await harness.offered(dialog, [ann])
    await harness.sleep(30)
    state = await harness.reply(dialog, ann)
    assert (state.kpi.first_answer_s, state.kpi.overdue) == (30, 0)


async def test_an_operator_cannot_take_a_dialog_the_bot_holds(harness: Harness):
    (ann,) = await harness.operators(1)
    channel, _ = await bot_line(harness, [ann])
    dialog = await harness.client_writes(channel, "chat-1")
    await with_bot(harness, dialog)
    refused = await harness.refused(harness.accept(dialog, ann))
    assert f"is not offered to operator {ann}" in refused


async def test_a_supervisor_may_give_a_bot_dialog_to_an_operator(harness: Harness):
    (ann,) = await harness.operators(1)
    channel, _ = await bot_line(harness, [ann])
    dialog = await harness.client_writes(channel, "chat-1")
    state = await with_bot(harness, dialog)
    intercepted: DialogState = await dialog.execute_update(
        DialogWorkflow.transfer,
        Transfer(dialog_id=state.dialog_id, by_supervisor=True, to_operator_id=ann),
    )
    assert (intercepted.status, intercepted.operator_id, intercepted.bot_id) == (
        "accepted",
        ann,
        None,
    )
    replied = await harness.reply(dialog, ann)
    assert replied.status == "operator_replied"


async def test_a_dialog_reopened_after_a_supervisor_close_goes_to_the_queue_without_the_bot(
    harness: Harness,
):
    (ann,) = await harness.operators(1)
    channel, bot_id = await bot_line(harness, [ann], leave="queue")
    dialog = await harness.client_writes(channel, "chat-1")
    state = await with_bot(harness, dialog)
    closing: DialogState = await dialog.execute_update(
        DialogWorkflow.close, OperatorAction(dialog_id=state.dialog_id, by_supervisor=True)
    )
    assert closing.status == "closing"
    await harness.client_writes(channel, "chat-1", "Wait, one more thing")
    state = await harness.offered(dialog, [ann])
    assert (state.dialog_id, state.status, state.bot_id) == (closing.dialog_id, "queued", None)
    refused = await harness.refused(bot_says(harness, dialog, bot_id, "Still here!"))
    assert f"is not held by bot {bot_id}" in refused


async def test_an_intercepted_bot_dialog_starts_the_operators_kpi_clock(harness: Harness):
    ann, dialog, state = await kpi_bot_dialog(harness, handover_after=0)
    await harness.sleep(600)
    await dialog.execute_update(
        DialogWorkflow.transfer,
        Transfer(dialog_id=state.dialog_id, by_supervisor=True, to_operator_id=ann),
    )
    await harness.sleep(30)
    state = await harness.reply(dialog, ann)
    assert (state.kpi.first_answer_s, state.kpi.overdue) == (30, 0)


async def test_the_bots_messages_reach_the_operators_console(harness: Harness):
    (ann,) = await harness.operators(1)
    channel, bot_id = await bot_line(harness, [ann], leave="close")
    dialog = await harness.client_writes(channel, "chat-1")
    state = await with_bot(harness, dialog)
    await bot_says(harness, dialog, bot_id, "Before the handover")
    await bot_does(dialog, DialogWorkflow.bot_handover, bot_id)
    await harness.offered(dialog, [ann])
    await harness.accept(dialog, ann)
    await bot_says(harness, dialog, bot_id, "After the accept")
    async with harness.sessions() as session:
        events = await session.scalars(
            select(Event)
            .where(Event.dialog_id == state.dialog_id, Event.type == "message.created")
            .order_by(Event.id)
        )
        bot_events = [e.operator_ids for e in events if e.data["author"] == "bot"]
    assert bot_events == [[], [ann]]
