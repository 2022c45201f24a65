"""Sending email: through the SMTP server of ``OPENLINES_SMTP_URL``, or, without one, into
the folder of ``OPENLINES_MAIL_DIR`` as ``.eml`` files (what ``openlines dev`` does).

The URL is ``smtp://[user:password@]host[:port][?starttls=true]`` (port 25 by default), or
``smtps://...`` for TLS from the start (port 465).
"""

import asyncio
import smtplib
import ssl
import uuid
from datetime import UTC, datetime
from email.message import EmailMessage
from urllib.parse import parse_qs, unquote, urlsplit

from core.config import Settings

TIMEOUT_S = 30.0


class MailFailed(Exception):
    """The message was not handed over; ``reason`` holds no password."""


def configured(settings: Settings) -> bool:
    return settings.smtp_url is not None or settings.mail_dir is not None


async def send(message: EmailMessage, settings: Settings) -> None:
    """Hand ``message`` to the SMTP server, or write it into the mail folder."""
    if settings.smtp_url is not None:
        url = settings.smtp_url.get_secret_value()
        await asyncio.to_thread(_by_smtp, message, url)
    elif settings.mail_dir is not None:
        await asyncio.to_thread(_into_folder, message, settings)
    else:
        raise MailFailed("no OPENLINES_SMTP_URL or OPENLINES_MAIL_DIR is set")


def _by_smtp(message: EmailMessage, url: str) -> None:
    parts = urlsplit(url)
    secure = parts.scheme == "smtps"
    if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
        raise MailFailed("OPENLINES_SMTP_URL must be smtp://host[:port] or smtps://host[:port]")
    port = parts.port or (465 if secure else 25)
    starttls = parse_qs(parts.query).get("starttls", ["false"])[0].lower() in ("1", "true")
    context = ssl.create_default_context()
    try:
        if secure:
            client: smtplib.SMTP = smtplib.SMTP_SSL(
                parts.hostname, port, timeout=TIMEOUT_S, context=context
            )
        else:
            client = smtplib.SMTP(parts.hostname, port, timeout=TIMEOUT_S)
        with client:
            if starttls:
                client.starttls(context=context)
            if parts.username:
                client.login(unquote(parts.username), unquote(parts.password or ""))
            client.send_message(message)
    except (smtplib.SMTPException, OSError) as error:
        raise MailFailed(f"{parts.hostname}:{port}: {type(error).__name__}") from None


def _into_folder(message: EmailMessage, settings: Settings) -> None:
    assert settings.mail_dir is not None
    settings.mail_dir.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    path = settings.mail_dir / f"{stamp}-{uuid.uuid4().hex[:8]}.eml"
    path.write_bytes(bytes(message))
