"""Signing and verifying webhook requests: the round trip and each way verification fails."""

import hashlib
import hmac
from datetime import UTC, datetime, timedelta

import pytest

from channels.webhook.signing import (
    MAX_SKEW,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    BadSignature,
    live_secrets,
    sign,
    signed_headers,
    verify,
)

SECRET = "channel-secret-0123456789"
OLD_SECRET = "channel-secret-before-rotation"
BODY = b'{"chat":{"external_id":"c1"},"message":{"external_id":"m1","text":"Hi \xc3\xa9"}}'
NOW = datetime(2025, 3, 1, 12, 0, 0, tzinfo=UTC)


def failure(headers: dict[str, str], body: bytes = BODY, secrets: list[str] | None = None) -> str:
    """The reason ``verify`` refuses with, at ``NOW``."""
    with pytest.raises(BadSignature) as raised:
        verify(headers, body, [SECRET] if secrets is None else secrets, NOW)
    assert str(raised.value) == raised.value.reason
    return raised.value.reason


def test_sign_is_hmac_sha256_of_timestamp_dot_body() -> None:
    expected = hmac.new(SECRET.encode(), b"1700000000." + BODY, hashlib.sha256).hexdigest()
    assert sign(SECRET, 1700000000, BODY) == f"sha256={expected}"


def test_round_trip() -> None:
    headers = signed_headers(SECRET, BODY, NOW)
    assert headers == {
        TIMESTAMP_HEADER: str(int(NOW.timestamp())),
        SIGNATURE_HEADER: sign(SECRET, int(NOW.timestamp()), BODY),
    }
    verify(headers, BODY, [SECRET], NOW)


def test_header_names_in_any_case() -> None:
    headers = {k.lower(): v for k, v in signed_headers(SECRET, BODY, NOW).items()}
    verify(headers, BODY, [SECRET], NOW)


@pytest.mark.parametrize("header", [TIMESTAMP_HEADER, SIGNATURE_HEADER])
def test_missing_header(header: str) -> None:
    headers = signed_headers(SECRET, BODY, NOW)
    del headers[header]
    assert failure(headers) == f"the {header} header is missing"


def test_no_headers_at_all() -> None:
    assert "missing" in failure({})


@pytest.mark.parametrize("timestamp", ["", "abc", "1740830400.5", "-1740830400", "1_740_830_400"])
def test_timestamp_not_an_integer(timestamp: str) -> None:
    headers = signed_headers(SECRET, BODY, NOW) | {TIMESTAMP_HEADER: timestamp}
    assert "not an integer" in failure(headers)


@pytest.mark.parametrize(
    "signature", ["", "abc", "sha1=" + "0" * 64, "sha256=" + "0" * 63, "sha256=" + "g" * 64]
)
def test_signature_malformed(signature: str) -> None:
    headers = signed_headers(SECRET, BODY, NOW) | {SIGNATURE_HEADER: signature}
    assert "malformed" in failure(headers)


@pytest.mark.parametrize(
    ("offset", "word"), [(-(MAX_SKEW + 1), "too old"), (MAX_SKEW + 1, "too new")]
)
def test_timestamp_skew_over_five_minutes(offset: int, word: str) -> None:
    assert MAX_SKEW == 300
    headers = signed_headers(SECRET, BODY, NOW + timedelta(seconds=offset))
    assert word in failure(headers)


@pytest.mark.parametrize("offset", [-MAX_SKEW, MAX_SKEW])
def test_timestamp_skew_of_five_minutes_is_fine(offset: int) -> None:
    verify(signed_headers(SECRET, BODY, NOW + timedelta(seconds=offset)), BODY, [SECRET], NOW)


def test_wrong_secret() -> None:
    headers = signed_headers("some-other-secret", BODY, NOW)
    assert failure(headers) == "the signature does not match the body and timestamp"


def test_tampered_body() -> None:
    headers = signed_headers(SECRET, BODY, NOW)
    assert "does not match" in failure(headers, BODY.replace(b"Hi", b"Ho"))


def test_signature_over_another_timestamp() -> None:
    headers = signed_headers(SECRET, BODY, NOW)
    headers[TIMESTAMP_HEADER] = str(int(headers[TIMESTAMP_HEADER]) + 1)
    assert "does not match" in failure(headers)


def test_old_secret_verifies_while_listed() -> None:
    headers = signed_headers(OLD_SECRET, BODY, NOW)
    verify(headers, BODY, [SECRET, OLD_SECRET], NOW)
    assert "does not match" in failure(headers, secrets=[SECRET])


def test_uppercase_hex_verifies() -> None:
    headers = signed_headers(SECRET, BODY, NOW)
    prefix, digest = headers[SIGNATURE_HEADER].split("=")
    verify(headers | {SIGNATURE_HEADER: f"{prefix}={digest.upper()}"}, BODY, [SECRET], NOW)


def test_empty_secret_never_verifies() -> None:
    headers = signed_headers("", BODY, NOW)
    assert "does not match" in failure(headers, secrets=[""])
    assert "does not match" in failure(headers, secrets=[])


def test_naive_now_refused() -> None:
    with pytest.raises(ValueError, match="aware"):
        signed_headers(SECRET, BODY, datetime(2025, 3, 1, 12))


def test_two_signatures_verify_when_either_matches() -> None:
    headers = signed_headers([SECRET, OLD_SECRET], BODY, NOW)
    assert headers[SIGNATURE_HEADER].count(",") == 1
    verify(headers, BODY, [SECRET], NOW)
    verify(headers, BODY, [OLD_SECRET], NOW)
    assert failure(headers, secrets=["a-third-secret-0123"]) == (
        "the signature does not match the body and timestamp"
    )


def test_three_signatures_are_malformed() -> None:
    headers = signed_headers([SECRET, OLD_SECRET, "third-secret-01234"], BODY, NOW)
    assert "malformed" in failure(headers)


def test_the_previous_secret_is_live_for_its_grace_only() -> None:
    until = NOW + timedelta(hours=1)
    assert live_secrets(SECRET, OLD_SECRET, until, NOW) == [SECRET, OLD_SECRET]
    assert live_secrets(SECRET, OLD_SECRET, until, until) == [SECRET]
    assert live_secrets(SECRET, None, None, NOW) == [SECRET]
