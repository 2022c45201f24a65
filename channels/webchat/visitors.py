"""Who a web chat visitor is: a token the server signs, kept by the visitor's browser.

A visitor is anonymous (``v:<random>``) or, when the site vouches for them, identified
(``id:<identifier>``): the site passes ``identifier`` and ``identifier_hash``, the
HMAC-SHA256 of the identifier keyed with the channel secret, computed on the site's server.
The subject is the chat's ``external_id``, so a reload with the same token keeps the
conversation, and another identity is another chat.

A token is ``<subject, base64url>.<HMAC-SHA256 of "webchat:<channel id>:<subject>">``, keyed
with the channel secret: any of the channel's live secrets verifies it, so a rotation keeps
visitors during its grace.
"""

import base64
import binascii
import hashlib
import hmac
import secrets

MAX_IDENTIFIER = 200


def anonymous_subject() -> str:
    return f"v:{secrets.token_urlsafe(16)}"


def identified_subject(identifier: str) -> str:
    return f"id:{identifier}"


def identity_hash(secret: str, identifier: str) -> str:
    """What the site computes for ``identifier``: hex HMAC-SHA256 keyed with the secret."""
    return hmac.new(secret.encode(), identifier.encode(), hashlib.sha256).hexdigest()


def identity_holds(secrets_: list[str], identifier: str, given_hash: str) -> bool:
    """The site's hash matches one of the channel's live secrets."""
    given = given_hash.strip().lower().encode()
    return any(hmac.compare_digest(identity_hash(s, identifier).encode(), given) for s in secrets_)


def _signature(secret: str, channel_id: int, subject: str) -> str:
    signed = f"webchat:{channel_id}:{subject}".encode()
    return hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


def token_for(secret: str, channel_id: int, subject: str) -> str:
    encoded = base64.urlsafe_b64encode(subject.encode()).decode().rstrip("=")
    return f"{encoded}.{_signature(secret, channel_id, subject)}"


def subject_of(token: str, secrets_: list[str], channel_id: int) -> str | None:
    """The visitor a token names, if one of the secrets signed it for this channel."""
    encoded, _, signature = token.partition(".")
    try:
        subject = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    if not subject.startswith(("v:", "id:")):
        return None
    expected = [_signature(s, channel_id, subject).encode() for s in secrets_]
    if not any(hmac.compare_digest(e, signature.encode()) for e in expected):
        return None
    return subject
