"""Off-hours: a client who writes outside the line's working hours (in the line's time zone),
or while every operator is unavailable, is told so once per dialog; the dialog still waits
in the queue.

The test server's clock runs from the real now and cannot be set back, so each test builds
the line's working hours around the current moment; the daylight-saving test skips time
forward (months, if need be) to the zone's next change. ``tests/test_worktime_unit.py``
checks ``is_working_time`` on both sides of the changes too.
"""

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from temporalio.client import WorkflowHandle

from core.worktime import WEEKDAYS
from tests.workflows.harness import Harness

WELCOME = "Hi! This is Acme support."
OFF_HOURS = "We are closed right now; we will answer when we are back."


async def received(harness: Harness, dialog_id: int, expected: list[str]) -> None:
    """The client has got exactly ``expected`` (waiting up to 10 s for texts on their way)."""
    deadline = asyncio.get_running_loop().time() + 10.0
    while (texts := await harness.texts_received(dialog_id)) != expected:
        assert asyncio.get_running_loop().time() < deadline, texts
        await asyncio.sleep(0.02)


def far_from_utc(now: datetime) -> tuple[str, datetime]:
    """A zone where it is another day than in UTC, at least an hour from local midnight:
    Kiritimati (UTC+14) from 10:00 UTC, Pago Pago (UTC-11) before; neither has DST. Working
    hours read from the UTC clock instead of the zone's would get the day wrong."""
    zone = "Pacific/Kiritimati" if now.astimezone(UTC).hour >= 10 else "Pacific/Pago_Pago"
    local = now.astimezone(ZoneInfo(zone))
    assert local.date() != now.astimezone(UTC).date()
    return zone, local


def hours_around(zone: str, local: datetime) -> dict[str, Any]:
    """Working hours in ``zone`` that hold ``local`` (open on its weekday only, for the next
    hour at least) and not the same moment read in UTC."""
    return {
        "enabled": True,
        "timezone": zone,
        "from": f"{local.hour:02d}:00",
        "to": f"{local.hour + 2:02d}:00" if local.hour < 22 else "23:59",
        "days_off": [day for day in WEEKDAYS if day != WEEKDAYS[local.weekday()]],
        "holidays": [],
        "off_hours_text": OFF_HOURS,
    }


def holiday(local: datetime) -> dict[str, Any]:
    return {"holidays": [local.strftime("%m-%d")]}


async def test_a_message_on_a_holiday_in_the_lines_zone_gets_the_off_hours_text_once(
    harness: Harness,
):
    (a,) = await harness.operators(1)
    zone, local = far_from_utc(await harness.now())
    # Open around the clock every day but the holiday (a date of the zone, not of UTC).
    worktime = {"enabled": True, "timezone": zone, "from": "00:00", "to": "23:59"}
    worktime |= {"days_off": [], "off_hours_text": OFF_HOURS, **holiday(local)}
    settings = {"welcome": {"text": WELCOME}, "worktime": worktime}
    channel = await harness.line([a], settings, handover_after=3600)

    dialog = await harness.client_writes(channel, "chat-1")

    state = await harness.offered(dialog, [a])
    assert state.status == "queued"
    await received(harness, state.dialog_id, [WELCOME, OFF_HOURS])
    await harness.client_writes(channel, "chat-1", "Hello?")
    await harness.eventually(dialog, lambda s: s.client_messages == 2)
    await harness.accept(dialog, a)  # runs after the dialog has dealt with the second message
    assert await harness.texts_received(state.dialog_id) == [WELCOME, OFF_HOURS]


async def test_a_message_inside_working_hours_gets_no_off_hours_text(harness: Harness):
    zone, local = far_from_utc(await harness.now())
    settings = {"welcome": {"text": WELCOME}, "worktime": hours_around(zone, local)}
    channel = await harness.line([], settings, check_availability=False)

    dialog = await harness.client_writes(channel, "chat-1")

    state = await harness.eventually(dialog, lambda s: s.greeted)
    assert await harness.texts_received(state.dialog_id) == [WELCOME]


async def test_with_every_operator_unavailable_the_off_hours_text_goes_once(harness: Harness):
    (away,) = await harness.operators(1, presence="offline")
    settings = {"welcome": {"text": WELCOME}, "worktime": {"off_hours_text": OFF_HOURS}}
    channel = await harness.line([away], settings, check_availability=True, handover_after=3600)

    dialog = await harness.client_writes(channel, "chat-1")

    state = await harness.waiting(dialog)
    await received(harness, state.dialog_id, [WELCOME, OFF_HOURS])
    await harness.client_writes(channel, "chat-1", "Hello?")
    await harness.eventually(dialog, lambda s: s.client_messages == 2)
    await harness.operator_changes(away, presence="online")
    await harness.offered(dialog, [away])  # still in the queue: offered once someone is there
    await harness.accept(dialog, away)
    assert await harness.texts_received(state.dialog_id) == [WELCOME, OFF_HOURS]


async def test_after_an_operator_reply_in_working_hours_off_hours_are_told_again(
    harness: Harness,
):
    (a,) = await harness.operators(1)
    zone, local = far_from_utc(await harness.now())
    worktime = hours_around(zone, local) | holiday(local)
    channel = await harness.line([a], {"welcome": {"text": WELCOME}, "worktime": worktime})
    dialog = await harness.client_writes(channel, "chat-1")
    state = await harness.offered(dialog, [a])
    await received(harness, state.dialog_id, [WELCOME, OFF_HOURS])

    await harness.change_settings(channel.line_id, {"worktime": {"holidays": []}})  # open now
    await harness.reply(dialog, a)
    await harness.change_settings(channel.line_id, {"worktime": holiday(local)})  # closed again
    await harness.client_writes(channel, "chat-1", "Thanks! One more thing")

    await received(harness, state.dialog_id, [WELCOME, OFF_HOURS, OFF_HOURS])


async def test_an_operator_reply_outside_working_hours_does_not_repeat_the_off_hours_text(
    harness: Harness,
):
    (a,) = await harness.operators(1)
    zone, local = far_from_utc(await harness.now())
    worktime = hours_around(zone, local) | holiday(local)
    channel = await harness.line([a], {"welcome": {"text": WELCOME}, "worktime": worktime})
    dialog = await harness.client_writes(channel, "chat-1")
    state = await harness.offered(dialog, [a])
    await received(harness, state.dialog_id, [WELCOME, OFF_HOURS])
    await harness.reply(dialog, a)

    await harness.client_writes(channel, "chat-1", "Thanks! One more thing")

    await harness.eventually(dialog, lambda s: s.client_messages == 2)
    await harness.reply(dialog, a)  # runs after the dialog has dealt with the client's message
    assert await harness.texts_received(state.dialog_id) == [WELCOME, OFF_HOURS]


async def test_a_client_who_writes_again_after_working_hours_end_is_told(harness: Harness):
    zone, local = far_from_utc(await harness.now())
    settings = {"welcome": {"text": WELCOME}, "worktime": hours_around(zone, local)}
    channel = await harness.line([], settings, check_availability=False)
    dialog = await harness.client_writes(channel, "chat-1")
    state = await harness.eventually(dialog, lambda s: s.greeted)
    await received(harness, state.dialog_id, [WELCOME])

    await harness.change_settings(channel.line_id, {"worktime": holiday(local)})  # closed now
    await harness.client_writes(channel, "chat-1", "Hello?")

    await received(harness, state.dialog_id, [WELCOME, OFF_HOURS])


def next_offset_change(zone: ZoneInfo, after: datetime) -> datetime:
    """The first whole UTC hour, at least two days after ``after``, from which the zone's
    offset from UTC differs from the hour before (a daylight-saving change)."""
    at = (after + timedelta(days=2)).astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    offset = at.astimezone(zone).utcoffset()
    for _ in range(400 * 24):
        at += timedelta(hours=1)
        if at.astimezone(zone).utcoffset() != offset:
            return at
    raise AssertionError(f"no daylight-saving change in {zone} within 400 days")


def the_hour_of(local: datetime) -> dict[str, Any]:
    """Working hours, every day, for the wall-clock hour that holds ``local``."""
    return {
        "enabled": True,
        "timezone": str(local.tzinfo),
        "from": f"{local.hour:02d}:00",
        "to": f"{local.hour + 1:02d}:00",
        "days_off": [],
        "holidays": [],
        "off_hours_text": OFF_HOURS,
    }


async def told(harness: Harness, dialog: WorkflowHandle[Any, Any]) -> list[str]:
    """The texts the client of a new dialog got once it was greeted; the dialog still waits
    in the queue, in or out of working hours."""
    state = await harness.waiting(dialog)
    state = await harness.eventually(dialog, lambda s: s.greeted)
    assert (state.status, state.offered_to, state.close_reason) == ("queued", [], None)
    return await harness.texts_received(state.dialog_id)


async def test_off_hours_follow_the_wall_clock_across_a_daylight_saving_change(
    harness: Harness,
):
    zone = ZoneInfo("Europe/Berlin")
    change = next_offset_change(zone, await harness.now())
    after = change + timedelta(minutes=30)  # just after the change
    before = after - timedelta(days=1)  # the same UTC time of day, under the old offset
    local_before, local_after = before.astimezone(zone), after.astimezone(zone)
    assert before.astimezone(UTC).time() == after.astimezone(UTC).time()
    assert abs(local_after.hour - local_before.hour) == 1  # the wall clock moved an hour
    assert local_before.minute == local_after.minute == 30
    # One line works the wall-clock hour that holds ``before``, the other the one that holds
    # ``after``: the same UTC time of day is inside one line's hours before the change and
    # inside the other's after it.
    welcome: dict[str, Any] = {"welcome": {"text": WELCOME}}
    old_hour = await harness.line(
        [], {**welcome, "worktime": the_hour_of(local_before)}, check_availability=False
    )
    new_hour = await harness.line(
        [], {**welcome, "worktime": the_hour_of(local_after)}, check_availability=False
    )

    await harness.sleep((before - await harness.now()).total_seconds())
    old_before = await harness.client_writes(old_hour, "chat-1")
    new_before = await harness.client_writes(new_hour, "chat-1")
    texts_before = await told(harness, old_before), await told(harness, new_before)
    assert before <= await harness.now() < before + timedelta(minutes=5)

    await harness.sleep((after - await harness.now()).total_seconds())
    old_after = await harness.client_writes(old_hour, "chat-2")
    new_after = await harness.client_writes(new_hour, "chat-2")
    texts_after = await told(harness, old_after), await told(harness, new_after)
    assert after <= await harness.now() < after + timedelta(minutes=5)

    assert texts_before == ([WELCOME], [WELCOME, OFF_HOURS])  # (old hour's line, new hour's)
    assert texts_after == ([WELCOME, OFF_HOURS], [WELCOME])
