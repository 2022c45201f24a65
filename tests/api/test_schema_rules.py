"""The OpenAPI schema's rules are the ones the code enforces: what a pattern or format admits
is accepted, and constraints are written in JSON Schema's own words, so generators read them.

The end-to-end proof is tests/test_openapi_conformance.py; these check each rule alone, over
many more values than a schemathesis run reaches.
"""

import re
from datetime import date, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.specs.openapi.formats import email_values

from api.app import create_app
from api.routes.webhooks import URL_PATTERN, _http_url
from core.config import Settings
from core.crm.identities import normalise_email
from core.line_settings import _MONTH_DAY

MANY = settings(max_examples=500, suppress_health_check=list(HealthCheck), deadline=None)


def keys_anywhere(node: Any) -> set[str]:
    if isinstance(node, dict):
        return set(node) | {key for value in node.values() for key in keys_anywhere(value)}
    if isinstance(node, list):
        return {key for item in node for key in keys_anywhere(item)}
    return set()


def test_constraints_are_written_as_json_schema_keywords():
    """pydantic writes a limit it cannot place as its own name (``ge``), which no generator or
    validator reads: the API would refuse what the schema seems to allow."""
    schema = create_app(Settings()).openapi()
    assert keys_anywhere(schema) & {"ge", "gt", "le", "lt", "min_length", "max_length"} == set()


@MANY
@given(st.from_regex(URL_PATTERN, fullmatch=True).filter(lambda url: len(url) <= 2048))
def test_every_webhook_url_the_pattern_admits_is_accepted(url: str):
    assert _http_url(url) == url


@pytest.mark.parametrize(
    "url",
    ["https://hooks.example/a b", "https://hooks.example/\x07", "https://h\u00e9.example/",
     "https://hooks.example:65536/", "ftp://hooks.example/", "https://[::1/"],
)  # fmt: skip
def test_the_webhook_url_pattern_refuses_what_the_code_refuses(url: str):
    assert re.fullmatch(URL_PATTERN, url) is None


@MANY
@given(st.one_of(st.emails(), email_values()))
def test_every_address_the_email_format_admits_is_a_contact_email(address: str):
    """The schema says ``format: email``; generators (schemathesis, hypothesis) draw these."""
    assert normalise_email(address) is not None


def test_the_holiday_pattern_admits_exactly_the_days_of_a_leap_year():
    days, day = set(), date(2000, 1, 1)
    while day.year == 2000:
        days.add(day.strftime("%m-%d"))
        day += timedelta(days=1)
    every_mm_dd = {f"{month:02d}-{day:02d}" for month in range(100) for day in range(100)}
    assert {text for text in every_mm_dd if re.fullmatch(_MONTH_DAY, text)} == days


def test_a_line_patch_requires_nothing_of_a_group_but_of_a_lists_items():
    """A PATCH merges settings groups field by field (a group's required fields may be left
    out) and replaces lists and maps whole (their items are complete)."""
    schemas = create_app(Settings()).openapi()["components"]["schemas"]
    queue = schemas["QueuePatch"]["properties"]

    assert "required" not in schemas["LineSettingsPatch"]
    assert queue["hidden_identity"]["$ref"].endswith("/DisplayIdentityPatch")
    assert "required" not in schemas["DisplayIdentityPatch"]
    override = queue["operator_overrides"]["patternProperties"]["^[1-9][0-9]*$"]
    assert override["$ref"].endswith("/DisplayIdentity")
    assert schemas["DisplayIdentity"]["required"] == ["name"]
