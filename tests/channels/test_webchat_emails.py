"""Emails to web chat visitors who left their address, through a real local SMTP server
(aiosmtpd): unread replies after the delay, nothing for what the widget showed, the
transcript when the dialog closes, words in the line's language, a refused send tried again,
and the dev folder instead of a server."""

from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage as Email
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from fastapi import FastAPI
from httpx import AsyncClient

from channels.webchat.emails import sweep
from core.config import Settings
from core.local_http import free_port
from core.models import Dialog, Message
from tests.api.test_webchat import CONFIG, Widget, connect, ok

LATER = timedelta(seconds=121)  # past the default 120 s a reply waits unread


class Mailbox:
    """What the SMTP server received."""

    def __init__(self) -> None:
        self.emails: list[Email] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.emails.append(parsed(envelope.content))
        return "250 OK"


@pytest.fixture
def smtp() -> Iterator[tuple[Mailbox, str]]:
    box = Mailbox()
    port = free_port()
    controller = Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    yield box, f"smtp://127.0.0.1:{port}"
    controller.stop()


@pytest.fixture
async def visitor(app: FastAPI, admin: AsyncClient) -> AsyncIterator[tuple[Widget, int]]:
    """A visitor who left their email in the pre-chat form and wrote; their dialog's id."""
    channel = await connect(admin, {**CONFIG, "prechat_form": True})
    widget = Widget(app, channel)
    await widget.open()
    written = ok(await widget.write("Where is my order?", "c-1", email="Olga@Example.com"), 202)
    yield widget, written["dialog_id"]


async def reply(app: FastAPI, dialog_id: int, text: str) -> int:
    """An operator's reply as the reply activity leaves it on a web chat: stored, ``sent``."""
    async with app.state.sessions() as session:
        dialog = await session.get(Dialog, dialog_id)
        assert dialog is not None
        message = Message(
            chat_id=dialog.chat_id, dialog_id=dialog_id, author="operator", text=text,
            delivery_status="sent",
        )  # fmt: skip
        session.add(message)
        await session.commit()
        return message.id


async def close(app: FastAPI, dialog_id: int) -> None:
    async with app.state.sessions() as session:
        dialog = await session.get(Dialog, dialog_id)
        assert dialog is not None
        dialog.status = "closed"
        await session.commit()


def settings_for(app: FastAPI, **mail: Any) -> Settings:
    return Settings(database_url=app.state.settings.database_url, **mail)


def parsed(raw: bytes) -> Email:
    email = message_from_bytes(raw, policy=policy.default)
    assert isinstance(email, Email)
    return email


def body_of(email: Email) -> str:
    text: str = email.get_content()
    return text


async def test_an_unread_reply_is_emailed_after_the_delay_once(
    app: FastAPI, visitor: tuple[Widget, int], smtp: tuple[Mailbox, str]
):
    _, dialog_id = visitor
    box, url = smtp
    settings = settings_for(app, smtp_url=url)
    await reply(app, dialog_id, "It ships today.")
    now = datetime.now(UTC)

    too_soon = await sweep(app.state.sessions, settings, now)
    sent = await sweep(app.state.sessions, settings, now + LATER)
    again = await sweep(app.state.sessions, settings, now + 2 * LATER)

    assert (too_soon, sent, again) == (0, 1, 0)
    (email,) = box.emails
    assert (email["To"], email["Subject"]) == ("olga@example.com", "New reply from Shop")
    assert "It ships today." in body_of(email)


async def test_a_reply_the_widget_showed_is_not_emailed(
    app: FastAPI, visitor: tuple[Widget, int], smtp: tuple[Mailbox, str]
):
    widget, dialog_id = visitor
    box, url = smtp
    await reply(app, dialog_id, "It ships today.")
    ok(await widget.read())  # the visitor is on the page: the widget shows it

    sent = await sweep(
        app.state.sessions, settings_for(app, smtp_url=url), datetime.now(UTC) + LATER
    )

    assert (sent, box.emails) == (0, [])


async def test_a_closed_dialog_sends_its_transcript_in_the_lines_language(
    app: FastAPI, admin: AsyncClient, visitor: tuple[Widget, int], smtp: tuple[Mailbox, str]
):
    _, dialog_id = visitor
    box, url = smtp
    async with app.state.sessions() as session:
        dialog = await session.get(Dialog, dialog_id)
        assert dialog is not None
        line_id = dialog.line_id
    ok(await admin.patch(f"/v1/lines/{line_id}", json={"language": "ru"}))
    await reply(app, dialog_id, "Отправим сегодня.")
    await close(app, dialog_id)

    sent = await sweep(
        app.state.sessions, settings_for(app, smtp_url=url), datetime.now(UTC) + LATER
    )

    assert sent == 1  # the transcript alone: the unread reply is in it
    (email,) = box.emails
    assert email["Subject"] == "Ваша переписка: Shop"
    text = body_of(email)
    assert "Вы: Where is my order?" in text and "Shop: Отправим сегодня." in text


async def test_a_refused_email_goes_at_the_next_sweep(
    app: FastAPI, visitor: tuple[Widget, int], smtp: tuple[Mailbox, str]
):
    _, dialog_id = visitor
    box, url = smtp
    await reply(app, dialog_id, "It ships today.")
    later = datetime.now(UTC) + LATER
    down = settings_for(app, smtp_url=f"smtp://127.0.0.1:{free_port()}")  # nothing listens

    refused = await sweep(app.state.sessions, down, later)
    sent = await sweep(app.state.sessions, settings_for(app, smtp_url=url), later)

    assert (refused, sent, len(box.emails)) == (0, 1, 1)


async def test_without_a_server_emails_go_into_the_folder(
    app: FastAPI, visitor: tuple[Widget, int], tmp_path: Path
):
    _, dialog_id = visitor
    await reply(app, dialog_id, "It ships today.")

    sent = await sweep(
        app.state.sessions, settings_for(app, mail_dir=tmp_path), datetime.now(UTC) + LATER
    )

    (written,) = list(tmp_path.glob("*.eml"))  # noqa: ASYNC240 - a test's temporary folder
    assert sent == 1
    assert "It ships today." in body_of(parsed(written.read_bytes()))
