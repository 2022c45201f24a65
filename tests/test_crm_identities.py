"""Identity values: phones to E.164, emails case-folded, both picked out of message text."""

import pytest

from core.crm.identities import channel_identity, find_contacts, normalise_email, normalise_phone


@pytest.mark.parametrize(
    ("text", "region", "expected"),
    [
        ("+1 650 253 0000", "US", "+16502530000"),
        ("(650) 253-0000", "US", "+16502530000"),
        ("650.253.0000", "us", "+16502530000"),  # the region in any case
        ("+44 20 7946 0018", "US", "+442079460018"),  # a country code wins over the region
        ("020 7946 0018", "GB", "+442079460018"),
        ("8 (800) 555-35-35", "RU", "+78005553535"),
        ("+7 800 555 35 35", "", "+78005553535"),
    ],
)
def test_valid_phones_become_e164(text: str, region: str, expected: str):
    assert normalise_phone(text, region) == expected


@pytest.mark.parametrize(
    ("text", "region"),
    [
        ("650 253 0000", ""),  # no country code and no region: nothing to read it by
        ("650 253 0000", "XX"),  # not a region
        ("020 7946 0018", "US"),  # a London number read as American is not valid
        ("12345", "US"),
        ("+1 555", "US"),
        ("call me", "US"),
        ("", "US"),
        ("+1 650 253 0000" + " " * 100, "US"),  # too long to be a phone field
        ("+1650\x002530000", "US"),
    ],
)
def test_invalid_phones_are_none(text: str, region: str):
    assert normalise_phone(text, region) is None


def test_emails_are_stripped_and_case_folded():
    assert normalise_email("  ANN@Example.COM ") == "ann@example.com"
    assert normalise_email("Ann.Lee+support@mail.example.org") == "ann.lee+support@mail.example.org"


@pytest.mark.parametrize(
    "text",
    [
        "",
        "ann",
        "ann@example",
        "ann@@example.com",
        "ann example@example.com",
        ".ann@example.com",
        "ann..lee@example.com",
        "ann@-example.com",
        "ann@example.com.",
        "ann@example.c0m",
        "a" * 65 + "@example.com",
    ],
)
def test_invalid_emails_are_none(text: str):
    assert normalise_email(text) is None


def test_phones_and_emails_are_found_in_text():
    phones, emails = find_contacts("call me at +1 650 253 0000 or ANN@Example.com", "US")
    assert phones == ["+16502530000"]
    assert emails == ["ann@example.com"]


def test_found_values_are_normalised_once_each_in_order():
    text = (
        "Mail bob@example.org (or Ann@Example.com). My numbers: 650-253-0000, "
        "+44 20 7946 0018 and again (650) 253 0000; ann@example.com, mail=x@y.io."
    )
    phones, emails = find_contacts(text, "US")
    assert phones == ["+16502530000", "+442079460018"]
    assert emails == ["bob@example.org", "ann@example.com", "x@y.io"]


def test_digits_inside_an_email_are_not_a_phone_and_plain_text_has_neither():
    assert find_contacts("write to 16502530000@example.com", "US") == (
        [],
        ["16502530000@example.com"],
    )
    assert find_contacts("order 12345 arrived on 2024-05-01, thanks!", "US") == ([], [])
    assert find_contacts("", "US") == ([], [])


def test_the_region_reads_local_numbers_in_text():
    assert find_contacts("ring 020 7946 0018", "GB") == (["+442079460018"], [])
    assert find_contacts("ring 020 7946 0018", "US") == ([], [])
    assert find_contacts("ring +44 20 7946 0018", "") == (["+442079460018"], [])


def test_channel_identity_names_channel_and_client():
    assert channel_identity(7, "tg-5551") == "7:tg-5551"
    assert channel_identity(7, "a:b") != channel_identity(7, "a") != channel_identity(8, "a:b")
