"""Working hours of a line, in the line's time zone.

The zone database does the daylight-saving arithmetic: "09:00" is nine o'clock on the wall
clock of that day, whatever its offset from UTC.
"""

from datetime import datetime
from zoneinfo import ZoneInfo

from core.line_settings import Worktime

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def is_working_time(worktime: Worktime, at: datetime) -> bool:
    """True when ``at`` falls inside the line's working hours (always, when they are off)."""
    if not worktime.enabled:
        return True
    local = at.astimezone(ZoneInfo(worktime.timezone))
    if WEEKDAYS[local.weekday()] in worktime.days_off:
        return False
    if local.strftime("%m-%d") in worktime.holidays:
        return False
    return worktime.from_ <= local.strftime("%H:%M") < worktime.to
