"""KPI timers on the time-skipping server: overdue marks, notifications, answer times."""

from sqlalchemy import select

from core.events.models import Event, Notification
from tests.workflows.harness import Harness

KPI_TEXT = "#OPERATOR# has not answered dialog #DIALOG# yet"


async def notifications(harness: Harness, recipient: int) -> list[Notification]:
    async with harness.sessions() as session:
        rows = await session.scalars(
            select(Notification).where(Notification.recipient_id == recipient)
        )
        return list(rows)


async def test_a_late_first_answer_is_marked_overdue_and_the_supervisor_told_once(
    harness: Harness,
) -> None:
    (agent,) = await harness.operators(1, name="Ann")
    (supervisor,) = await harness.operators(1, name="Sue")
    first_answer = {"limit": 60, "notify": True, "recipients": [supervisor], "text": KPI_TEXT}
    channel = await harness.line(
        [agent], {"kpi": {"first_answer": first_answer}}, handover_after=3600
    )
    dialog = await harness.client_writes(channel, "kpi-1")
    await harness.offered(dialog, [agent])
    state = await harness.accept(dialog, agent)
    assert "kpi_first_answer" in state.deadlines

    await harness.sleep(55)
    assert await notifications(harness, supervisor) == []
    await harness.client_writes(channel, "kpi-1", "Anyone there?")  # the same item goes on
    await harness.sleep(10)

    state = await harness.eventually(dialog, lambda s: s.kpi.overdue == 1)
    url = f"http://127.0.0.1:8000/v1/dialogs/{state.dialog_id}"
    (told,) = await notifications(harness, supervisor)
    assert told.text == f"Ann has not answered dialog [{state.dialog_id}]({url}) yet"
    assert (told.kind, told.dialog_id, told.url) == ("kpi.overdue", state.dialog_id, url)
    assert "kpi_first_answer" not in state.deadlines
    assert (await harness.row(dialog)).kpi_overdue == 1

    await harness.sleep(3600)  # nothing more is due for this item
    assert len(await notifications(harness, supervisor)) == 1
    assert await notifications(harness, agent) == []
    async with harness.sessions() as session:
        overdue = await session.scalars(
            select(Event).where(Event.type == "kpi.overdue", Event.dialog_id == state.dialog_id)
        )
        assert [e.operator_ids for e in overdue] == [[agent]]


async def test_further_answers_have_their_own_limit_and_an_answer_in_time_is_not_overdue(
    harness: Harness,
) -> None:
    (agent,) = await harness.operators(1, name="Bob")
    (supervisor,) = await harness.operators(1)
    kpi = {
        "first_answer": {"limit": 120},
        "further_answer": {"limit": 30, "notify": True, "recipients": [supervisor]},
    }
    channel = await harness.line([agent], {"kpi": kpi}, handover_after=3600)
    dialog = await harness.client_writes(channel, "kpi-2")
    await harness.offered(dialog, [agent])
    await harness.sleep(100)
    await harness.reply(dialog, agent)  # within 120 s: not overdue
    await harness.client_writes(channel, "kpi-2", "And another thing")
    state = await harness.eventually(dialog, lambda s: "kpi_further_answer" in s.deadlines)
    assert state.kpi.overdue == 0
    await harness.sleep(31)
    state = await harness.eventually(dialog, lambda s: s.kpi.overdue == 1)
    (told,) = await notifications(harness, supervisor)
    url = f"http://127.0.0.1:8000/v1/dialogs/{state.dialog_id}"
    assert told.text == f"Bob has not answered dialog [{state.dialog_id}]({url}) in time."


async def test_answer_times_of_a_scripted_dialog_are_exact_to_the_second(
    harness: Harness,
) -> None:
    (agent,) = await harness.operators(1)
    channel = await harness.line([agent], handover_after=3600)
    dialog = await harness.client_writes(channel, "kpi-3")
    await harness.offered(dialog, [agent])
    await harness.sleep(30)
    await harness.reply(dialog, agent)  # 30 s

    await harness.client_writes(channel, "kpi-3", "Thanks, one more question")
    await harness.eventually(dialog, lambda s: s.status == "client_followup")
    await harness.sleep(50)
    await harness.reply(dialog, agent)  # 50 s

    await harness.client_writes(channel, "kpi-3", "Hm")
    await harness.eventually(dialog, lambda s: s.status == "client_followup")
    await harness.sleep(10)
    await harness.client_writes(channel, "kpi-3", "Hello?")  # the item counts from "Hm"
    await harness.eventually(dialog, lambda s: s.client_messages == 4)
    await harness.sleep(10)
    state = await harness.reply(dialog, agent)  # 20 s
    await harness.reply(dialog, agent)  # answers nothing: no item was waiting

    expected = (30, 100, 3, 50)
    numbers = state.kpi
    assert (numbers.first_answer_s, numbers.total_answer_s, numbers.answers) == expected[:3]
    assert numbers.max_answer_s == 50
    row = await harness.row(dialog)
    assert (row.first_answer_s, row.total_answer_s, row.answers, row.max_answer_s) == expected
    assert row.kpi_overdue == 0
