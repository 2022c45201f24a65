"""Service endpoints: liveness, readiness (database and Temporal), Prometheus metrics."""

import asyncio

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text

from api.deps import Session, get_temporal
from api.errors import problem_response

router = APIRouter(tags=["service"])

READY_TIMEOUT_S = 3.0


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


@router.get("/readyz", response_model=None)
async def readyz(request: Request, session: Session) -> dict[str, str] | Response:
    """The database answers and Temporal is reachable; 503 naming what is not."""
    checks: dict[str, str] = {}
    try:
        await asyncio.wait_for(session.execute(text("SELECT 1")), READY_TIMEOUT_S)
        await session.commit()
        checks["database"] = "ok"
    except Exception as error:
        checks["database"] = f"unreachable: {type(error).__name__}"
    try:
        client = await asyncio.wait_for(get_temporal(request), READY_TIMEOUT_S)
        await asyncio.wait_for(client.service_client.check_health(), READY_TIMEOUT_S)
        checks["temporal"] = "ok"
    except Exception as error:
        checks["temporal"] = f"unreachable: {type(error).__name__}"
    failing = [f"{name} {state}" for name, state in checks.items() if state != "ok"]
    if failing:
        return problem_response(503, "not ready: " + "; ".join(failing))
    return {"status": "ready", **checks}


@router.get("/metrics")
async def metrics() -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
