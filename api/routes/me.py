"""``GET /v1/me``: who the caller's key is (its role, and the operator or bot it belongs to),
what a console needs to start."""

from typing import Annotated

from fastapi import APIRouter, Depends
from pydantic import BaseModel

from api.deps import Principal, ReadSession, authenticate
from core.api_keys import Role
from core.models import Bot, Operator

router = APIRouter(tags=["api-keys"])


class Me(BaseModel):
    role: Role
    key_id: int | None  # None: the bootstrap admin key
    operator_id: int | None
    operator_name: str | None
    bot_id: int | None
    bot_name: str | None


@router.get("/v1/me")
async def me(session: ReadSession, principal: Annotated[Principal, Depends(authenticate)]) -> Me:
    operator = await session.get(Operator, principal.operator_id) if principal.operator_id else None
    bot = await session.get(Bot, principal.bot_id) if principal.bot_id else None
    return Me(
        role=principal.role,
        key_id=principal.key_id,
        operator_id=principal.operator_id,
        operator_name=operator.name if operator else None,
        bot_id=principal.bot_id,
        bot_name=bot.name if bot else None,
    )
