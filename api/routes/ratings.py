"""Ratings: the client's like or dislike (web-chat buttons) and a supervisor's 1..5."""

import asyncio
from datetime import UTC, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from temporalio.client import Client, RPCTimeoutOrCancelledError
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.service import RPCError

from api.channel_auth import denied, prove_channel
from api.deps import (
    AppSettings,
    NoNul,
    Principal,
    Session,
    get_or_404,
    get_or_none,
    get_temporal,
    require,
)
from api.errors import ApiError
from api.rate_limit import check_client_ip
from api.routes.dialog_actions import expiry, not_applied, run_update
from api.routes.dialogs import DialogOut, dialog_out
from core.config import Settings
from core.models import Channel, Chat, Dialog
from workflows.dialog import DialogWorkflow
from workflows.late_rating import LateRatingWorkflow
from workflows.late_rating import workflow_id as late_rating_workflow_id
from workflows.models import ClientRating, RatingOutcome

router = APIRouter(prefix="/v1/dialogs", tags=["ratings"])

Supervisor = Annotated[Principal, Depends(require("admin", "supervisor"))]


class ClientRatingBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    value: Literal["like", "dislike"]


class SupervisorRatingBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    rating: Annotated[int, Field(ge=1, le=5)]
    comment: Annotated[str, StringConstraints(max_length=10000), NoNul] | None = None


@router.post("/{dialog_id}/rating")
async def rate_by_client(
    dialog_id: int,
    body: ClientRatingBody,
    request: Request,
    session: Session,
    settings: AppSettings,
) -> DialogOut:
    """The client's like or dislike, proven as the dialog's channel proves its requests.

    While the dialog is closing its workflow records it; after the close (``rating_wait``
    over) a short run records it on the closed dialog. 409 when no rating is awaited or the
    rating time limit is over (the client is told so in the chat too).
    """
    check_client_ip(request)
    dialog = await get_or_none(session, Dialog, dialog_id)
    if dialog is None:  # answered as a wrong secret is: dialog ids are not to be probed
        raise denied()
    chat = await session.get(Chat, dialog.chat_id)
    channel = await session.get(Channel, chat.channel_id) if chat else None
    assert chat is not None and channel is not None
    await prove_channel(request, channel, chat.external_id)
    client = await get_temporal(request)  # after the proof: a stranger learns nothing more
    await session.commit()  # the workflow's activities need the database
    rating = ClientRating(dialog_id=dialog.id, value=body.value)
    if dialog.status == "closing":
        timeout = settings.temporal_call_timeout
        state = await run_update(client, dialog, DialogWorkflow.rate, rating, timeout)
        return DialogOut(**dialog_out(dialog, state))
    if dialog.status != "closed" or dialog.rating_requested_at is None:
        raise ApiError(409, f"dialog {dialog.id} does not wait for a rating")
    outcome = await record_late(client, settings, dialog, rating)
    if not outcome.recorded:
        raise ApiError(409, outcome.reason)
    await session.refresh(dialog)
    return DialogOut(**dialog_out(dialog))


async def record_late(
    client: Client, settings: Settings, dialog: Dialog, rating: ClientRating
) -> RatingOutcome:
    """Run ``LateRatingWorkflow`` for a closed dialog's rating within the call's deadline; a
    503 when Temporal did not, and the rating carries that deadline so it is not recorded
    later."""
    timeout = settings.temporal_call_timeout
    stamped = rating.model_copy(update={"expires_at": expiry(timeout)})
    running = client.execute_workflow(
        LateRatingWorkflow.run,
        stamped,
        id=late_rating_workflow_id(rating),
        task_queue=settings.task_queue,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
    )
    try:
        return await asyncio.wait_for(running, timeout)
    except (TimeoutError, RPCTimeoutOrCancelledError):
        raise not_applied(dialog, f"Temporal did not record it within {timeout:g} s") from None
    except RPCError as error:
        raise not_applied(dialog, f"Temporal is unavailable ({error.message})") from None


@router.post("/{dialog_id}/supervisor-rating")
async def rate_by_supervisor(
    dialog_id: int, body: SupervisorRatingBody, session: Session, _: Supervisor
) -> DialogOut:
    """A supervisor's 1..5 with a comment, open or closed, independent of the client's."""
    dialog = await get_or_404(session, Dialog, dialog_id, "dialog")
    dialog.supervisor_rating = body.rating
    dialog.supervisor_comment = body.comment
    dialog.updated_at = datetime.now(UTC)
    await session.commit()
    return DialogOut(**dialog_out(dialog))
