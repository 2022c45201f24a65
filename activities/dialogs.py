"""The dialog workflow's database work: offers, accepts, replies and the dialog projection.

Each method is one transaction and safe to run twice (Temporal retries activities): an accept
that already happened answers as accepted, a projection writes the same row again.
"""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity

from channels import delivery
from core import bots, routing
from core.crm import forwarding, leads
from core.events.publish import record, recorded
from core.inbound import message_created
from core.line_settings import LineSettings
from core.metrics import HANDOVERS
from core.models import CLOSED_DIALOG_STATUSES, Chat, Dialog, Line, Message, Operator
from core.worktime import is_working_time
from workflows.models import (
    ActionOutcome,
    BotReply,
    OperatorAction,
    Projection,
    Reply,
    Routing,
    RoutingRequest,
    Transfer,
)


async def routing_of(
    session: AsyncSession,
    dialog: Dialog,
    settings: LineSettings,
    at: datetime,
    took: bool = False,
) -> Routing:
    """The dialog's offer, and the line's rules its timers follow, as the workflow needs them.

    ``took``: the line's chat-bot took the dialog in this transaction.
    """
    return Routing(
        operator_id=dialog.operator_id,
        offered_to=list(dialog.offered_to),
        offered_at=dialog.offered_at,
        handover_after=settings.queue.handover_after,
        line_id=dialog.line_id,
        line_active=settings.active,
        check_availability=settings.queue.check_availability,
        no_answer_after=settings.no_answer.after,
        inactivity_after=settings.inactivity.after,
        off_hours_text=settings.worktime.enabled and settings.worktime.off_hours_action == "text",
        nobody_available=dialog.status != "bot"
        and await routing.nobody_available(session, dialog, settings, at),
        kpi_first_answer=settings.kpi.first_answer.limit,
        kpi_further_answer=settings.kpi.further_answer.limit,
        bot_id=dialog.bot_id,
        bot_took=took,
        bot_handover_after=settings.bot.handover_after,
        final_status=dialog.status if ended(dialog) else None,
        final_reason=dialog.close_reason if ended(dialog) else None,
    )


def ended(dialog: Dialog) -> bool:
    """The dialog is closed for good: no routing or action changes its row any more (a run
    started by a message delivered again after the dialog's run completed changes nothing)."""
    return dialog.status in CLOSED_DIALOG_STATUSES


def refused_as_ended(dialog: Dialog) -> str:
    return f"dialog {dialog.id} is {dialog.status}"


def take(dialog: Dialog, action: OperatorAction) -> bool:
    """The operator becomes the owner, if the dialog is offered to them and nobody owns it."""
    if dialog.operator_id is not None or action.operator_id not in dialog.offered_to:
        return False
    dialog.operator_id = dialog.holder_id = action.operator_id
    dialog.offered_to = []
    dialog.waiting_since = None
    dialog.accepted_at = action.at or datetime.now(UTC)
    dialog.answered = False  # not yet by the operator who holds it now
    dialog.unanswered = False  # someone took it
    return True


def accepted(session: AsyncSession, dialog: Dialog) -> None:
    """Tell the operator's console (and webhooks) the dialog is theirs."""
    operator_ids = [dialog.operator_id] if dialog.operator_id else []
    record(session, "dialog.accepted", dialog_id=dialog.id, operator_ids=operator_ids)


def transferred(
    session: AsyncSession,
    dialog: Dialog,
    to_operator_id: int | None = None,
    to_line_id: int | None = None,
) -> None:
    operator_ids = [to_operator_id] if to_operator_id else []
    record(
        session,
        "dialog.transferred",
        dialog_id=dialog.id,
        operator_ids=operator_ids,
        to_operator_id=to_operator_id,
        to_line_id=to_line_id,
    )


class DialogActivities:
    """Activities of ``DialogWorkflow``, sharing the worker's database sessions."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    @asynccontextmanager
    async def _locked(
        self, dialog_id: int
    ) -> AsyncIterator[tuple[AsyncSession, Dialog, LineSettings]]:
        """A transaction holding the dialog's line lock, with the dialog and line settings."""
        async with self._sessions() as session, session.begin():
            dialog = await session.get(Dialog, dialog_id)
            if dialog is None:
                raise LookupError(f"dialog {dialog_id} does not exist")
            settings = await routing.lock_line(session, dialog.line_id)
            await session.refresh(dialog)  # read again under the lock
            yield session, dialog, settings

    @activity.defn
    async def enter_queue(self, request: RoutingRequest) -> Routing:
        """The dialog joins its line's waiting queue and is offered if anyone can take it;
        a new dialog goes to the line's chat-bot first if it has one for it."""
        async with self._locked(request.dialog_id) as (session, dialog, settings):
            if ended(dialog):
                return await routing_of(session, dialog, settings, request.at)
            if request.run_id is not None:
                dialog.run_id = request.run_id
            if request.bot_may_take and dialog.status == "bot":  # this ran before
                return await routing_of(session, dialog, settings, request.at, took=True)
            if (
                request.bot_may_take
                and dialog.status == "new"  # not a retry after the dialog went to the queue
                and (bot_id := await bots.taker(session, dialog, settings))
            ):
                dialog.status, dialog.bot_id = "bot", bot_id
                record(session, "dialog.bot", dialog_id=dialog.id, bot_id=bot_id)
                return await routing_of(session, dialog, settings, request.at, took=True)
            if dialog.bot_id is not None:  # handed over by the bot, or reopened after a close
                bots.leaves(dialog, settings)
            if dialog.operator_id is None and not dialog.offered_to:
                routing.withdraw_offer(dialog, request.at)
                dialog.status = "queued"
                if not await forwarding.offer_to_responsible(session, dialog, settings, request.at):
                    await routing.serve_queue(session, dialog, settings, request.at)
            return await routing_of(session, dialog, settings, request.at)

    @activity.defn
    async def current_routing(self, request: RoutingRequest) -> Routing:
        """The dialog's offer now (after a wake-up), serving the queue if it still waits."""
        async with self._locked(request.dialog_id) as (session, dialog, settings):
            if dialog.waiting_since is not None and not dialog.offered_to:
                await routing.serve_queue(session, dialog, settings, request.at)
            return await routing_of(session, dialog, settings, request.at)

    @activity.defn
    async def check_owner(self, request: RoutingRequest) -> Routing:
        """The client wrote: with availability checking, a dialog whose owner is away goes
        back to the queue, unless it is pinned or the owner is the line's only member."""
        async with self._locked(request.dialog_id) as (session, dialog, settings):
            owner = await session.get(Operator, dialog.operator_id) if dialog.operator_id else None
            if (
                not ended(dialog)
                and owner is not None
                and settings.queue.check_availability
                and not dialog.pinned
                and not routing.is_available(owner, True, request.at)
                and await routing.member_ids(session, settings.queue) != [owner.id]
            ):
                routing.requeue(dialog, request.at)
                await routing.serve_queue(session, dialog, settings, request.at)
            return await routing_of(session, dialog, settings, request.at)

    @activity.defn
    async def hand_over(self, request: RoutingRequest) -> Routing:
        """Nobody accepted in time: the offer moves on by the line's distribution mode."""
        async with self._locked(request.dialog_id) as (session, dialog, settings):
            line_id = dialog.line_id
            moved = dialog.operator_id is None and dialog.offered_at == request.offered_at
            if moved:
                routing.withdraw_offer(dialog, request.at)
                await routing.serve_queue(session, dialog, settings, request.at)
            now_routed = await routing_of(session, dialog, settings, request.at)
        if moved:  # committed
            HANDOVERS.labels(line_id).inc()
        return now_routed

    @activity.defn
    async def accept(self, action: OperatorAction) -> ActionOutcome:
        at = action.at or datetime.now(UTC)
        async with self._locked(action.dialog_id) as (session, dialog, settings):
            if ended(dialog):
                return ActionOutcome(ok=False, reason=refused_as_ended(dialog))
            if dialog.operator_id == action.operator_id:
                return ActionOutcome(
                    ok=True, routing=await routing_of(session, dialog, settings, at)
                )  # a retry
            first = dialog.accepted_at is None  # nobody has owned the dialog before
            if not take(dialog, action):
                return ActionOutcome(
                    ok=False,
                    reason=f"dialog {dialog.id} is not offered to operator {action.operator_id}",
                    routing=await routing_of(session, dialog, settings, at),
                )
            dialog.status = "accepted"
            accepted(session, dialog)
            if first:
                await leads.first_owner(session, dialog, action.operator_id)
            return ActionOutcome(ok=True, routing=await routing_of(session, dialog, settings, at))

    @activity.defn
    async def skip(self, action: OperatorAction) -> ActionOutcome:
        """The operator passes the dialog on; it goes to the next one by distribution mode.

        Under ``all`` an offer skipped by one of several operators stays with the others
        (their handover time unchanged); once nobody is left it is offered again.
        """
        at = action.at or datetime.now(UTC)
        async with self._locked(action.dialog_id) as (session, dialog, settings):
            held = dialog.operator_id == action.operator_id
            offered = action.operator_id in dialog.offered_to
            if ended(dialog) or not (held or offered):
                reason = (
                    refused_as_ended(dialog)
                    if ended(dialog)
                    else f"dialog {dialog.id} is neither offered to nor held by operator "
                    f"{action.operator_id}"
                )
                routing_now = await routing_of(session, dialog, settings, at)
                return ActionOutcome(ok=False, reason=reason, routing=routing_now)
            others = [i for i in dialog.offered_to if i != action.operator_id]
            if not held and others and settings.queue.distribution == "all":
                dialog.offered_to = others
            else:
                routing.requeue(dialog, at)
                dialog.last_offered_id = action.operator_id
                await routing.serve_queue(session, dialog, settings, at)
            return ActionOutcome(ok=True, routing=await routing_of(session, dialog, settings, at))

    @activity.defn
    async def transfer(self, transfer: Transfer) -> ActionOutcome:
        """To an operator: they own it at once. To a line: its queue, under its settings.

        A transfer is a person's decision, so the new owner's dialog limit does not apply.
        """
        at = transfer.at or datetime.now(UTC)
        async with self._locked(transfer.dialog_id) as (session, dialog, settings):
            if ended(dialog):
                return ActionOutcome(ok=False, reason=refused_as_ended(dialog))
            if transfer.to_operator_id is not None:
                target = await session.get(Operator, transfer.to_operator_id)
                if target is None or target.fired:
                    reason = f"operator {transfer.to_operator_id} cannot take dialogs"
                    return ActionOutcome(ok=False, reason=reason)
                if dialog.operator_id == target.id:  # this activity ran before: done
                    return ActionOutcome(
                        ok=True, routing=await routing_of(session, dialog, settings, at)
                    )
                if dialog.status == "bot":
                    bots.leaves(dialog, settings)
                first = dialog.accepted_at is None  # nobody has owned the dialog before
                dialog.operator_id = dialog.holder_id = target.id
                dialog.offered_to = []
                dialog.waiting_since = None
                dialog.accepted_at = at
                dialog.answered = False  # not yet by its new owner
                dialog.unanswered = False  # someone has it
                dialog.status = "accepted"
                dialog.outside_queue = True  # theirs, member of the queue or not
                transferred(session, dialog, to_operator_id=target.id)
                if first:
                    await leads.first_owner(session, dialog, target.id)
                if settings.crm.transfer_changes_responsible:
                    await leads.responsible_changed(session, dialog, target.id)
                await routing.serve_queue(session, dialog, settings, at)  # the old owner's place
                return ActionOutcome(
                    ok=True, routing=await routing_of(session, dialog, settings, at)
                )
            assert transfer.to_line_id is not None
            old_line = dialog.line_id
            if old_line == transfer.to_line_id:  # this activity ran before: done
                return ActionOutcome(
                    ok=True, routing=await routing_of(session, dialog, settings, at)
                )
            target_line = await session.get(Line, transfer.to_line_id)
            if target_line is None or target_line.deleted_at is not None:
                return ActionOutcome(ok=False, reason=f"line {transfer.to_line_id} does not exist")
            new_settings = await routing.lock_line(session, transfer.to_line_id)
            if not new_settings.active:
                reason = f"line {transfer.to_line_id} is inactive: it takes no dialogs"
                return ActionOutcome(ok=False, reason=reason)
            if dialog.status == "bot":
                bots.leaves(dialog, settings)
            dialog.line_id = transfer.to_line_id
            dialog.last_offered_id = None
            dialog.waiting_since = None  # joins the new line's queue now, at its end
            routing.requeue(dialog, at)
            dialog.status = "queued"
            transferred(session, dialog, to_line_id=dialog.line_id)
            freed = await routing.assign_waiting(session, old_line, settings, at)
            routing.wake(session, freed.to_wake)
            await routing.serve_queue(session, dialog, new_settings, at)
            return ActionOutcome(
                ok=True, routing=await routing_of(session, dialog, new_settings, at)
            )

    @activity.defn
    async def reply(self, reply: Reply) -> ActionOutcome:
        """Record that the operator answered, accepting the dialog if it was only offered to
        them. Refused, changing nothing, while the line is inactive."""
        at = reply.at or datetime.now(UTC)
        async with self._locked(reply.dialog_id) as (session, dialog, settings):
            if ended(dialog):
                return ActionOutcome(ok=False, reason=refused_as_ended(dialog))
            if not settings.active:
                reason = f"line {dialog.line_id} is inactive: replies are refused"
                return ActionOutcome(
                    ok=False, reason=reason, routing=await routing_of(session, dialog, settings, at)
                )
            if dialog.operator_id != reply.operator_id:
                first = dialog.accepted_at is None  # nobody has owned the dialog before
                if not take(dialog, reply):
                    return ActionOutcome(
                        ok=False,
                        reason=f"dialog {dialog.id} is not offered to operator {reply.operator_id}",
                        routing=await routing_of(session, dialog, settings, at),
                    )
                accepted(session, dialog)
                if first:
                    await leads.first_owner(session, dialog, reply.operator_id)
            if reply.kpi is not None:  # the workflow's numbers: written as they are, not added
                dialog.first_answer_s = reply.kpi.first_answer_s
                dialog.total_answer_s = reply.kpi.total_answer_s
                dialog.answers = reply.kpi.answers
                dialog.max_answer_s = reply.kpi.max_answer_s
            dialog.answered = True
            dialog.unanswered = False
            dialog.status = "operator_replied"
            # The API stored the message; it stands now that the reply is accepted.
            key = f"message.created:{dialog.id}:{reply.message_id}"
            if not await recorded(session, key):  # once, if this activity runs twice
                record(
                    session,
                    "message.created",
                    dialog_id=dialog.id,
                    operator_ids=[reply.operator_id] if reply.operator_id else [],
                    key=key,
                    message_id=reply.message_id,
                    author="operator",
                )
                message = await session.get(Message, reply.message_id)
                if message is not None:  # removed again meanwhile: nothing to deliver
                    delivery.owe(session, dialog, message)
            # Under `answered` and `awaiting_client` the reply frees a place in the limit.
            await routing.serve_queue(session, dialog, settings, at)
            return ActionOutcome(
                ok=True,
                routing=await routing_of(session, dialog, settings, at),
                working_hours=is_working_time(settings.worktime, at)
                if settings.worktime.enabled
                else None,
            )

    @activity.defn
    async def bot_replied(self, reply: BotReply) -> None:
        """The bot's message, stored by the API, stands now that the workflow accepted it."""
        async with self._sessions() as session, session.begin():
            key = f"message.created:{reply.dialog_id}:{reply.message_id}"
            if await recorded(session, key):  # this activity ran before
                return
            dialog = await session.get(Dialog, reply.dialog_id)
            message = await session.get(Message, reply.message_id)
            assert dialog is not None and message is not None
            message_created(session, dialog, message, key)  # the operator's console too
            delivery.owe(session, dialog, message)

    @activity.defn
    async def project(self, projection: Projection) -> bool:
        """Copy the workflow's state to the dialog row; a close frees the operator's place.

        A close is refused (False) while the dialog has a client message the workflow has
        not seen yet: it was filed under this dialog, so the dialog must stay open for it.
        The chat's lock makes this exact against a message being filed right now. A row that
        is closed already stays as it is.
        """
        async with self._locked(projection.dialog_id) as (session, dialog, settings):
            closing = projection.status in CLOSED_DIALOG_STATUSES
            if ended(dialog):
                return closing  # a retry of the close that ended it; nothing else changes it
            if closing and await self._has_unseen_message(session, dialog, projection):
                return False
            # The owner is not copied: only routing transactions change it. A run that has
            # not yet learnt of one (its wake-up is on the way) does not write the status it
            # had under the old owner: the load counts would go by it.
            if (
                closing
                or projection.status == "closing"
                or (projection.operator_id == dialog.operator_id)
            ):
                dialog.status = projection.status
                dialog.close_reason = projection.close_reason
            dialog.pinned = projection.pinned
            dialog.run_id = projection.run_id
            if closing:
                dialog.closed_at = projection.closed_at
                routing.leave_queue(dialog)
                record(
                    session,
                    "dialog.closed",
                    dialog_id=dialog.id,
                    operator_ids=[dialog.operator_id] if dialog.operator_id else [],
                    status=projection.status,
                    close_reason=projection.close_reason,
                )
                await routing.serve_queue(
                    session, dialog, settings, projection.closed_at or datetime.now(UTC)
                )
            return True

    @staticmethod
    async def _has_unseen_message(
        session: AsyncSession, dialog: Dialog, projection: Projection
    ) -> bool:
        """A client message of the dialog that is not among those the run has seen (by id,
        not by order: two workers may deliver a chat's messages out of order)."""
        await session.execute(select(Chat.id).where(Chat.id == dialog.chat_id).with_for_update())
        unseen = select(Message.id).where(
            Message.dialog_id == dialog.id,
            Message.author == "client",
            Message.id > projection.seen_up_to,
        )
        if projection.seen_message_ids:
            unseen = unseen.where(Message.id.not_in(projection.seen_message_ids))
        return await session.scalar(unseen.limit(1)) is not None
