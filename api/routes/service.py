"""Service endpoints: liveness, readiness (the database; Temporal reported beside it),
Prometheus metrics."""

import asyncio

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from api.deps import Session, get_temporal
from api.errors import ApiError, problem_response

router = APIRouter(tags=["service"])

READY_TIMEOUT_S = 3.0


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


async def database_state(session: AsyncSession) -> str:
    """``ok``, or ``unavailable: <error>`` when the database does not answer in time."""
    try:
        await asyncio.wait_for(session.execute(text("SELECT 1")), READY_TIMEOUT_S)
        await session.commit()
    except Exception as error:
        return f"unavailable: {type(error).__name__}"
    return "ok"


async def temporal_state(request: Request) -> str:
    """``ok``, or ``unavailable: <error>`` when Temporal does not answer in time."""
    try:
        client = await asyncio.wait_for(get_temporal(request), READY_TIMEOUT_S)
        await asyncio.wait_for(client.service_client.check_health(), READY_TIMEOUT_S)
    except ApiError:  # the 503 of a failed connection
        return "unavailable: cannot connect"
    except Exception as error:
        return f"unavailable: {type(error).__name__}"
    return "ok"


@router.get("/readyz", response_model=None)
async def readyz(request: Request, session: Session) -> dict[str, str] | Response:
    """Ready while the database answers: inbound messages need nothing else (the outbox holds
    them until Temporal is back). Temporal's state is reported beside it, so that an outage
    of Temporal does not take every API replica out of rotation."""
    database, temporal = await asyncio.gather(database_state(session), temporal_state(request))
    states = {"database": database, "temporal": temporal}
    if database != "ok":
        return problem_response(503, f"not ready: database {database}", extensions=states)
    return {"status": "ready", **states}


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text"}},
)
async def metrics(request: Request) -> Response:
    """Prometheus metrics, unless they are served on their own port (``metrics_port``)."""
    if request.app.state.settings.metrics_port is not None:
        raise ApiError(404, "metrics are served on the metrics port")
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
