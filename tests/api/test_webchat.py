"""The web chat channel as a site owner connects it and a visitor's widget talks to it: the
snippet, visitor tokens that keep a conversation across reloads, identities the site vouches
for, and writing and reading the chat."""

from typing import Any

import pytest
from fastapi import FastAPI
from httpx import AsyncClient

from channels.webchat.visitors import identity_hash
from core.models import Chat, Message
from tests.conftest import ADMIN_KEY, client_for

PUBLIC_URL = "https://chat.example.org"
CONFIG = {"allowed_origins": ["https://shop.example"]}


@pytest.fixture
async def public_app(make_app: Any) -> FastAPI:
    app: FastAPI = await make_app(public_url=PUBLIC_URL)
    return app


def ok(response: Any, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()


def problem(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    return body


async def connect(admin: AsyncClient, config: dict[str, Any] = CONFIG) -> dict[str, Any]:
    line = ok(await admin.post("/v1/lines", json={"name": "Shop"}), 201)
    body = {"type": "webchat", "config": config}
    created: dict[str, Any] = ok(
        await admin.post(f"/v1/lines/{line['id']}/channels", json=body), 201
    )
    return created


class Widget:
    """What the widget's iframe does: open a session, write, read."""

    def __init__(self, app: FastAPI, channel: dict[str, Any]) -> None:
        self.app = app
        self.base = f"/v1/webchat/{channel['id']}-{channel['config']['code']}"
        self.token: str | None = None

    async def open(self, **identity: str) -> dict[str, Any]:
        async with client_for(self.app, None) as http:
            body = {"visitor_token": self.token, **identity} if self.token else identity
            opened: dict[str, Any] = ok(await http.post(f"{self.base}/session", json=body))
        self.token = opened["visitor_token"]
        return opened

    async def write(self, text: str, client_message_id: str, **extra: str) -> Any:
        async with client_for(self.app, self.token) as http:
            body = {"client_message_id": client_message_id, "text": text, **extra}
            return await http.post(f"{self.base}/messages", json=body)

    async def read(self, after: int = 0) -> Any:
        async with client_for(self.app, self.token) as http:
            return await http.get(f"{self.base}/messages", params={"after": after})


async def test_connecting_gives_the_snippet_to_paste(public_app: FastAPI):
    async with client_for(public_app, ADMIN_KEY) as admin:
        created = await connect(admin)
        read = ok(await admin.get(f"/v1/channels/{created['id']}"))

    code = f"{created['id']}-{created['config']['code']}"
    expected = f'<script src="{PUBLIC_URL}/widget/{code}.js" async></script>'
    assert created["snippet"] == read["snippet"] == expected
    assert created["config"] == {
        **CONFIG,
        "title": None,
        "colour": "#1f6feb",
        "position": "right",
        "working_hours_only": False,
        "prechat_form": False,
        "code": created["config"]["code"],
    }


@pytest.mark.parametrize(
    ("config", "field"),
    [({}, "config.allowed_origins"),
     ({"allowed_origins": []}, "config.allowed_origins"),
     ({"allowed_origins": ["https://shop.example/page"]}, "config.allowed_origins[0]"),
     ({"allowed_origins": ["shop.example"]}, "config.allowed_origins[0]"),
     ({**CONFIG, "colour": "blue"}, "config.colour"),
     ({**CONFIG, "code": "mine"}, "config.code")],
)  # fmt: skip
async def test_a_bad_web_chat_config_is_422_naming_the_field(admin, config, field):
    line = ok(await admin.post("/v1/lines", json={}), 201)
    body = {"type": "webchat", "config": config}
    refused = problem(await admin.post(f"/v1/lines/{line['id']}/channels", json=body), 422)
    assert [error["field"] for error in refused["errors"]] == [field]


async def test_a_reload_with_the_token_keeps_the_conversation(app: FastAPI, admin: AsyncClient):
    widget = Widget(app, await connect(admin))
    first = await widget.open()
    written = ok(await widget.write("Hello", "c-1"), 202)
    again = ok(await widget.write("Hello", "c-1"), 202)  # the widget resent it after a failure

    reloaded = await widget.open()  # the page again, with the stored token
    page = ok(await widget.read())

    assert (first["identified"], first["line"]["title"], first["line"]["language"]) == (
        False,
        "Shop",
        "en",
    )
    assert reloaded["visitor_token"] == first["visitor_token"]
    assert (again["message_id"], again["duplicate"]) == (written["message_id"], True)
    assert [(m["author"], m["text"], m["client_message_id"]) for m in page["items"]] == [
        ("client", "Hello", "c-1")
    ]
    assert page["dialog"] == {"id": written["dialog_id"], "status": "new", "rating": None}
    assert ok(await widget.read(after=written["message_id"]))["items"] == []


async def test_another_browser_is_another_visitor(app: FastAPI, admin: AsyncClient):
    channel = await connect(admin)
    ann, bob = Widget(app, channel), Widget(app, channel)
    await ann.open()
    await bob.open()
    ok(await ann.write("I am Ann", "a-1"), 202)

    assert ok(await bob.read())["items"] == []
    assert ann.token != bob.token


async def test_a_site_vouches_for_an_identity_and_a_wrong_hash_is_refused(
    app: FastAPI, admin: AsyncClient
):
    channel = await connect(admin)
    good = identity_hash(channel["secret"], "customer-42")
    laptop, phone = Widget(app, channel), Widget(app, channel)
    await laptop.open(identifier="customer-42", identifier_hash=good)
    ok(await laptop.write("From my laptop", "l-1"), 202)

    on_phone = await phone.open(identifier="customer-42", identifier_hash=good.upper())
    async with client_for(app, None) as http:
        wrong = await http.post(
            f"{phone.base}/session", json={"identifier": "customer-43", "identifier_hash": good}
        )
    logged_out = await laptop.open()  # the site no longer vouches: someone else at the laptop

    assert on_phone["identified"] is True
    assert [m["text"] for m in ok(await phone.read())["items"]] == ["From my laptop"]
    assert problem(wrong, 403)["errors"][0]["field"] == "identifier_hash"
    assert logged_out["identified"] is False
    assert ok(await laptop.read())["items"] == []


async def test_the_pre_chat_form_fills_in_the_chat(app: FastAPI, admin: AsyncClient):
    widget = Widget(app, await connect(admin, {**CONFIG, "prechat_form": True}))
    opened = await widget.open()
    answers = {"name": "Olga", "email": "olga@example.com", "phone": "+1 650 253 0000"}
    written = ok(await widget.write("Hi", "c-1", **answers), 202)
    async with app.state.sessions() as session:
        chat = await session.get(Chat, (await session.get(Message, written["message_id"])).chat_id)

    assert opened["line"]["prechat_form"] is True
    assert (chat.name, chat.email, chat.phone) == ("Olga", "olga@example.com", "+1 650 253 0000")


async def test_notes_to_operators_stay_out_of_the_visitors_chat(app: FastAPI, admin: AsyncClient):
    widget = Widget(app, await connect(admin))
    await widget.open()
    written = ok(await widget.write("Hello", "c-1"), 202)
    async with app.state.sessions() as session:
        chat_id = (await session.get(Message, written["message_id"])).chat_id
        session.add(
            Message(chat_id=chat_id, dialog_id=written["dialog_id"], author="note", text="x")
        )
        await session.commit()

    assert [m["author"] for m in ok(await widget.read())["items"]] == ["client"]


async def test_without_a_good_token_or_code_nothing_is_written(app: FastAPI, admin: AsyncClient):
    channel = await connect(admin)
    other = await connect(admin)
    widget, elsewhere = Widget(app, channel), Widget(app, other)
    await elsewhere.open()
    widget.token = elsewhere.token  # a token of another web chat
    cross = await widget.write("Hi", "c-1")
    widget.token = "dj oops.0000"
    forged = await widget.write("Hi", "c-2")
    widget.token = None
    missing = await widget.write("Hi", "c-3")
    async with client_for(app, None) as http:
        wrong_code = await http.post(f"/v1/webchat/{channel['id']}-guess/session", json={})
        api_route = await http.post(
            f"/v1/channels/{channel['id']}/messages",
            json={"chat": {"external_id": "x"}, "message": {"external_id": "m", "text": "Hi"}},
            headers={"Authorization": f"Bearer {channel['secret']}"},
        )

    for response in (cross, forged, missing):
        problem(response, 401)
    problem(wrong_code, 404)
    problem(api_route, 409)  # a web chat's visitors write through the widget's routes
    assert ok(await admin.get("/v1/dialogs"))["items"] == []
