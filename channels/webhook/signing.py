"""Signing webhook requests: HMAC-SHA256 of ``"<timestamp>.<raw body>"`` with the secret.

The same scheme signs every way: openlines signs what it POSTs to a webhook channel's
receiver and to event subscribers, and a webhook channel's inbound calls must come signed.
The timestamp is part of what is signed, so a captured request cannot be replayed once it is
more than ``MAX_SKEW`` seconds old.

Rotation: for ``ROTATION_GRACE`` after a secret is rotated, both secrets are live. Inbound,
either verifies; outbound, the signature header carries one signature per live secret,
comma-separated (``sha256=<new>,sha256=<old>``), so a receiver still holding the old secret
keeps verifying until it switches. A receiver accepts the request when any one matches.
"""

import hashlib
import hmac
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta

TIMESTAMP_HEADER = "X-Openlines-Timestamp"
SIGNATURE_HEADER = "X-Openlines-Signature"
MAX_SKEW = 300
"""Seconds the timestamp may be off from our clock, either way."""
PREFIX = "sha256="
ROTATION_GRACE = timedelta(hours=24)
"""How long a rotated-out secret keeps signing and verifying."""

# ASCII digits only: int() would also take signs, spaces, underscores and non-ASCII digits.
_TIMESTAMP = re.compile(r"[0-9]{1,15}")
_HEX_DIGEST = re.compile(r"[0-9a-fA-F]{64}")


class BadSignature(Exception):
    """A request whose signature does not verify; ``reason`` says why, in English."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _digest(secret: str, timestamp: str, body: bytes) -> bytes:
    """The raw HMAC over the timestamp as sent in its header, a dot and the body."""
    return hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).digest()


def _unix_seconds(now: datetime) -> int:
    """Whole unix seconds; a naive ``now`` is refused (it would be read as local time)."""
    if now.tzinfo is None:
        raise ValueError("now must be an aware datetime")
    return int(now.timestamp())


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The ``X-Openlines-Signature`` value for a body sent at ``timestamp`` (unix seconds)."""
    return PREFIX + _digest(secret, str(timestamp), body).hex()


def live_secrets(
    current: str, previous: str | None, previous_until: datetime | None, now: datetime
) -> list[str]:
    """The secrets that sign and verify now: the current one and, during its grace after a
    rotation, the previous one."""
    if previous and previous_until is not None and previous_until.replace(tzinfo=UTC) > now:
        return [current, previous]
    return [current]


def signed_headers(secret: str | Sequence[str], body: bytes, now: datetime) -> dict[str, str]:
    """The timestamp and signature headers for a body sent at ``now``: one signature per
    secret given (the live ones, during a rotation's grace)."""
    timestamp = _unix_seconds(now)
    secrets = [secret] if isinstance(secret, str) else list(secret)
    signatures = ",".join(sign(s, timestamp, body) for s in secrets)
    return {TIMESTAMP_HEADER: str(timestamp), SIGNATURE_HEADER: signatures}


def _header(headers: Mapping[str, str], name: str) -> str | None:
    """A header by name in any case (a plain dict is not case-insensitive like HTTP)."""
    value = headers.get(name)
    if value is not None:
        return value
    wanted = name.lower()
    return next((v for k, v in headers.items() if k.lower() == wanted), None)


def verify(headers: Mapping[str, str], body: bytes, secrets: Sequence[str], now: datetime) -> None:
    """Raise ``BadSignature`` unless the headers sign ``body`` with one of ``secrets``.

    ``secrets`` holds every secret that verifies now: the current one and, for a day after
    a rotation, the previous one. Empty secrets are skipped: anyone could sign with one.
    """
    timestamp = _header(headers, TIMESTAMP_HEADER)
    signature = _header(headers, SIGNATURE_HEADER)
    if timestamp is None:
        raise BadSignature(f"the {TIMESTAMP_HEADER} header is missing")
    if signature is None:
        raise BadSignature(f"the {SIGNATURE_HEADER} header is missing")
    timestamp = timestamp.strip()
    if not _TIMESTAMP.fullmatch(timestamp):
        raise BadSignature(f"the {TIMESTAMP_HEADER} header is not an integer of unix seconds")
    parts = [part.strip() for part in signature.split(",")]
    if len(parts) > 2 or not all(
        p.startswith(PREFIX) and _HEX_DIGEST.fullmatch(p.removeprefix(PREFIX)) for p in parts
    ):
        raise BadSignature(
            f"the {SIGNATURE_HEADER} header is malformed: expected 'sha256=' and 64 hex digits"
            " (two, comma-separated, at most)"
        )
    skew = int(timestamp) - _unix_seconds(now)
    if skew < -MAX_SKEW:
        raise BadSignature(f"the timestamp is too old: {-skew} s behind ours (at most {MAX_SKEW})")
    if skew > MAX_SKEW:
        raise BadSignature(f"the timestamp is too new: {skew} s ahead of ours (at most {MAX_SKEW})")
    # Every pair is tried, so the time taken does not tell which one matched.
    matched = False
    for part in parts:
        given = bytes.fromhex(part.removeprefix(PREFIX))
        for secret in secrets:
            if secret and hmac.compare_digest(given, _digest(secret, timestamp, body)):
                matched = True
    if not matched:
        raise BadSignature("the signature does not match the body and timestamp")
