"""The values that recognise a client: phones in E.164, case-folded emails, channel identities.

Every phone and email is normalised before it is stored or looked up, so "+1 (650) 253-0000"
written in one chat and "650 253 0000" in another (with region US) are the same identity.
"""

import re

import phonenumbers
from phonenumbers import Leniency, NumberParseException, PhoneNumberFormat, PhoneNumberMatcher

# At most this many phones and emails are taken from one text: a message pasting a whole
# address book should not tie a hundred identities to one client.
MAX_FOUND = 10
# phonenumbers refuses longer input anyway; checking first keeps the refusal cheap.
_MAX_PHONE_TEXT = 64

_LOCAL_CHAR = r"[\w!#$%&'*+/=?^`{|}~-]"
# The top-level domain: letters, or its ASCII (punycode) form, as "xn--p1ai" for ".рф".
_TLD = r"(?:[^\W\d_]+|xn--[a-z0-9-]+)"
_EMAIL = re.compile(rf"^{_LOCAL_CHAR}+(?:\.{_LOCAL_CHAR}+)*@(?:[^\W_](?:[\w-]*[^\W_])?\.)+{_TLD}$")
# In free text: starts and ends on a word character, so "(ann@example.com)." finds the address.
_TEXT_LOCAL_CHAR = r"[\w%+-]"  # fewer than an address may hold: "mail=ann@x.org" is ann's
_EMAIL_IN_TEXT = re.compile(
    rf"(?<![\w.@%+-]){_TEXT_LOCAL_CHAR}+(?:\.{_TEXT_LOCAL_CHAR}+)*"
    r"@(?:[^\W_](?:[\w-]*[^\W_])?\.)+[^\W\d_]{2,}\b"
)


def _region(default_region: str) -> str | None:
    """A region phonenumbers knows, or None: then only numbers written with ``+`` parse."""
    region = default_region.strip().upper()
    return region if region in phonenumbers.SUPPORTED_REGIONS else None


def normalise_phone(text: str, default_region: str) -> str | None:
    """The number in E.164 (``+16502530000``), or None when it is not a valid number.

    A number written without a country code is read as one of ``default_region`` (ISO 3166
    alpha-2, e.g. ``US``).
    """
    if not text or len(text) > _MAX_PHONE_TEXT or "\x00" in text:
        return None
    try:
        number = phonenumbers.parse(text, _region(default_region))
    except NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.format_number(number, PhoneNumberFormat.E164)


def normalise_email(text: str) -> str | None:
    """The address stripped and case-folded, or None when it does not look like one.

    Basic validity only (one ``@``, a dotted domain, no spaces); whether it receives mail is
    not known here.
    """
    email = text.strip().casefold()
    if not email or len(email) > 320 or "\x00" in email:
        return None
    local, _, domain = email.rpartition("@")
    if len(local) > 64 or len(domain) > 255 or not _EMAIL.fullmatch(email):
        return None
    return email


def find_contacts(text: str, default_region: str) -> tuple[list[str], list[str]]:
    """The phones (E.164) and emails (case-folded) written in a message, each once, in the
    order they appear.

    Emails are taken out of the text first, so digits inside an address are not read as a
    phone number.
    """
    emails: list[str] = []
    for match in _EMAIL_IN_TEXT.finditer(text):
        email = normalise_email(match.group())
        if email is not None and email not in emails and len(emails) < MAX_FOUND:
            emails.append(email)
    rest = _EMAIL_IN_TEXT.sub(" ", text)
    phones: list[str] = []
    matcher = PhoneNumberMatcher(rest, _region(default_region), leniency=Leniency.VALID)
    for found in matcher:
        phone = phonenumbers.format_number(found.number, PhoneNumberFormat.E164)
        if phone not in phones:
            phones.append(phone)
            if len(phones) == MAX_FOUND:
                break
    return phones, emails


def channel_identity(channel_id: int, external_id: str) -> str:
    """The identity of a chat: its channel and the channel's own id for the client."""
    return f"{channel_id}:{external_id}"
