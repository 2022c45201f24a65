"""Operator and chat-bot actions on a dialog. Each is a Temporal update: the answer is the
dialog as the workflow left it, 409 when its state does not allow the action, 403 for
someone else's."""

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends
from pydantic import BaseModel, ConfigDict, StringConstraints
from sqlalchemy import delete
from temporalio.client import Client, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode
from temporalio.workflow import UpdateMethodMultiParam

from api.deps import DbId, DialogReader, NoNul, Principal, Reader, Session, Temporal, require
from api.errors import ApiError, invalid
from api.routes.dialogs import DialogOut, dialog_out, visible_dialog
from core.api_keys import Role
from core.models import Dialog, Message
from workflows.dialog import DialogWorkflow, workflow_id
from workflows.models import BotAction, BotReply, DialogState, OperatorAction, Reply, Transfer

router = APIRouter(prefix="/v1/dialogs", tags=["dialog actions"])


class ActBody(BaseModel):
    """An admin acts for an operator by naming it; operators act as themselves."""

    model_config = ConfigDict(extra="forbid")
    operator_id: DbId | None = None


class ReplyBody(ActBody):
    text: Annotated[str, StringConstraints(min_length=1, max_length=10000), NoNul]


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


async def run_update(
    client: Client,
    dialog: Dialog,
    update: UpdateMethodMultiParam[[DialogWorkflow, Any], DialogState],
    argument: BaseModel,
) -> DialogState:
    """Apply the action in the dialog's workflow; its refusals become 409s.

    The chat's current run gets it (a long dialog continues as new under the same id); an
    action for a dialog whose run has ended is refused by the next dialog's validators.
    """
    handle = client.get_workflow_handle_for(DialogWorkflow.run, workflow_id(dialog.chat_id))
    try:
        return await handle.execute_update(update, argument)
    except WorkflowUpdateFailedError as error:
        cause = error.cause
        reason = cause.message if isinstance(cause, ApplicationError) else str(cause)
        raise ApiError(409, reason) from None
    except RPCError as error:
        if error.status == RPCStatusCode.NOT_FOUND or "already completed" in error.message:
            raise ApiError(409, f"dialog {dialog.id} is {dialog.status}") from None
        raise


@router.post("/{dialog_id}/messages")
async def reply(
    dialog_id: int, body: ReplyBody, session: Session, client: Temporal, principal: DialogReader
) -> DialogOut:
    """Write to the client, accepting the dialog if it is only offered to you; a bot key
    writes as its bot, in a dialog it holds or stays in.

    The message is stored first (its text never enters workflow history) and removed again
    if the workflow refuses the reply.
    """
    dialog = await visible_dialog(session, principal, dialog_id)
    bot = acting_bot(dialog, principal, body) if principal.role == "bot" else None
    operator_id = acting_operator(principal, body) if bot is None else None
    message = Message(
        chat_id=dialog.chat_id,
        dialog_id=dialog.id,
        author="operator" if bot is None else "bot",
        operator_id=operator_id,
        text=body.text,
    )
    session.add(message)
    await session.commit()
    update: UpdateMethodMultiParam[[DialogWorkflow, Any], DialogState]
    request: BaseModel
    if bot is not None:
        update = DialogWorkflow.bot_reply
        request = BotReply(dialog_id=dialog.id, bot_id=bot.bot_id, message_id=message.id)
    else:
        update = DialogWorkflow.reply
        request = Reply(dialog_id=dialog.id, operator_id=operator_id, message_id=message.id)
    try:
        state = await run_update(client, dialog, update, request)
    except ApiError:
        await session.execute(delete(Message).where(Message.id == message.id))
        await session.commit()
        raise
    return DialogOut(**dialog_out(dialog, state))


class TransferBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    operator_id: DbId | None = None
    line_id: DbId | None = None


class InterceptBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    operator_id: DbId


@router.post("/{dialog_id}/transfer")
async def transfer(
    dialog_id: int, body: TransferBody, session: Session, client: Temporal, principal: Reader
) -> DialogOut:
    """To ``operator_id`` (who owns it at once) or to ``line_id`` (that line's queue).

    Its operator transfers their own dialog; a supervisor or admin any dialog.
    """
    if (body.operator_id is None) == (body.line_id is None):
        raise invalid("operator_id", "give either operator_id or line_id")
    dialog = await visible_dialog(session, principal, dialog_id)
    request = Transfer(
        dialog_id=dialog.id,
        by_supervisor=principal.role != "operator",
        operator_id=principal.operator_id,
        to_operator_id=body.operator_id,
        to_line_id=body.line_id,
    )
    state = await run_update(client, dialog, DialogWorkflow.transfer, request)
    return DialogOut(**dialog_out(dialog, state))


@router.post("/{dialog_id}/intercept")
async def intercept(
    dialog_id: int, body: InterceptBody, session: Session, client: Temporal, principal: Reader
) -> DialogOut:
    """A supervisor takes the dialog over for an operator, whatever its state."""
    if principal.role == "operator":
        raise ApiError(403, "only a supervisor or admin may intercept a dialog")
    dialog = await visible_dialog(session, principal, dialog_id)
    request = Transfer(dialog_id=dialog.id, by_supervisor=True, to_operator_id=body.operator_id)
    state = await run_update(client, dialog, DialogWorkflow.transfer, request)
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
        principal: Annotated[Principal, Depends(require(*roles))],
        body: Annotated[ActBody | None, Body()] = None,
    ) -> DialogOut:
        dialog = await visible_dialog(session, principal, dialog_id)
        action: BaseModel
        if bot_update is not None and principal.role == "bot":
            taken, action = bot_update, acting_bot(dialog, principal, body)
        elif supervisor_too:
            taken, action = update, as_owner_or_supervisor(dialog, principal, body)
        else:
            operator_id = acting_operator(principal, body)
            taken, action = update, OperatorAction(dialog_id=dialog.id, operator_id=operator_id)
        state = await run_update(client, dialog, taken, action)
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
    principal: Annotated[Principal, Depends(require("bot"))],
) -> DialogOut:
    """The bot holding the dialog passes it to the line's queue."""
    dialog = await visible_dialog(session, principal, dialog_id)
    action = acting_bot(dialog, principal, None)
    state = await run_update(client, dialog, DialogWorkflow.bot_handover, action)
    return DialogOut(**dialog_out(dialog, state))
