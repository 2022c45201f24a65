"""What schemathesis must know of openlines' schema beyond JSON Schema, loaded by
``SCHEMATHESIS_HOOKS=tests.schemathesis_hooks`` (tests/test_openapi_conformance.py).

Two things only: the ``phone`` string format (documented in the schema), and the one
settings rule that compares two values (spec/settings.md: ``worktime.to`` later than
``worktime.from``). Anything else the API refuses must be in the schema itself. (The test's
fake Telegram takes any well-shaped bot token; the real one refuses made-up tokens.)
"""

from typing import Any

import phonenumbers
import schemathesis
from hypothesis import strategies as st

LINE_BODIES = {("POST", "/v1/lines"), ("PATCH", "/v1/lines/{line_id}")}
DEFAULT_HOURS = ("09:00", "18:00")


def _phone_texts() -> list[str]:
    """Valid numbers of every region, written as people write them (+1 202-555-..., E.164)."""
    texts: list[str] = []
    for region in sorted(phonenumbers.SUPPORTED_REGIONS):
        number = phonenumbers.example_number(region)
        if number is None:
            continue
        for style in (
            phonenumbers.PhoneNumberFormat.E164,
            phonenumbers.PhoneNumberFormat.INTERNATIONAL,
        ):
            texts.append(phonenumbers.format_number(number, style))
    return texts


schemathesis.openapi.format("phone", st.sampled_from(_phone_texts()))


@schemathesis.hook
def map_body(ctx: Any, body: Any) -> Any:
    operation = (ctx.operation.method.upper(), ctx.operation.path)
    if not isinstance(body, dict):
        return body
    if operation in LINE_BODIES:
        return _hours_in_order(body)
    return body


def _hours_in_order(body: dict[str, Any]) -> dict[str, Any]:
    """A line's working hours end after they start."""
    hours = body.get("worktime")
    if not isinstance(hours, dict) or not ({"from", "to"} & hours.keys()):
        return body
    start, end = hours.get("from", DEFAULT_HOURS[0]), hours.get("to", DEFAULT_HOURS[1])
    if not end > start:
        start, end = DEFAULT_HOURS
    # Both given, so a PATCH does not meet the line's stored other half.
    return {**body, "worktime": {**hours, "from": start, "to": end}}
