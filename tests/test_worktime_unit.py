"""Working hours are read on the wall clock of the line's zone, daylight saving included.

This is the proof for DST changes: the workflow tests run on the test server's clock, which
starts at the real now and can only move forward, so they cannot reach a DST change.
"""

from datetime import UTC, datetime
from typing import Any

import pytest

from core.line_settings import Worktime
from core.worktime import is_working_time


def hours(zone: str, **fields: Any) -> Worktime:
    """09:00-18:00 in ``zone``, every day open unless ``fields`` say otherwise."""
    return Worktime.model_validate(
        {
            "enabled": True,
            "timezone": zone,
            "from": "09:00",
            "to": "18:00",
            "days_off": [],
            **fields,
        }
    )


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.mark.parametrize(
    ("zone", "at", "local", "open_"),
    [
        # New York, spring forward on Sun 2026-03-08: EST (UTC-5) -> EDT (UTC-4).
        ("America/New_York", "2026-03-06T13:30", "08:30 EST", False),
        ("America/New_York", "2026-03-06T14:30", "09:30 EST", True),
        ("America/New_York", "2026-03-06T22:30", "17:30 EST", True),
        ("America/New_York", "2026-03-08T13:30", "09:30 EDT, the day of the change", True),
        ("America/New_York", "2026-03-09T13:30", "09:30 EDT", True),
        ("America/New_York", "2026-03-09T22:30", "18:30 EDT", False),
        # New York, fall back on Sun 2026-11-01: EDT -> EST.
        ("America/New_York", "2026-10-30T13:30", "09:30 EDT", True),
        ("America/New_York", "2026-10-30T21:30", "17:30 EDT", True),
        ("America/New_York", "2026-11-01T13:30", "08:30 EST, the day of the change", False),
        ("America/New_York", "2026-11-02T13:30", "08:30 EST", False),
        ("America/New_York", "2026-11-02T22:30", "17:30 EST", True),
        # Berlin, spring forward on Sun 2026-03-29: CET (UTC+1) -> CEST (UTC+2).
        ("Europe/Berlin", "2026-03-27T07:30", "08:30 CET", False),
        ("Europe/Berlin", "2026-03-27T16:30", "17:30 CET", True),
        ("Europe/Berlin", "2026-03-30T07:30", "09:30 CEST", True),
        ("Europe/Berlin", "2026-03-30T16:30", "18:30 CEST", False),
        # Berlin, fall back on Sun 2026-10-25: CEST -> CET.
        ("Europe/Berlin", "2026-10-23T07:30", "09:30 CEST", True),
        ("Europe/Berlin", "2026-10-23T16:30", "18:30 CEST", False),
        ("Europe/Berlin", "2026-10-26T07:30", "08:30 CET", False),
        ("Europe/Berlin", "2026-10-26T16:30", "17:30 CET", True),
    ],
)
def test_the_same_utc_hour_is_inside_or_outside_hours_depending_on_daylight_saving(
    zone: str, at: str, local: str, open_: bool
):
    assert is_working_time(hours(zone), utc(at)) is open_, f"{at}Z is {local} in {zone}"


def test_days_off_and_holidays_are_days_of_the_lines_zone():
    # Sat 2026-12-26 03:00 UTC is Fri 2026-12-25 22:00 in New York.
    at = utc("2026-12-26T03:00")
    evening = {"from": "20:00", "to": "23:00"}
    assert is_working_time(hours("America/New_York", **evening, days_off=["sat"]), at)
    assert not is_working_time(hours("America/New_York", **evening, days_off=["fri"]), at)
    assert is_working_time(hours("America/New_York", **evening, holidays=["12-26"]), at)
    assert not is_working_time(hours("America/New_York", **evening, holidays=["12-25"]), at)


def test_to_is_the_first_closed_minute():
    worktime = hours("UTC")
    assert is_working_time(worktime, utc("2026-05-04T09:00"))
    assert is_working_time(worktime, utc("2026-05-04T17:59:59"))
    assert not is_working_time(worktime, utc("2026-05-04T18:00"))
    assert not is_working_time(worktime, utc("2026-05-04T08:59:59"))


def test_with_working_hours_off_it_is_always_working_time():
    closed_all_week = {"days_off": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]}
    worktime = hours("UTC", **closed_all_week).model_copy(update={"enabled": False})
    assert is_working_time(worktime, utc("2026-05-04T03:00"))
