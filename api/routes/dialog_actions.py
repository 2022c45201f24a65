"""Operator and chat-bot actions on a dialog. Each is a Temporal update: the answer is the
dialog as the workflow left it, 409 when its state does not allow the action, 403 for
someone else's, 503 when Temporal did not apply it within the call's deadline (and then it
never will be: the action carries that deadline and the workflow refuses it later)."""

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Header
from pydantic import BaseModel, ConfigDict, StringConstraints
from sqlalchemy import delete, exists, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from temporalio.client import (
    Client,
    RPCTimeoutOrCancelledError,
    WorkflowUpdateFailedError,
)
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode
from temporalio.workflow import UpdateMethodMultiParam

from api import schema_rules
from api.deps import (
    AppSettings,
    DbId,
    DialogReader,
    NoNul,
    Principal,
    Reader,
    Session,
    Temporal,
    require,
)
from api.errors import ApiError, invalid, unavailable
from api.routes import quick_answers
from api.routes.dialogs import DialogOut, dialog_out, live_state, visible_dialog
from core.api_keys import Role
from core.events.models import Event
from core.line_settings import LineSettings
from core.models import MAX_IDEMPOTENCY_KEY, Dialog, Line, Message
from workflows.dialog import DialogWorkflow, workflow_id
from workflows.models import (
    BotAction,
    BotReply,
    ClientRating,
    DialogState,
    OperatorAction,
    Reply,
    Transfer,
)

router = APIRouter(prefix="/v1/dialogs", tags=["dialog actions"])


class ActBody(BaseModel):
    """An admin acts for an operator by naming it; operators act as themselves."""

    model_config = ConfigDict(extra="forbid")
    operator_id: DbId | None = None


class ReplyBody(ActBody):
    """The text, or a quick answer of the line's list to send (filled in for the dialog)."""

    model_config = ConfigDict(
        extra="forbid", json_schema_extra=schema_rules.exactly_one("text", "quick_answer_id")
    )
    text: Annotated[str, StringConstraints(min_length=1, max_length=10000), NoNul] | None = None
    quick_answer_id: DbId | None = None


def acting_operator(principal: Principal, body: ActBody | None) -> int:
    """The operator an action is taken as."""
    named = body.operator_id if body is not None else None
    if principal.role == "operator":
        assert principal.operator_id is not None
        if named is not None and named != principal.operator_id:
            raise ApiError(403, "an operator key acts only as its own operator")
        return principal.operator_id
    if principal.role == "admin":
        if named is None:
            raise invalid("operator_id", "required when an admin acts for an operator")
        return named
    raise ApiError(403, f"the {principal.role} role may not do this")


def acting_bot(dialog: Dialog, principal: Principal, body: ActBody | None) -> BotAction:
    """The action of a bot key's bot, which acts as nobody else."""
    assert principal.role == "bot" and principal.bot_id is not None
    if body is not None and body.operator_id is not None:
        raise ApiError(403, "a bot key acts only as its bot, not for an operator")
    return BotAction(dialog_id=dialog.id, bot_id=principal.bot_id)


def as_owner_or_supervisor(
    dialog: Dialog, principal: Principal, body: ActBody | None
) -> OperatorAction:
    """Supervisors and admins act on any dialog unless they name an operator to act as."""
    if principal.role in ("supervisor", "admin") and (body is None or body.operator_id is None):
        return OperatorAction(dialog_id=dialog.id, by_supervisor=True)
    return OperatorAction(dialog_id=dialog.id, operator_id=acting_operator(principal, body))


Action = OperatorAction | BotAction | ClientRating
"""What the API asks of a dialog's workflow (``Reply`` and ``Transfer`` are operator actions,
``BotReply`` a bot action)."""

REACH_SHARE = 0.8
"""An action must reach the workflow within this share of the call's deadline; the rest is
the workflow's time to apply it and answer, so an action applied near the deadline is still
answered as applied rather than as failed."""


def expiry(timeout: float) -> datetime:
    """The ``expires_at`` of an action sent now: after it, the workflow refuses the action."""
    return datetime.now(UTC) + timedelta(seconds=timeout * REACH_SHARE)


async def run_update(
    client: Client,
    dialog: Dialog,
    update: UpdateMethodMultiParam[[DialogWorkflow, Any], DialogState],
    action: Action,
    deadline_s: float,
    update_id: str | None = None,
) -> DialogState:
    """Apply the action in the dialog's workflow within ``deadline_s`` seconds; its refusals
    become 409s, no answer in time (no worker, Temporal down) a 503.

    The chat's current run gets it (a long dialog continues as new under the same id); an
    action for a dialog whose run has ended is refused by the next dialog's validators. An
    update waits for a worker however long it takes, so the deadline is kept here, and the
    action carries it so that a worker that comes later refuses it.
    """
    handle = client.get_workflow_handle_for(DialogWorkflow.run, workflow_id(dialog.chat_id))
    stamped = action.model_copy(update={"expires_at": expiry(deadline_s)})
    try:
        sent = handle.execute_update(update, stamped, id=update_id)
        return await asyncio.wait_for(sent, deadline_s)
    except WorkflowUpdateFailedError as error:
        cause = error.cause
        reason = cause.message if isinstance(cause, ApplicationError) else str(cause)
        if isinstance(cause, ApplicationError) and cause.type == "Unavailable":
            raise not_applied(dialog, "its database did not answer in time") from None
        raise ApiError(409, reason) from None
    except (TimeoutError, RPCTimeoutOrCancelledError):
        raise not_applied(dialog, f"Temporal did not apply it within {deadline_s:g} s") from None
    except RPCError as error:
        if error.status == RPCStatusCode.NOT_FOUND or "already completed" in error.message:
            raise ApiError(409, f"dialog {dialog.id} is {dialog.status}") from None
        raise not_applied(dialog, f"Temporal is unavailable ({error.message})") from None


def not_applied(dialog: Dialog, why: str) -> ApiError:
    """The 503 of an action that failed for lack of Temporal: it never will be applied."""
    return unavailable(f"the action on dialog {dialog.id} was not applied and will not be: {why}")


IdempotencyKey = Annotated[
    str | None, Header(alias="Idempotency-Key", min_length=1, max_length=MAX_IDEMPOTENCY_KEY)
]
"""A reply's key: a retry with the same key in the same dialog stores the message once."""


def applied_key(message: Message) -> str:
    """The key of the ``message.created`` event that the workflow's activity records when it
    applies a reply (``activities.dialogs``: ``reply``, ``bot_replied``)."""
    return f"message.created:{message.dialog_id}:{message.id}"


async def keyed_reply(session: AsyncSession, dialog_id: int, key: str) -> Message | None:
    """The reply stored under this idempotency key in this dialog, if any."""
    found = await session.scalar(
        select(Message).where(Message.dialog_id == dialog_id, Message.idempotency_key == key)
    )
    await session.commit()  # the workflow's activities need the database (SQLite)
    return found


def same_reply(stored: Message, wanted: Message) -> Message:
    """The stored reply, when a retry asks for the same one; 422 naming the header if not."""
    if (stored.author, stored.operator_id, stored.text) != (
        wanted.author,
        wanted.operator_id,
        wanted.text,
    ):
        message = "already used for a different reply in this dialog"
        field = "header.Idempotency-Key"
        raise ApiError(422, f"{field}: {message}", [{"field": field, "message": message}])
    return stored


async def stored_reply(session: AsyncSession, wanted: Message) -> tuple[Message, bool]:
    """The reply's message row, and whether it was stored before (a retry of the same key)."""
    key = wanted.idempotency_key
    if key is not None and (stored := await keyed_reply(session, wanted.dialog_id, key)):
        return same_reply(stored, wanted), True
    session.add(wanted)
    try:
        await session.commit()
    except IntegrityError:  # a concurrent request with the same key stored it first
        await session.rollback()
        assert key is not None
        stored = await keyed_reply(session, wanted.dialog_id, key)
        if stored is None:
            raise
        return same_reply(stored, wanted), True
    return wanted, False


async def was_applied(session: AsyncSession, message: Message) -> bool:
    """The workflow took this reply (its activity recorded the message)."""
    applied = await session.scalar(select(exists().where(Event.key == applied_key(message))))
    await session.commit()
    return bool(applied)


async def forget_unapplied(session: AsyncSession, message: Message) -> None:
    """Delete a reply the workflow did not take, so it does not look sent; one taken after all
    (its answer came after the deadline) stays."""
    applied = exists().where(Event.key == applied_key(message))
    await session.execute(delete(Message).where(Message.id == message.id, ~applied))
    await session.commit()


@router.post("/{dialog_id}/messages")
async def reply(
    dialog_id: int,
    body: ReplyBody,
    session: Session,
    client: Temporal,
    settings: AppSettings,
    principal: DialogReader,
    idempotency_key: IdempotencyKey = None,
) -> DialogOut:
    """Write to the client, accepting the dialog if it is only offered to you; a bot key
    writes as its bot, in a dialog it holds or stays in.

    The message is stored first (its text never enters workflow history) and removed again
    if the workflow does not take the reply. With an ``Idempotency-Key`` a retry stores it
    once: a reply the workflow took answers the dialog as it is now, one it did not (yet)
    is sent again.
    """
    if (body.text is None) == (body.quick_answer_id is None):
        raise invalid("text", "give either text or quick_answer_id")
    dialog = await visible_dialog(session, principal, dialog_id)
    bot = acting_bot(dialog, principal, body) if principal.role == "bot" else None
    operator_id = acting_operator(principal, body) if bot is None else None
    text = body.text
    if body.quick_answer_id is not None:
        text = await quick_answers.reply_text(session, dialog, body.quick_answer_id, operator_id)
    wanted = Message(
        chat_id=dialog.chat_id,
        dialog_id=dialog.id,
        author="operator" if bot is None else "bot",
        operator_id=operator_id,
        text=text,
        idempotency_key=idempotency_key,
    )
    message, retried = await stored_reply(session, wanted)
    if retried and await was_applied(session, message):
        return DialogOut(**dialog_out(dialog, await live_state(client, dialog)))
    update: UpdateMethodMultiParam[[DialogWorkflow, Any], DialogState]
    request: Action
    if bot is not None:
        update = DialogWorkflow.bot_reply
        request = BotReply(dialog_id=dialog.id, bot_id=bot.bot_id, message_id=message.id)
    else:
        update = DialogWorkflow.reply
        request = Reply(dialog_id=dialog.id, operator_id=operator_id, message_id=message.id)
    timeout = settings.temporal_call_timeout
    try:
        # One update id per message: a retry while the first is still pending in Temporal
        # waits for that one instead of sending the reply twice.
        update_id = f"reply-{message.id}"
        state = await run_update(client, dialog, update, request, timeout, update_id)
    except ApiError:
        await forget_unapplied(session, message)
        raise
    return DialogOut(**dialog_out(dialog, state))


class TransferBody(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra=schema_rules.exactly_one("operator_id", "line_id")
    )
    operator_id: DbId | None = None
    line_id: DbId | None = None


class InterceptBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    operator_id: DbId


async def check_target_line(session: AsyncSession, line_id: int) -> None:
    """A line a dialog may be transferred to: 404 naming ``line_id`` when it does not exist
    (or was deleted), 409 while it is inactive."""
    line = await session.get(Line, line_id)
    await session.commit()  # the workflow's activities need the database (SQLite)
    if line is None or line.deleted_at is not None:
        message = f"line {line_id} does not exist"
        raise ApiError(404, f"line_id: {message}", [{"field": "line_id", "message": message}])
    if not LineSettings.model_validate(line.settings).active:
        raise ApiError(409, f"line {line_id} is inactive: it takes no transfers")


@router.post("/{dialog_id}/transfer")
async def transfer(
    dialog_id: int,
    body: TransferBody,
    session: Session,
    client: Temporal,
    settings: AppSettings,
    principal: Reader,
) -> DialogOut:
    """To ``operator_id`` (who owns it at once) or to ``line_id`` (that line's queue).

    Its operator transfers their own dialog; a supervisor or admin any dialog.
    """
    if (body.operator_id is None) == (body.line_id is None):
        raise invalid("operator_id", "give either operator_id or line_id")
    dialog = await visible_dialog(session, principal, dialog_id)
    if body.line_id is not None:
        await check_target_line(session, body.line_id)
    request = Transfer(
        dialog_id=dialog.id,
        by_supervisor=principal.role != "operator",
        operator_id=principal.operator_id,
        to_operator_id=body.operator_id,
        to_line_id=body.line_id,
    )
    timeout = settings.temporal_call_timeout
    state = await run_update(client, dialog, DialogWorkflow.transfer, request, timeout)
    return DialogOut(**dialog_out(dialog, state))


@router.post("/{dialog_id}/intercept")
async def intercept(
    dialog_id: int,
    body: InterceptBody,
    session: Session,
    client: Temporal,
    settings: AppSettings,
    principal: Reader,
) -> DialogOut:
    """A supervisor takes the dialog over for an operator, whatever its state."""
    if principal.role == "operator":
        raise ApiError(403, "only a supervisor or admin may intercept a dialog")
    dialog = await visible_dialog(session, principal, dialog_id)
    request = Transfer(dialog_id=dialog.id, by_supervisor=True, to_operator_id=body.operator_id)
    timeout = settings.temporal_call_timeout
    state = await run_update(client, dialog, DialogWorkflow.transfer, request, timeout)
    return DialogOut(**dialog_out(dialog, state))


def _simple_action(
    name: str,
    update: UpdateMethodMultiParam[[DialogWorkflow, Any], DialogState],
    summary: str,
    supervisor_too: bool,
    bot_update: UpdateMethodMultiParam[[DialogWorkflow, Any], DialogState] | None = None,
) -> None:
    """Register ``POST /v1/dialogs/{id}/<name>``: an action with no arguments of its own.

    ``bot_update``: a bot key may take the action too, as this update of its bot.
    """
    roles: tuple[Role, ...] = ("admin", "supervisor", "operator")
    if bot_update is not None:
        roles = (*roles, "bot")

    async def endpoint(
        dialog_id: int,
        session: Session,
        client: Temporal,
        settings: AppSettings,
        principal: Annotated[Principal, Depends(require(*roles))],
        body: Annotated[ActBody | None, Body()] = None,
    ) -> DialogOut:
        dialog = await visible_dialog(session, principal, dialog_id)
        action: Action
        if bot_update is not None and principal.role == "bot":
            taken, action = bot_update, acting_bot(dialog, principal, body)
        elif supervisor_too:
            taken, action = update, as_owner_or_supervisor(dialog, principal, body)
        else:
            operator_id = acting_operator(principal, body)
            taken, action = update, OperatorAction(dialog_id=dialog.id, operator_id=operator_id)
        state = await run_update(client, dialog, taken, action, settings.temporal_call_timeout)
        return DialogOut(**dialog_out(dialog, state))

    router.add_api_route(
        f"/{{dialog_id}}/{name}", endpoint, methods=["POST"], name=name, summary=summary
    )


# name, update, what it does, whether a supervisor (or admin) may do it to any dialog, and
# the update a bot key's bot takes it as (None: not for bots)
for _name, _update, _summary, _supervisor_too, _bot_update in (
    ("accept", DialogWorkflow.accept, "Take a dialog offered to you", False, None),
    ("skip", DialogWorkflow.skip, "Pass the dialog on to the next operator", False, None),
    (
        "close",
        DialogWorkflow.close,
        "Close your dialog (a supervisor: any dialog; a bot: the dialog it holds)",
        True,
        DialogWorkflow.bot_close,
    ),
    ("spam", DialogWorkflow.spam, "Close as spam: no close text or rating request", True, None),
    ("pin", DialogWorkflow.pin, "Keep the dialog with you: no handover while pinned", False, None),
    ("unpin", DialogWorkflow.unpin, "Let normal timers apply again", False, None),
):
    _simple_action(_name, _update, _summary, _supervisor_too, _bot_update)


@router.post("/{dialog_id}/bot-handover")
async def bot_handover(
    dialog_id: int,
    session: Session,
    client: Temporal,
    settings: AppSettings,
    principal: Annotated[Principal, Depends(require("bot"))],
) -> DialogOut:
    """The bot holding the dialog passes it to the line's queue."""
    dialog = await visible_dialog(session, principal, dialog_id)
    action = acting_bot(dialog, principal, None)
    timeout = settings.temporal_call_timeout
    state = await run_update(client, dialog, DialogWorkflow.bot_handover, action, timeout)
    return DialogOut(**dialog_out(dialog, state))
