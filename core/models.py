"""Database tables. The dialog rows are a projection of workflow state used for lists."""

from datetime import UTC, datetime
from typing import Any, ClassVar, get_args

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

from core import tracing
from core.secrets_at_rest import EncryptedString, SecretsInJson
from workflows.models import FINAL_STATUSES, Status


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """An aware UTC datetime on every backend (SQLite would hand back naive values)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        datetime: UTCDateTime(),
        dict[str, Any]: JSON,
    }


class Operator(Base):
    __tablename__ = "operators"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(255))
    email: Mapped[str | None] = mapped_column(String(320))
    position: Mapped[str | None] = mapped_column(String(255))
    avatar_url: Mapped[str | None] = mapped_column(String(2048))
    fired: Mapped[bool] = mapped_column(Boolean, default=False)
    fired_at: Mapped[datetime | None]
    vacation_until: Mapped[datetime | None]
    presence: Mapped[str] = mapped_column(String(16), default="offline")
    workday: Mapped[str] = mapped_column(String(16), default="ended")
    # For `evenly` distribution: who was least recently offered a dialog goes first.
    last_offered_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Department(Base):
    __tablename__ = "departments"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class DepartmentMember(Base):
    """An operator in a department; ``position`` keeps the order the admin gave."""

    __tablename__ = "department_members"

    department_id: Mapped[int] = mapped_column(
        ForeignKey("departments.id", ondelete="CASCADE"), primary_key=True
    )
    operator_id: Mapped[int] = mapped_column(
        ForeignKey("operators.id", ondelete="CASCADE"), primary_key=True
    )
    position: Mapped[int] = mapped_column(Integer)


class Line(Base):
    """A line: its settings are stored whole, validated, with every default filled in.

    Deleting a line only marks it deleted, so its dialogs and messages stay in history.
    """

    __tablename__ = "lines"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    settings: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    deleted_at: Mapped[datetime | None]


_LIVE_CHANNEL = text("deleted_at IS NULL")


# Config keys whose values are secrets, whatever the connector: a Telegram bot's token and
# the secret Telegram sends back with each update.
CHANNEL_CONFIG_SECRETS = frozenset({"bot_token", "webhook_secret"})


class Channel(Base):
    """A channel connected to a line; at most one live channel of each type per line."""

    __tablename__ = "channels"
    __table_args__ = (
        Index(
            "uq_channels_line_type",
            "line_id",
            "type",
            unique=True,
            sqlite_where=_LIVE_CHANNEL,
            postgresql_where=_LIVE_CHANNEL,
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    line_id: Mapped[int] = mapped_column(ForeignKey("lines.id"), index=True)
    type: Mapped[str] = mapped_column(String(16))
    # Its secret values (a connector's ``hidden_config``) are encrypted like ``secret``.
    config: Mapped[dict[str, Any]] = mapped_column(
        SecretsInJson("channels.config", CHANNEL_CONFIG_SECRETS), default=dict
    )
    # Kept readable: webhook channels verify HMAC signatures with it. Stored encrypted when
    # OPENLINES_SECRET_KEY is set (``core/secrets_at_rest.py``), hence the length.
    secret: Mapped[str] = mapped_column(EncryptedString(1024, "channels.secret"))
    # After a rotation the old secret still verifies until then (senders switch over).
    previous_secret: Mapped[str | None] = mapped_column(
        EncryptedString(1024, "channels.previous_secret")
    )
    previous_secret_until: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    deleted_at: Mapped[datetime | None]


class Chat(Base):
    """One client on one channel of one line."""

    __tablename__ = "chats"
    __table_args__ = (UniqueConstraint("channel_id", "external_id", name="uq_chats_channel_ext"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    channel_id: Mapped[int] = mapped_column(ForeignKey("channels.id"))
    line_id: Mapped[int] = mapped_column(ForeignKey("lines.id"), index=True)
    external_id: Mapped[str] = mapped_column(String(255))
    name: Mapped[str | None] = mapped_column(String(255))
    phone: Mapped[str | None] = mapped_column(String(64))
    email: Mapped[str | None] = mapped_column(String(320))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # The personal-data notice went out: the client's next message (after this one) consents.
    consent_agreement_id: Mapped[int | None]
    consent_version: Mapped[int | None]
    consent_after_message_id: Mapped[int | None]
    # The CRM contact the chat tracker recognised the client as.
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("contacts.id"), index=True)


_UNOFFERED = text("waiting_since IS NOT NULL AND offered_at IS NULL AND operator_id IS NULL")


class Dialog(Base):
    """One dialog: its status mirrors the workflow; its offer is decided here.

    The workflow owns the status. The offer (who may accept) is written by the routing
    transaction, which sees every operator's load at once; that is how capacity holds.
    """

    __tablename__ = "dialogs"
    __table_args__ = (
        Index("ix_dialogs_line_holder", "line_id", "holder_id"),
        Index("ix_dialogs_line_waiting", "line_id", "waiting_since"),
        # The line's queue as routing serves it: waiting, on offer to nobody, oldest first.
        Index(
            "ix_dialogs_line_unoffered",
            "line_id",
            "waiting_since",
            sqlite_where=_UNOFFERED,
            postgresql_where=_UNOFFERED,
        ),
        Index("ix_dialogs_chat_status", "chat_id", "status"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    line_id: Mapped[int] = mapped_column(ForeignKey("lines.id"), index=True)
    chat_id: Mapped[int] = mapped_column(ForeignKey("chats.id"))
    channel_type: Mapped[str] = mapped_column(String(16), default="api")
    status: Mapped[str] = mapped_column(String(32), index=True)
    close_reason: Mapped[str | None] = mapped_column(String(32))
    # The operator who accepted it (its owner).
    operator_id: Mapped[int | None] = mapped_column(ForeignKey("operators.id"), index=True)
    # Whose capacity it takes: the owner, or the one operator it is offered to.
    holder_id: Mapped[int | None] = mapped_column(ForeignKey("operators.id"))
    offered_to: Mapped[list[int]] = mapped_column(JSON, default=list)
    offered_at: Mapped[datetime | None]
    # Set while the dialog waits for an operator; the queue is served oldest first.
    waiting_since: Mapped[datetime | None]
    # For `strictly`: the member offered last, so the next offer goes to the one after.
    last_offered_id: Mapped[int | None] = mapped_column(Integer)
    answered: Mapped[bool] = mapped_column(Boolean, default=False)
    # Waited ``no_answer.after`` without an accept; an accept or a reply clears it.
    unanswered: Mapped[bool] = mapped_column(Boolean, default=False)
    pinned: Mapped[bool] = mapped_column(Boolean, default=False)
    # The chat-bot that holds it (status ``bot``) or stays in it (``bot.leave: close``).
    bot_id: Mapped[int | None] = mapped_column(ForeignKey("bots.id"), index=True)
    run_id: Mapped[str | None] = mapped_column(String(64))
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    # A web chat visitor with an email got the closed dialog's transcript then.
    transcript_sent_at: Mapped[datetime | None]
    accepted_at: Mapped[datetime | None]
    closed_at: Mapped[datetime | None]
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    # The client was asked to rate the dialog (``rating.time_limit`` counts from here).
    rating_requested_at: Mapped[datetime | None]
    client_rating: Mapped[str | None] = mapped_column(String(16))  # like | dislike
    client_rated_at: Mapped[datetime | None]
    supervisor_rating: Mapped[int | None]
    supervisor_comment: Mapped[str | None] = mapped_column(String)
    # CRM: the client's contact; whether the client was known when the session started
    # (a known client gets no lead); whether a lead was asked for (one per dialog).
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("contacts.id"), index=True)
    client_known: Mapped[bool] = mapped_column(Boolean, default=False)
    lead_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    # Offered or handed to an operator outside the line's queue (the client's responsible,
    # or a transfer): rebalancing the queue leaves that operator's hold alone.
    outside_queue: Mapped[bool] = mapped_column(Boolean, default=False)
    # KPI: seconds from a client message to the operator reply that answered it.
    first_answer_s: Mapped[int | None]
    total_answer_s: Mapped[int] = mapped_column(Integer, default=0)
    answers: Mapped[int] = mapped_column(Integer, default=0)
    max_answer_s: Mapped[int | None]
    kpi_overdue: Mapped[int] = mapped_column(Integer, default=0)  # overdue KPI items


_CLIENT_MESSAGE = text("external_id IS NOT NULL")
_AUTOMATIC_TEXT = text("outbound_key IS NOT NULL")
_KEYED_REPLY = text("idempotency_key IS NOT NULL")

MAX_IDEMPOTENCY_KEY = 200
"""Longest ``Idempotency-Key`` header a reply may carry."""


class Message(Base):
    """Every message of every dialog; bodies live here, never in workflow history."""

    __tablename__ = "messages"
    __table_args__ = (
        Index("ix_messages_dialog", "dialog_id", "id"),
        Index("ix_messages_chat", "chat_id", "id"),  # a web chat visitor's history
        Index("ix_messages_operator", "operator_id", "created_at"),  # operators' KPI
        Index(
            "uq_messages_chat_external",
            "chat_id",
            "external_id",
            unique=True,
            sqlite_where=_CLIENT_MESSAGE,
            postgresql_where=_CLIENT_MESSAGE,
        ),
        Index(
            "uq_messages_outbound_key",
            "outbound_key",
            unique=True,
            sqlite_where=_AUTOMATIC_TEXT,
            postgresql_where=_AUTOMATIC_TEXT,
        ),
        Index(
            "uq_messages_dialog_idempotency_key",
            "dialog_id",
            "idempotency_key",
            unique=True,
            sqlite_where=_KEYED_REPLY,
            postgresql_where=_KEYED_REPLY,
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    chat_id: Mapped[int] = mapped_column(ForeignKey("chats.id"))
    dialog_id: Mapped[int] = mapped_column(ForeignKey("dialogs.id"))
    author: Mapped[str] = mapped_column(String(16))
    operator_id: Mapped[int | None] = mapped_column(ForeignKey("operators.id"))
    # The channel's own message id, for client messages: a re-sent message is stored once.
    external_id: Mapped[str | None] = mapped_column(String(255))
    # For automatic texts: what the text answers, so a retried activity sends it once.
    outbound_key: Mapped[str | None] = mapped_column(String(128))
    # For replies: the caller's ``Idempotency-Key``, so a retried reply is stored once.
    idempotency_key: Mapped[str | None] = mapped_column(String(MAX_IDEMPOTENCY_KEY))
    text: Mapped[str] = mapped_column(String)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Messages to the client: pending, sent, delivered, read or failed (``channels.delivery``),
    # the channel's last error, and when the channel took it.
    delivery_status: Mapped[str | None] = mapped_column(String(16))
    delivery_error: Mapped[str | None] = mapped_column(String(500))
    delivered_at: Mapped[datetime | None]
    # Files the client sent, by reference (``core.inbound.InboundAttachment``, dumped).
    attachments: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON)
    # A web chat reply the visitor had not read was emailed to them then (``webchat.emails``).
    emailed_at: Mapped[datetime | None]


# The author of a note: a message in the dialog for its readers that the client never sees
# (``channels.delivery`` writes one when a message did not reach the client).
NOTE = "note"

_UNDELIVERED = text("delivered_at IS NULL")


class Outbox(Base):
    """Signals owed to workflows, committed with the change that owes them.

    The relay delivers them and marks them delivered; until then it retries, so nothing
    committed is lost if the process dies in between.
    """

    __tablename__ = "outbox"
    __table_args__ = (
        Index(
            "ix_outbox_undelivered", "id", sqlite_where=_UNDELIVERED, postgresql_where=_UNDELIVERED
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # "message", "rating", "wake", "line_deleted", "lead" (create the dialog's lead),
    # "lead_owner" (tell the CRM the lead's new responsible), "vacation" (to an operator) or
    # "deliver" (send the message to the client through its channel)
    kind: Mapped[str] = mapped_column(String(16))
    dialog_id: Mapped[int | None] = mapped_column(ForeignKey("dialogs.id"))
    operator_id: Mapped[int | None] = mapped_column(ForeignKey("operators.id"))
    message_id: Mapped[int | None] = mapped_column(ForeignKey("messages.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # A relay is delivering the row until then (see relay.py).
    claimed_until: Mapped[datetime | None]
    delivered_at: Mapped[datetime | None]
    # The W3C traceparent of the span that wrote the row (tracing on), so the relay's
    # delivery continues that trace; None with tracing off.
    trace_context: Mapped[str | None] = mapped_column(
        String(55), default=tracing.current_traceparent
    )


class ApiKey(Base):
    """A bearer key; only its SHA-256 is stored, the key itself is shown once."""

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    role: Mapped[str] = mapped_column(String(16))
    operator_id: Mapped[int | None] = mapped_column(ForeignKey("operators.id", ondelete="CASCADE"))
    bot_id: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None]


class Bot(Base):
    """A registered chat-bot: a line with ``bot.enabled`` hands new dialogs to it first.

    The bot itself runs elsewhere and acts through the API with a ``bot`` key bound to it.
    Deleting a bot only marks it, so the dialogs it held keep their history.
    """

    __tablename__ = "bots"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    deleted_at: Mapped[datetime | None]


class Agreement(Base):
    """A personal-data agreement; changing its text makes a new version."""

    __tablename__ = "agreements"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(255))
    text: Mapped[str] = mapped_column(String)
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class AgreementVersion(Base):
    """Each text an agreement has had, so a consent points at the words it agreed to."""

    __tablename__ = "agreement_versions"
    __table_args__ = (UniqueConstraint("agreement_id", "version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    agreement_id: Mapped[int] = mapped_column(ForeignKey("agreements.id", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column(Integer)
    text: Mapped[str] = mapped_column(String)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Consent(Base):
    """A client's consent: who, when, to which agreement version, through which channel."""

    __tablename__ = "consents"
    __table_args__ = (Index("ix_consents_agreement", "agreement_id", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    agreement_id: Mapped[int] = mapped_column(ForeignKey("agreements.id", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column(Integer)
    chat_id: Mapped[int] = mapped_column(ForeignKey("chats.id"), index=True)
    channel_id: Mapped[int] = mapped_column(ForeignKey("channels.id"))
    channel_type: Mapped[str] = mapped_column(String(16))
    dialog_id: Mapped[int] = mapped_column(ForeignKey("dialogs.id"))
    # The message that gave consent; one consent per message, however often it is retried.
    message_id: Mapped[int] = mapped_column(ForeignKey("messages.id"), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


# The tables of the CRM, events and quick answers live beside their code; one metadata holds
# them all.
from core import quick_answers as _quick_answers  # noqa: E402, F401
from core.crm import models as _crm_models  # noqa: E402, F401
from core.events import models as _event_models  # noqa: E402, F401

CLOSED_DIALOG_STATUSES: tuple[str, ...] = FINAL_STATUSES
MAX_ID = 2**31 - 1
"""Ids are 32-bit INTEGER columns: PostgreSQL answers a larger value with an error, not a miss."""

OPEN_DIALOG_STATUSES = tuple(s for s in get_args(Status) if s not in FINAL_STATUSES)


# Ids are never reused, even after rows are deleted: workflow ids are made from them
# (``chat-<id>``), and a reused id would signal an old dialog's workflow.
for _table in Base.metadata.tables.values():
    if "id" in _table.c:
        _table.dialect_kwargs["sqlite_autoincrement"] = True
