"""What schemathesis must know of openlines' schema beyond JSON Schema, loaded by
``SCHEMATHESIS_HOOKS=tests.schemathesis_hooks`` (tests/test_openapi_conformance.py).

Three things only: the ``phone`` string format (documented in the schema), the one settings
rule that compares two values (spec/settings.md: ``worktime.to`` later than ``worktime.from``),
and the bot token the test's fake Telegram accepts (the real one refuses made-up tokens).
Anything else the API refuses must be in the schema itself.
"""

from typing import Any

import phonenumbers
import schemathesis
from hypothesis import strategies as st

from channels.telegram.bot_api import TOKEN_SHAPE
from tests.channels.telegram_fake import TOKEN

LINE_BODIES = {("POST", "/v1/lines"), ("PATCH", "/v1/lines/{line_id}")}
NEW_CHANNEL = ("POST", "/v1/lines/{line_id}/channels")
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
    if operation == NEW_CHANNEL:
        return _token_telegram_knows(body)
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


def _token_telegram_knows(body: dict[str, Any]) -> dict[str, Any]:
    """A well-formed bot token becomes the one the fake accepts; a malformed one stays."""
    config = body.get("config")
    if not isinstance(config, dict):
        return body
    token = config.get("bot_token")
    if not isinstance(token, str) or not TOKEN_SHAPE.fullmatch(token):
        return body
    return {**body, "config": {**config, "bot_token": TOKEN}}
