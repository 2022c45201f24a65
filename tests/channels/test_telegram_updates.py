"""Webhook Updates read into ``Incoming``: every recorded payload, the inbound message made
of one, and a recorded update replayed by the fake Telegram to a webhook receiver."""

import copy
from dataclasses import replace
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from channels.telegram.bot_api import BotApi
from channels.telegram.updates import (
    SECRET_HEADER,
    Attachment,
    Incoming,
    parse_update,
    secret_matches,
    to_inbound,
)
from tests.channels.telegram_fake import (
    TOKEN,
    UPDATES_DIR,
    recorded_update,
)
from tests.local_server import serving

ANNA, BOB = "48213579", "5511902233"

# What each recorded payload reads as (update_id left out: checked for all below).
EXPECTED: dict[str, dict[str, Any]] = {
    "private_text": {
        "kind": "message",
        "chat_id": ANNA,
        "name": "Анна Смирнова",
        "message_id": "17",
        # Not markup to us: the text as the client typed it.
        "text": "Здравствуйте! Заказ #4412 ещё не пришёл <b>&amp;</b>",
    },
    "start": {
        "kind": "message",
        "chat_id": BOB,
        "name": "Bob",
        "message_id": "1",
        "text": "/start",
    },
    "photo_caption": {
        "kind": "message",
        "message_id": "18",
        "text": "Вот так пришла коробка",
        "attachments": (Attachment("photo", "AgACAgIAAxkBAAIBEmd7large"),),
    },
    "document": {
        "kind": "message",
        "text": "[document]",
        "attachments": (
            Attachment(
                "document", "BQACAgIAAxkBAAIBE2d7doc", "invoice-4412.pdf", "application/pdf"
            ),
        ),
    },
    "voice": {
        "kind": "message",
        "chat_id": BOB,
        "text": "[voice]",
        "attachments": (Attachment("voice", "AwACAgIAAxkBAAIBFGd7voice", None, "audio/ogg"),),
    },
    "video": {
        "kind": "message",
        "text": "it rattles",
        "attachments": (
            Attachment("video", "BAACAgIAAxkBAAIBFWd7video", "unboxing.mp4", "video/mp4"),
        ),
    },
    "contact_own": {
        "kind": "message",
        "chat_id": ANNA,
        "phone": "+79161234567",
        "text": "[contact: Анна Смирнова, 79161234567]",
    },
    "contact_other": {
        # Someone else's number: shown to the operator, not taken as the client's.
        "kind": "message",
        "phone": None,
        "text": "[contact: Carol, +44 7700 900123]",
    },
    "edited_message": {
        "kind": "edited_message",
        "chat_id": ANNA,
        "message_id": "17",
        "edit_date": 1736162811,
        "text": "Здравствуйте! Заказ #4412 ещё не пришёл, уже неделя",
    },
    "callback_rating": {
        "kind": "rating",
        "chat_id": ANNA,
        "name": "Анна Смирнова",
        "message_id": "33",
        "rating": "dislike",
        "rated_message_id": "812",
        "callback_query_id": "2070938127361029376",
    },
    "group_message": {"kind": "ignored", "ignored_reason": "supergroup chat", "text": ""},
    "sticker": {"kind": "ignored", "ignored_reason": "no text or supported attachment"},
}
RECORDED = sorted(path.stem for path in UPDATES_DIR.glob("*.json"))


def test_every_recording_has_its_expectations():
    assert RECORDED == sorted(EXPECTED)


@pytest.mark.parametrize("name", RECORDED)
def test_recorded_update(name):
    payload = recorded_update(name)

    incoming = parse_update(payload)

    assert incoming.update_id == payload["update_id"]
    for field, value in EXPECTED[name].items():
        assert getattr(incoming, field) == value, field
    if incoming.kind == "ignored":
        assert incoming.ignored_reason
    else:
        assert incoming.ignored_reason is None
    # The raw body reads the same as the decoded one.
    assert parse_update((UPDATES_DIR / f"{name}.json").read_bytes()) == incoming


def test_a_message_without_attachments_has_none():
    incoming = parse_update(recorded_update("private_text"))

    assert (incoming.attachments, incoming.phone, incoming.rating) == ((), None, None)


def test_a_user_without_a_name_is_named_by_username():
    payload = recorded_update("start")
    payload["message"]["from"] = {
        "id": 6620001144,
        "is_bot": False,
        "first_name": " ",
        "username": "quiet_one",
    }
    payload["message"]["chat"] = {"id": 6620001144, "type": "private", "username": "quiet_one"}

    assert parse_update(payload).name == "quiet_one"


def test_an_update_type_not_asked_for_is_ignored():
    payload = {
        "update_id": 902110099,
        "my_chat_member": {"chat": {"id": 1, "type": "private"}, "date": 1736163400},
    }

    incoming = parse_update(payload)

    assert (incoming.kind, incoming.ignored_reason) == ("ignored", "update type not handled")


def test_a_button_that_is_not_a_rating_is_ignored_but_answerable():
    for data in ("rating:meh:812", "rating:like:x", "menu:open", None):
        payload = recorded_update("callback_rating")
        payload["callback_query"]["data"] = data
        if data is None:
            del payload["callback_query"]["data"]

        incoming = parse_update(payload)

        assert (incoming.kind, incoming.rating) == ("ignored", None), data
        assert incoming.callback_query_id == "2070938127361029376"


def test_a_rating_on_an_inaccessible_or_missing_message_is_still_read():
    inaccessible = recorded_update("callback_rating")
    inaccessible["callback_query"]["message"] = {
        "chat": {"id": int(ANNA), "type": "private"},
        "message_id": 33,
        "date": 0,
    }
    missing = copy.deepcopy(inaccessible)
    del missing["callback_query"]["message"]

    for payload, message_id in ((inaccessible, "33"), (missing, None)):
        incoming = parse_update(payload)
        assert (incoming.kind, incoming.rating, incoming.chat_id) == ("rating", "dislike", ANNA)
        assert incoming.message_id == message_id


def test_a_rating_pressed_in_a_group_is_ignored():
    payload = recorded_update("callback_rating")
    payload["callback_query"]["message"]["chat"] = {"id": -100220, "type": "group", "title": "G"}

    incoming = parse_update(payload)

    assert (incoming.kind, incoming.ignored_reason) == ("ignored", "group chat")
    assert incoming.callback_query_id is not None


def test_a_body_that_is_no_update_is_refused():
    for body in (b"not json", b"{}", {"update_id": "x"}, {"update_id": 1, "message": {}}):
        with pytest.raises(ValueError):
            parse_update(body)


# The inbound message for filing.


def test_to_inbound_names_chat_message_and_client():
    inbound = to_inbound(parse_update(recorded_update("contact_own")))

    assert inbound.chat.model_dump(exclude_none=True) == {
        "external_id": ANNA,
        "name": "Анна Смирнова",
        "phone": "+79161234567",
    }
    assert inbound.message.model_dump() == {
        "external_id": "20",
        "text": "[contact: Анна Смирнова, 79161234567]",
        "attachments": [],
    }


def test_to_inbound_carries_attachments_as_references():
    inbound = to_inbound(parse_update(recorded_update("document")))

    assert [a.model_dump() for a in inbound.message.attachments] == [
        {
            "kind": "document",
            "ref": "BQACAgIAAxkBAAIBE2d7doc",
            "name": "invoice-4412.pdf",
            "mime_type": "application/pdf",
        }
    ]


def test_to_inbound_keeps_start_and_cuts_what_is_too_long():
    start = parse_update(recorded_update("start"))
    assert to_inbound(start).message.text == "/start"
    assert to_inbound(start).chat.phone is None

    long = to_inbound(replace(start, text="x" * 12000, name="N" * 300, phone="+1" * 40))

    assert len(long.message.text) == 10000 and long.message.text.endswith("…")
    assert long.chat.name is not None and len(long.chat.name) == 255
    assert long.chat.phone is None  # not a phone number at that length


@pytest.mark.parametrize("name", ["edited_message", "callback_rating", "group_message"])
def test_to_inbound_takes_only_client_messages(name):
    with pytest.raises(ValueError):
        to_inbound(parse_update(recorded_update(name)))


def test_secret_matches_only_the_webhook_secret():
    assert secret_matches("s3cret", "s3cret")
    assert not secret_matches("s3cret", "s3creT")
    assert not secret_matches("s3cret", None)
    assert not secret_matches("", "")


# Replayed by the fake Telegram to a webhook, as Telegram delivers.


class Receiver:
    """A webhook endpoint in miniature: checks the secret, reads the update."""

    def __init__(self, secret: str) -> None:
        self.secret = secret
        self.received: list[Incoming] = []
        self.refused = 0

    async def handle(self, request: Request) -> Response:
        if not secret_matches(self.secret, request.headers.get(SECRET_HEADER)):
            self.refused += 1
            return JSONResponse({"detail": "forbidden"}, status_code=403)
        self.received.append(parse_update(await request.body()))
        return JSONResponse({})


async def test_a_replayed_update_reaches_the_webhook_with_its_secret(telegram_fake):
    receiver = Receiver("w3bhook_Secret-1")
    app = Starlette(routes=[Route("/v1/channels/3/telegram", receiver.handle, methods=["POST"])])
    async with serving(app) as public_url, httpx.AsyncClient() as http:
        api = BotApi(TOKEN, http, telegram_fake.url)
        await api.set_webhook(
            f"{public_url}/v1/channels/3/telegram", receiver.secret, ["message", "callback_query"]
        )

        delivered = await telegram_fake.deliver(recorded_update("photo_caption"))
        forged = await telegram_fake.deliver(recorded_update("private_text"), secret="guess")

    assert (delivered.status_code, forged.status_code) == (200, 403)
    assert receiver.received == [parse_update(recorded_update("photo_caption"))]
    assert receiver.refused == 1


async def test_replaying_without_a_webhook_is_a_test_error(telegram_fake):
    with pytest.raises(AssertionError):
        await telegram_fake.deliver(recorded_update("start"))
