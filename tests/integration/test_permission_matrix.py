"""The permission matrix: every API route, called by every kind of caller, answers as listed.

Who may call what is decided in many places (the role dependencies of ``api/deps.py``, dialog
visibility, CRM privacy, channel proofs, checks inside routes); ``MATRIX`` says it in one
table, and ``test_every_route_has_an_entry`` holds the table to the app's own OpenAPI
operations, so a new route cannot ship without someone deciding who may call it.

Each route is called through the running system (``tests/integration/conftest.py``): the
denied callers first, all against one shared set of target objects (a denial changes
nothing), then each allowed caller against target objects of its own, so that one caller's
DELETE or close does not spoil the next one's turn (reads spoil nothing: allowed readers
share the targets too). Target objects are made only when the route's path or body names
them.
"""

import asyncio
import itertools
import json
from collections.abc import Iterator, Mapping
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, get_args

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import Select, select

from api.app import create_app
from channels.telegram.updates import SECRET_HEADER
from channels.webhook.signing import signed_headers
from core.config import Settings
from core.events.models import Event, Notification, WebhookDelivery
from core.models import Channel, Dialog, Message
from tests.channels.receiver import serve_receiver
from tests.conftest import client_for
from tests.integration.conftest import System

Role = Literal[
    "admin",  # an admin key issued through POST /v1/api-keys
    "supervisor",  # a supervisor key bound to no operator
    "operator",  # Ann's key: the operator of the target line, who owns the target objects
    "other_operator",  # Ben's key: online, not in the target line's queue, holding no dialog
    "bot",  # bot A's key: the bot holding the target bot dialog
    "other_bot",  # bot B's key
    "channel",  # the target channel's secret as a bearer token (and its proof: ``proof``)
    "no_key",  # no Authorization header
    "revoked",  # an admin key, revoked with DELETE /v1/api-keys/{id}
    "fired",  # Cid's operator key; Cid was fired since
]
ROLES: tuple[Role, ...] = get_args(Role)
BOTS: tuple[Role, ...] = ("bot", "other_bot")


@dataclass(frozen=True)
class Ok:
    """The role may: any 2xx, or ``status`` when the valid request necessarily ends in it."""

    status: int | None = None

    def matches(self, got: int) -> bool:
        return 200 <= got < 300 if self.status is None else got == self.status

    def __str__(self) -> str:
        return "2xx" if self.status is None else f"{self.status} (allowed)"


OK = Ok()
Outcome = Ok | int  # an int: the role is denied with this status
Rule = Mapping[Role, Outcome]


def keyed(*allowed: Role, ok: Ok = OK) -> dict[Role, Outcome]:
    """A route for API keys: the ``allowed`` roles may, other keys get 403, and callers
    without a live key 401 (a channel secret is not an API key)."""
    rule: dict[Role, Outcome] = {role: ok if role in allowed else 403 for role in ROLES}
    rule.update({"channel": 401, "no_key": 401, "revoked": 401, "fired": 401})
    return rule


def but(rule: Rule, changes: Rule) -> dict[Role, Outcome]:
    return {**rule, **changes}


PUBLIC: Rule = dict.fromkeys(ROLES, OK)
CHANNEL: Rule = {**dict.fromkeys(ROLES, 401), "channel": OK}  # one 401 for every other proof
# A web chat visitor's token, which no caller here holds (tests/api/test_webchat.py has it).
VISITOR: Rule = dict.fromkeys(ROLES, 401)
ADMIN_ONLY = keyed("admin")
SUPERVISORS = keyed("admin", "supervisor")
STAFF = keyed("admin", "supervisor", "operator", "other_operator")  # ``Reader``
ANY_KEY = keyed("admin", "supervisor", "operator", "other_operator", "bot", "other_bot")
SELF = keyed("admin", "operator")  # Ann herself, or an admin (acting for her in a dialog)
OWNER = keyed("admin", "supervisor", "operator")  # someone else's dialog: 403
DIALOG = keyed("admin", "supervisor", "operator", "bot")  # ... and the bot holding it
# An operator sees only their own clients' CRM records; another's are 404, as if not there.
CRM_RECORD = but(OWNER, {"other_operator": 404})

DialogState = Literal["offered", "accepted", "pinned", "closing"]
ChannelType = Literal["api", "webhook", "telegram", "webchat"]
Json = dict[str, Any]


@dataclass(frozen=True)
class Call:
    """Who gets what from a route, and how to call it validly.

    ``body``: JSON whose ``"{name}"`` strings become the ids of targets (path placeholders
    or target names); ``as_ann``: an admin acts for Ann, so its body names her
    ``operator_id``; ``dialog``: the state of Ann's target dialog (the bot roles get the bot
    dialog where bots may call); ``channel``: the type of the target channel, which target
    dialogs come through; ``targets``: placeholders that stand for another target than
    usual; ``stream``: the answer is an event stream.
    """

    rule: Rule
    body: Json | None = None
    as_ann: bool = False
    dialog: DialogState = "offered"
    channel: ChannelType = "api"
    targets: Mapping[str, str] = field(default_factory=dict)
    stream: bool = False


# Paths are the OpenAPI templates. Allowed calls change only their own target objects.
MATRIX: dict[tuple[str, str], Call] = {
    # --- service ----------------------------------------------------------------------
    ("GET", "/healthz"): Call(PUBLIC),
    ("GET", "/readyz"): Call(PUBLIC),
    ("GET", "/metrics"): Call(PUBLIC),  # OPENLINES_METRICS_PORT moves them off the API
    ("GET", "/v1/me"): Call(ANY_KEY),  # who the key is: a console's first call
    # --- configuration ----------------------------------------------------------------
    ("GET", "/v1/operators"): Call(STAFF),
    ("POST", "/v1/operators"): Call(ADMIN_ONLY, {"name": "Dan"}),
    ("GET", "/v1/operators/{operator_id}"): Call(STAFF),
    ("PATCH", "/v1/operators/{operator_id}"): Call(ADMIN_ONLY, {"position": "Agent"}),
    ("PUT", "/v1/operators/{operator_id}/presence"): Call(SELF, {"status": "online"}),
    ("PUT", "/v1/operators/{operator_id}/workday"): Call(SELF, {"state": "started"}),
    ("GET", "/v1/operators/{operator_id}/dialogs"): Call(OWNER),
    ("GET", "/v1/operators/{operator_id}/kpi"): Call(OWNER),
    ("GET", "/v1/departments"): Call(STAFF),
    ("POST", "/v1/departments"): Call(ADMIN_ONLY, {"name": "Sales"}),
    ("GET", "/v1/departments/{department_id}"): Call(STAFF),
    ("PATCH", "/v1/departments/{department_id}"): Call(ADMIN_ONLY, {"name": "Billing"}),
    ("DELETE", "/v1/departments/{department_id}"): Call(ADMIN_ONLY),
    ("GET", "/v1/lines"): Call(STAFF),
    ("POST", "/v1/lines"): Call(ADMIN_ONLY, {}),
    ("GET", "/v1/lines/{line_id}"): Call(STAFF),
    ("PATCH", "/v1/lines/{line_id}"): Call(ADMIN_ONLY, {"name": "Support"}),
    ("DELETE", "/v1/lines/{line_id}"): Call(ADMIN_ONLY),
    ("GET", "/v1/lines/{line_id}/stats"): Call(SUPERVISORS),
    ("POST", "/v1/lines/{line_id}/channels"): Call(ADMIN_ONLY, {"type": "api"}),
    ("GET", "/v1/lines/{line_id}/channels"): Call(ADMIN_ONLY),
    ("GET", "/v1/channels/{channel_id}"): Call(ADMIN_ONLY),
    ("PATCH", "/v1/channels/{channel_id}"): Call(ADMIN_ONLY, {"line_id": "{line_id}"}),
    ("DELETE", "/v1/channels/{channel_id}"): Call(ADMIN_ONLY),
    ("POST", "/v1/channels/{channel_id}/rotate-secret"): Call(ADMIN_ONLY),
    ("GET", "/v1/api-keys"): Call(ADMIN_ONLY),
    ("POST", "/v1/api-keys"): Call(ADMIN_ONLY, {"role": "supervisor"}),
    ("DELETE", "/v1/api-keys/{key_id}"): Call(ADMIN_ONLY),
    ("GET", "/v1/agreements"): Call(STAFF),
    ("POST", "/v1/agreements"): Call(ADMIN_ONLY, {"name": "Data", "text": "We keep it."}),
    ("GET", "/v1/agreements/{agreement_id}"): Call(STAFF),
    ("PATCH", "/v1/agreements/{agreement_id}"): Call(ADMIN_ONLY, {"text": "A year."}),
    ("DELETE", "/v1/agreements/{agreement_id}"): Call(ADMIN_ONLY),
    ("GET", "/v1/agreements/{agreement_id}/versions"): Call(STAFF),
    ("GET", "/v1/agreements/{agreement_id}/consents"): Call(SUPERVISORS),
    ("GET", "/v1/agreement-templates"): Call(STAFF),
    ("GET", "/v1/bots"): Call(SUPERVISORS),
    ("POST", "/v1/bots"): Call(ADMIN_ONLY, {"name": "Helper"}),
    ("GET", "/v1/bots/{bot_id}"): Call(SUPERVISORS),
    ("PATCH", "/v1/bots/{bot_id}"): Call(ADMIN_ONLY, {"name": "Assistant"}),
    ("DELETE", "/v1/bots/{bot_id}"): Call(ADMIN_ONLY),
    # --- quick answers: supervisors edit, operators read -------------------------------
    ("POST", "/v1/quick-answer-lists"): Call(SUPERVISORS, {"name": "Sales"}),
    ("GET", "/v1/quick-answer-lists"): Call(STAFF),
    ("GET", "/v1/quick-answer-lists/{list_id}"): Call(STAFF),
    ("PATCH", "/v1/quick-answer-lists/{list_id}"): Call(SUPERVISORS, {"name": "Sales"}),
    ("DELETE", "/v1/quick-answer-lists/{list_id}"): Call(SUPERVISORS),
    ("POST", "/v1/quick-answer-lists/{list_id}/answers"): Call(
        SUPERVISORS, {"title": "Refunds", "code": "refund", "text": "Five days."}
    ),
    ("GET", "/v1/quick-answer-lists/{list_id}/answers"): Call(STAFF),
    ("GET", "/v1/quick-answers/{answer_id}"): Call(STAFF),
    ("PATCH", "/v1/quick-answers/{answer_id}"): Call(SUPERVISORS, {"text": "Hi!"}),
    ("DELETE", "/v1/quick-answers/{answer_id}"): Call(SUPERVISORS),
    ("GET", "/v1/webhooks"): Call(ADMIN_ONLY),
    ("POST", "/v1/webhooks"): Call(
        ADMIN_ONLY, {"url": "http://127.0.0.1:9/hook", "events": ["contact.deleted"]}
    ),
    ("GET", "/v1/webhooks/{webhook_id}"): Call(ADMIN_ONLY),
    ("PATCH", "/v1/webhooks/{webhook_id}"): Call(ADMIN_ONLY, {"active": False}),
    ("DELETE", "/v1/webhooks/{webhook_id}"): Call(ADMIN_ONLY),
    ("GET", "/v1/webhooks/{webhook_id}/deliveries"): Call(ADMIN_ONLY),
    ("POST", "/v1/webhooks/{webhook_id}/rotate-secret"): Call(ADMIN_ONLY),
    ("POST", "/v1/webhooks/{webhook_id}/deliveries/{delivery_id}/redeliver"): Call(ADMIN_ONLY),
    # --- a channel's side: its secret, signature or Telegram's secret token ---------------
    ("POST", "/v1/channels/{channel_id}/messages"): Call(
        CHANNEL, {"chat": {"external_id": "new"}, "message": {"external_id": "1", "text": "Hi"}}
    ),
    ("POST", "/v1/channels/{channel_id}/receipts"): Call(
        CHANNEL, {"message_ids": [1], "status": "read"}, channel="webhook"
    ),
    # An update of a kind it ignores, answered 200 like any Telegram sends.
    ("POST", "/v1/channels/{channel_id}/telegram"): Call(
        CHANNEL, {"update_id": 1}, channel="telegram"
    ),
    ("POST", "/v1/dialogs/{dialog_id}/rating"): Call(CHANNEL, {"value": "like"}, dialog="closing"),
    # --- dialogs ----------------------------------------------------------------------
    ("GET", "/v1/dialogs"): Call(ANY_KEY),  # each sees their own (tested elsewhere)
    ("GET", "/v1/dialogs/{dialog_id}"): Call(DIALOG),
    ("GET", "/v1/dialogs/{dialog_id}/messages"): Call(DIALOG),
    ("GET", "/v1/dialogs/{dialog_id}/quick-answers"): Call(DIALOG),
    # A supervisor does not write to clients: only an operator, or an admin acting for one.
    ("POST", "/v1/dialogs/{dialog_id}/messages"): Call(
        keyed("admin", "operator", "bot"), {"text": "Hi"}, as_ann=True, dialog="accepted"
    ),
    ("POST", "/v1/dialogs/{dialog_id}/transfer"): Call(
        OWNER, {"operator_id": "{ben}"}, dialog="accepted"
    ),
    ("POST", "/v1/dialogs/{dialog_id}/intercept"): Call(SUPERVISORS, {"operator_id": "{ann}"}),
    ("POST", "/v1/dialogs/{dialog_id}/accept"): Call(SELF, as_ann=True),
    ("POST", "/v1/dialogs/{dialog_id}/skip"): Call(SELF, as_ann=True),
    ("POST", "/v1/dialogs/{dialog_id}/close"): Call(DIALOG, dialog="accepted"),
    ("POST", "/v1/dialogs/{dialog_id}/spam"): Call(OWNER, dialog="accepted"),
    ("POST", "/v1/dialogs/{dialog_id}/pin"): Call(SELF, as_ann=True, dialog="accepted"),
    ("POST", "/v1/dialogs/{dialog_id}/unpin"): Call(SELF, as_ann=True, dialog="pinned"),
    ("POST", "/v1/dialogs/{dialog_id}/bot-handover"): Call(keyed("bot")),
    ("POST", "/v1/dialogs/{dialog_id}/supervisor-rating"): Call(SUPERVISORS, {"rating": 4}),
    ("POST", "/v1/dialogs/{dialog_id}/crm/lead"): Call(OWNER, dialog="accepted"),
    # A message to the client (the welcome text; in the bot's dialog, the bot's reply) sent
    # again through a webhook channel: an api channel's client reads messages through the
    # API, so there is nothing to resend (409).
    ("POST", "/v1/messages/{message_id}/resend"): Call(
        DIALOG, channel="webhook", targets={"message_id": "{dialog}/sent"}
    ),
    # The client's photo: an api channel's client keeps its files, so whoever may see the
    # message gets past the checks to the 409 that says so (only a telegram channel serves
    # files, fetched from Telegram).
    ("GET", "/v1/messages/{message_id}/attachments/{index}"): Call(
        keyed("admin", "supervisor", "operator", "bot", ok=Ok(409))
    ),
    # --- CRM --------------------------------------------------------------------------
    ("POST", "/v1/crm/contacts"): Call(SUPERVISORS, {"name": "Zoe"}),
    ("GET", "/v1/crm/contacts"): Call(STAFF),  # an operator's: their own clients
    ("GET", "/v1/crm/contacts/{contact_id}"): Call(CRM_RECORD),
    ("PATCH", "/v1/crm/contacts/{contact_id}"): Call(SUPERVISORS, {"name": "Zoe"}),
    # A contact no lead names: Ann's client has a lead (the tracker asked for one), and a
    # contact with leads is kept (409).
    ("DELETE", "/v1/crm/contacts/{contact_id}"): Call(
        ADMIN_ONLY, targets={"contact_id": "contact"}
    ),
    ("GET", "/v1/crm/contacts/{contact_id}/dialogs"): Call(CRM_RECORD),
    ("POST", "/v1/crm/contacts/{contact_id}/merge"): Call(
        CRM_RECORD, {"contact_id": "{second/contact}"}
    ),
    ("POST", "/v1/crm/merges/{merge_id}/undo"): Call(SUPERVISORS),
    ("POST", "/v1/crm/leads"): Call(SUPERVISORS, {"title": "Deal"}),
    ("GET", "/v1/crm/leads"): Call(STAFF),  # an operator's: their own clients'
    ("GET", "/v1/crm/leads/{lead_id}"): Call(CRM_RECORD),
    ("PATCH", "/v1/crm/leads/{lead_id}"): Call(SUPERVISORS, {"status": "in_progress"}),
    ("DELETE", "/v1/crm/leads/{lead_id}"): Call(ADMIN_ONLY),
    # --- a console's feed -------------------------------------------------------------
    # The supervisor key is bound to no operator: it has no notifications of its own, and
    # is told so (403) rather than shown an empty list.
    ("GET", "/v1/notifications"): Call(keyed("admin", "operator", "other_operator")),
    ("POST", "/v1/notifications/{notification_id}/read"): Call(SELF),
    ("GET", "/v1/events"): Call(STAFF, stream=True),
    # --- the web chat widget: anyone may open a session; writing and reading need its token
    ("POST", "/v1/webchat/{code}/session"): Call(PUBLIC, {}, channel="webchat"),
    ("POST", "/v1/webchat/{code}/messages"): Call(
        VISITOR, {"client_message_id": "c-1", "text": "Hi"}, channel="webchat"
    ),
    ("GET", "/v1/webchat/{code}/messages"): Call(VISITOR, channel="webchat"),
    ("GET", "/v1/webchat/{code}/events"): Call(VISITOR, channel="webchat", stream=True),
    # the dialog's web chat visitor (their token), or staff who see the dialog
    ("POST", "/v1/dialogs/{dialog_id}/typing"): Call(OWNER, {"text": "Hello"}),
}

# The target each path placeholder stands for. Targets are named: ``line`` (Ann in its
# queue), ``bot_line`` (bot A takes its dialogs first), ``<line>.channel`` (its channel of
# the call's type), ``<dialog>/<part>`` (a dialog and what is in it: ``Targets._of_dialog``;
# ``{dialog}`` is the caller's), and the rest as in ``Targets._make``.
TARGET_OF = {
    "operator_id": "ann",
    "department_id": "department",
    "line_id": "line",
    "channel_id": "line.channel",
    "key_id": "key",
    "dialog_id": "{dialog}/dialog",
    "message_id": "{dialog}/message",
    "index": "index",
    "agreement_id": "agreement",
    "bot_id": "bot",
    "contact_id": "{dialog}/contact",
    "lead_id": "{dialog}/lead",
    "merge_id": "merge",
    "webhook_id": "webhook",
    "delivery_id": "delivery",
    "notification_id": "notification",
    "list_id": "quick_list",
    "answer_id": "quick_answer",
}
# Targets one admin POST makes: where, and the body.
MADE_BY_POST: dict[str, tuple[str, Json]] = {
    "department": ("/v1/departments", {"name": "Support"}),
    "agreement": ("/v1/agreements", {"name": "Terms", "text": "Be nice."}),
    "bot": ("/v1/bots", {"name": "Spare"}),  # a bot no line uses
    "key": ("/v1/api-keys", {"role": "supervisor"}),
    "webhook": ("/v1/webhooks", {"url": "http://127.0.0.1:9/hook", "events": ["contact.deleted"]}),
    "contact": ("/v1/crm/contacts", {"name": "Zoe"}),  # one no lead names
    "other_contact": ("/v1/crm/contacts", {"name": "Yan"}),
    "quick_list": ("/v1/quick-answer-lists", {"name": "Support"}),
}
PHOTO = {"kind": "photo", "ref": "https://files.example/1.jpg", "mime_type": "image/jpeg"}
TELEGRAM_SECRET = "telegram-webhook-secret-0123456789"


@dataclass
class World:
    """What every target set of a test shares: the system, its callers and their keys."""

    system: System
    client: httpx.AsyncClient  # no key of its own
    ann: int
    ben: int
    bot_a: int
    keys: dict[Role, str]
    receiver_url: str  # where webhook channels send (a receiver, when the route needs one)
    serial: Iterator[int] = field(default_factory=itertools.count)  # for unique names


def ok_json(response: httpx.Response, status: int = 201) -> Json:
    assert response.status_code == status, f"{response.request.url}: {response.text}"
    result: Json = response.json()
    return result


def created_id(response: httpx.Response) -> int:
    return int(ok_json(response)["id"])


async def issued(system: System, role: str, **binding: int) -> Json:
    return ok_json(await system.admin.post("/v1/api-keys", json={"role": role, **binding}))


async def build_world(system: System, client: httpx.AsyncClient, receiver_url: str) -> World:
    """Ann, Ben and Cid (fired), bots A and B, and a key for each role."""
    admin = system.admin
    ann, ben = await system.operator("Ann"), await system.operator("Ben")
    cid = await system.operator("Cid", online=False)
    bot_a = created_id(await admin.post("/v1/bots", json={"name": "A"}))
    bot_b = created_id(await admin.post("/v1/bots", json={"name": "B"}))
    revoked = await issued(system, "admin")
    keys: dict[Role, str] = {
        "admin": (await issued(system, "admin"))["key"],
        "supervisor": (await issued(system, "supervisor"))["key"],
        "operator": (await issued(system, "operator", operator_id=ann))["key"],
        "other_operator": (await issued(system, "operator", operator_id=ben))["key"],
        "bot": (await issued(system, "bot", bot_id=bot_a))["key"],
        "other_bot": (await issued(system, "bot", bot_id=bot_b))["key"],
        "revoked": revoked["key"],
        "fired": (await issued(system, "operator", operator_id=cid))["key"],
    }
    assert (await admin.delete(f"/v1/api-keys/{revoked['id']}")).status_code == 204
    ok_json(await admin.patch(f"/v1/operators/{cid}", json={"fired": True}), 200)
    return World(system, client, ann, ben, bot_a, keys, receiver_url)


class Targets:
    """One set of target objects, each made the first time it is asked for."""

    def __init__(self, world: World, call: Call) -> None:
        self.world, self.call = world, call
        self.made: dict[str, asyncio.Task[int]] = {}
        self.secrets: dict[int, str] = {}  # channel id -> secret
        self.codes: dict[int, str] = {}  # web chat channel id -> widget code
        self.first_message: dict[int, int] = {}  # dialog id -> the client's first message

    def name(self, placeholder: str, role: Role) -> str:
        """The target a placeholder (or a target's own name) stands for, for this role."""
        name = self.call.targets.get(placeholder) or TARGET_OF.get(placeholder, placeholder)
        bots_may = isinstance(self.call.rule["bot"], Ok)
        dialog = "bot" if role in BOTS and bots_may else self.call.dialog
        return name.replace("{dialog}", dialog)

    async def id(self, name: str) -> int:
        if name not in self.made:
            self.made[name] = asyncio.create_task(self._make(name))
        return await self.made[name]

    async def fill(self, value: Any, role: Role) -> Any:
        """A body or path part with its ``"{name}"`` strings made target ids."""
        if isinstance(value, dict):
            return {k: await self.fill(v, role) for k, v in value.items()}
        if isinstance(value, str) and value.startswith("{") and value.endswith("}"):
            return await self.id(self.name(value[1:-1], role))
        return value

    async def _make(self, name: str) -> int:
        world, admin = self.world, self.world.system.admin
        dialog, _, part = name.rpartition("/")
        if dialog:
            return await self._of_dialog(dialog, part)
        if name in ("ann", "ben"):
            return world.ann if name == "ann" else world.ben
        if name == "index":
            return 0
        if name in ("line", "bot_line"):
            queue = {"members": [{"type": "operator", "id": world.ann}], "handover_after": 3600}
            bot = {"bot": {"enabled": True, "bot_id": world.bot_a}} if name == "bot_line" else {}
            return created_id(await admin.post("/v1/lines", json={"queue": queue, **bot}))
        if name.endswith(".channel"):
            return await self._channel(await self.id(name.removesuffix(".channel")))
        if name == "merge":
            kept = await self.id("contact")
            body = {"contact_id": await self.id("other_contact")}
            merged = ok_json(await admin.post(f"/v1/crm/contacts/{kept}/merge", json=body), 200)
            return int(merged["id"])
        if name == "delivery":
            return await self._failed_delivery(await self.id("webhook"))
        if name == "notification":
            return await self._notification()
        if name == "quick_answer":
            list_id = await self.id("quick_list")
            answer = {"title": "Greeting", "code": "hello", "text": "Hello!"}
            path = f"/v1/quick-answer-lists/{list_id}/answers"
            return created_id(await admin.post(path, json=answer))
        collection, body = MADE_BY_POST[name]
        return created_id(await admin.post(collection, json=body))

    async def _channel(self, line_id: int) -> int:
        """The line's channel of the call's type."""
        kind = self.call.channel
        if kind == "telegram":  # made in the database: connecting one needs Telegram
            async with self.world.system.app.state.sessions() as session:
                config = {"bot_token": "1:fake", "webhook_secret": TELEGRAM_SECRET}
                row = Channel(line_id=line_id, type=kind, config=config, secret="unused-secret")
                session.add(row)
                await session.commit()
                self.secrets[row.id] = row.secret
                return row.id
        given: Json = {
            "webhook": {"url": self.world.receiver_url},
            "webchat": {"allowed_origins": ["https://shop.example"]},
        }
        body = {"type": kind, "config": given.get(kind, {})}
        created = ok_json(
            await self.world.system.admin.post(f"/v1/lines/{line_id}/channels", json=body)
        )
        self.secrets[created["id"]] = created["secret"]
        self.codes[created["id"]] = f"{created['id']}-{created['config'].get('code')}"
        return int(created["id"])

    async def code(self, role: Role) -> str:
        """The widget code of the line's web chat."""
        return self.codes[await self.id(self.name("channel_id", role))]

    def proof(self, channel_id: int, raw: bytes) -> dict[str, str]:
        """What a channel sends: its secret as a bearer token, and the proof of its type."""
        secret = self.secrets[channel_id]
        headers = {"Authorization": f"Bearer {secret}"}
        if self.call.channel == "webhook":
            headers.update(signed_headers(secret, raw, datetime.now(UTC)))
        if self.call.channel == "telegram":
            headers[SECRET_HEADER] = TELEGRAM_SECRET
        return headers

    async def _of_dialog(self, state: str, part: str) -> int:
        """A dialog (``state``: offered, accepted, pinned, closing, bot, or second: another
        offered to Ann) or something of it: its client's first message; a message to the
        client (the welcome text; in the bot's dialog, which has none, the bot's reply); its
        contact; a lead of that contact."""
        if part == "dialog":
            return await self._dialog(state)
        dialog_id = await self.id(f"{state}/dialog")
        if part == "message":
            return self.first_message[dialog_id]
        if part == "contact":
            return await self._once(select(Dialog.contact_id).where(Dialog.id == dialog_id))
        if part == "lead":
            body = {"title": "Deal", "contact_id": await self.id(f"{state}/contact")}
            return created_id(await self.world.system.admin.post("/v1/crm/leads", json=body))
        assert part == "sent", part
        author = "bot" if state == "bot" else "system"
        if state == "bot":
            as_bot = {"Authorization": f"Bearer {self.world.keys['bot']}"}
            url = f"/v1/dialogs/{dialog_id}/messages"
            ok_json(await self.world.client.post(url, json={"text": "Hi"}, headers=as_bot), 200)
        query = select(Message.id).where(Message.dialog_id == dialog_id, Message.author == author)
        return await self._once(query)

    async def _dialog(self, state: str) -> int:
        system, ann = self.world.system, self.world.ann
        channel = await self.id("bot_line.channel" if state == "bot" else "line.channel")
        chat = f"chat-{next(self.world.serial)}"
        body = {
            "chat": {"external_id": chat},
            "message": {"external_id": f"{chat}-1", "text": "Hello", "attachments": [PHOTO]},
        }
        raw = json.dumps(body).encode()
        headers = {**self.proof(channel, raw), "Content-Type": "application/json"}
        filed = ok_json(
            await self.world.client.post(
                f"/v1/channels/{channel}/messages", content=raw, headers=headers
            ),
            202,
        )
        dialog_id: int = filed["dialog_id"]
        self.first_message[dialog_id] = filed["message_id"]
        if state == "bot":
            await system.dialog_when(dialog_id, lambda d: d["status"] == "bot")
            return dialog_id
        await system.dialog_when(dialog_id, lambda d: d["offered_to"] == [ann])
        as_ann = {"operator_id": ann}
        url = f"/v1/dialogs/{dialog_id}"
        if state in ("accepted", "pinned", "closing"):
            ok_json(await system.admin.post(f"{url}/accept", json=as_ann), 200)
        if state == "pinned":
            ok_json(await system.admin.post(f"{url}/pin", json=as_ann), 200)
        if state == "closing":
            closed = ok_json(await system.admin.post(f"{url}/close"), 200)
            assert closed["status"] == "closing", closed
        return dialog_id

    async def _once(self, query: Select[Any]) -> int:
        """The query's first id, once the dialog's workflow has made it."""
        for _ in range(300):
            async with self.world.system.app.state.sessions() as session:
                found = await session.scalar(query.limit(1))
            if found is not None:
                return int(found)
            await asyncio.sleep(0.05)
        raise AssertionError(f"never found: {query}")

    async def _failed_delivery(self, webhook_id: int) -> int:
        """A delivery that failed (nothing in the API makes one on purpose)."""
        async with self.world.system.app.state.sessions() as session:
            event = Event(type="contact.deleted", data={}, dispatched_at=datetime.now(UTC))
            session.add(event)
            await session.flush()
            delivery = WebhookDelivery(
                webhook_id=webhook_id, event_id=event.id, status="failed", attempts=1
            )
            session.add(delivery)
            await session.commit()
            return delivery.id

    async def _notification(self) -> int:
        """A notification for Ann (KPI alerts make them; here it is made directly)."""
        async with self.world.system.app.state.sessions() as session:
            row = Notification(
                recipient_id=self.world.ann,
                kind="kpi.overdue",
                text="Overdue",
                key=f"overdue-{next(self.world.serial)}",
            )
            session.add(row)
            await session.commit()
            return row.id


@dataclass(frozen=True)
class Request:
    method: str
    url: str
    headers: dict[str, str]
    content: bytes


async def request_for(
    world: World, targets: Targets, route: tuple[str, str], role: Role
) -> Request:
    """The route's call as the role, on these targets (made now if need be)."""
    method, path = route
    call = MATRIX[route]
    parts = [
        await targets.code(role)
        if p == "{code}"
        else await targets.fill(p, role)
        if p.startswith("{")
        else p
        for p in path.split("/")
    ]
    body = await targets.fill(call.body, role)
    if call.as_ann and role == "admin":
        body = {**(body or {}), "operator_id": world.ann}
    raw = json.dumps(body).encode() if body is not None else b""
    headers = {"Content-Type": "application/json"} if body is not None else {}
    if role == "channel":
        headers.update(targets.proof(await targets.id(targets.name("channel_id", role)), raw))
    elif role in world.keys:
        headers["Authorization"] = f"Bearer {world.keys[role]}"
    return Request(method, "/".join(str(p) for p in parts), headers, raw)


async def answer(world: World, request: Request, stream: bool) -> tuple[int, str]:
    """The status and the body of the answer."""
    if stream:
        return await first_answer(world.system.app, request.method, request.url, request.headers)
    response = await world.client.request(
        request.method, request.url, content=request.content, headers=request.headers
    )
    return response.status_code, response.text


async def first_answer(
    app: FastAPI, method: str, url: str, headers: Mapping[str, str]
) -> tuple[int, str]:
    """The status of an answer that goes on (an event stream), and the body of one that
    ends: the app is called directly and left once it starts answering (an in-process
    httpx client would wait for the end of the stream)."""
    started, status, body = asyncio.Event(), 0, b""
    requested = False

    async def receive() -> dict[str, Any]:
        nonlocal requested
        if not requested:
            requested = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await started.wait()
        return {"type": "http.disconnect"}

    async def send(message: Mapping[str, Any]) -> None:
        nonlocal status, body
        if message["type"] == "http.response.start":
            status = message["status"]
        elif message["type"] == "http.response.body":
            body += message.get("body", b"")
            started.set()

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": url,
        "raw_path": url.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
        "client": ("127.0.0.1", 50000),
        "server": ("openlines.test", 80),
    }
    running = asyncio.create_task(app(scope, receive, send))
    answering = asyncio.create_task(started.wait())
    await asyncio.wait({running, answering}, timeout=10, return_when=asyncio.FIRST_COMPLETED)
    started.set()  # the client leaves
    try:
        await asyncio.wait_for(running, 5)
    finally:
        answering.cancel()
    return status, body.decode(errors="replace")


def operations() -> set[tuple[str, str]]:
    """Every operation of the app, as (METHOD, path template)."""
    paths = create_app(Settings()).openapi()["paths"]
    return {(method.upper(), path) for path, operations in paths.items() for method in operations}


def test_every_route_has_an_entry() -> None:
    """A new route needs an entry saying who may call it; an entry needs a route."""
    routes = operations()
    assert sorted(routes - MATRIX.keys()) == [], "routes missing from MATRIX"
    assert sorted(MATRIX.keys() - routes) == [], "MATRIX entries of no route"
    for route, call in MATRIX.items():
        assert set(call.rule) == set(ROLES), route


@pytest.mark.parametrize("route", list(MATRIX), ids=[f"{m} {p}" for m, p in MATRIX])
async def test_who_may_call(system: System, route: tuple[str, str]) -> None:
    """Denied callers first, on shared targets; then each allowed caller on its own."""
    method, path = route
    call = MATRIX[route]
    async with AsyncExitStack() as stack:
        client = await stack.enter_async_context(client_for(system.app, None))
        receiver_url = ""
        if call.channel == "webhook":
            receiver_url = (await stack.enter_async_context(serve_receiver())).url
        world = await build_world(system, client, receiver_url)
        allowed = [role for role in ROLES if isinstance(call.rule[role], Ok)]
        shared = Targets(world, call)
        calls = [(role, shared) for role in ROLES if role not in allowed]
        # A read changes nothing either: allowed readers share the targets too.
        calls += [(role, shared if method == "GET" else Targets(world, call)) for role in allowed]
        # Made at once (dialogs take a while to be offered); then called in order.
        made = [request_for(world, targets, route, role) for role, targets in calls]
        failures = []
        for (role, _), request in zip(calls, await asyncio.gather(*made), strict=True):
            status, body = await answer(world, request, call.stream)
            expected = call.rule[role]
            if not (expected.matches(status) if isinstance(expected, Ok) else status == expected):
                failures.append(
                    f"{method} {path} as {role}: expected {expected}, got {status}: {body}"
                )
        if failures:
            pytest.fail("\n".join(failures), pytrace=False)
