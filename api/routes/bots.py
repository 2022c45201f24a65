"""Chat-bots: registered here, named by a line's ``bot.bot_id`` and bound to ``bot`` keys.

The bot itself runs elsewhere and acts on the dialogs it holds through the dialog routes.
"""

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from api.deps import Admin, Name, Principal, Session, get_or_404, require
from api.errors import ApiError
from core.api_keys import revoke_keys_of
from core.models import Bot, Line

router = APIRouter(prefix="/v1/bots", tags=["bots"])

Supervisor = Annotated[Principal, Depends(require("admin", "supervisor"))]


class BotCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Name


class BotUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Name | None = None


class BotOut(BaseModel):
    id: int
    name: str
    created_at: datetime


def bot_out(bot: Bot) -> BotOut:
    return BotOut.model_validate(bot, from_attributes=True)


async def lines_using(session: AsyncSession, bot_id: int) -> list[int]:
    """Live lines whose dialogs go to this bot first (``bot.enabled`` with this ``bot_id``)."""
    lines = await session.scalars(select(Line).where(Line.deleted_at.is_(None)).order_by(Line.id))
    return [
        line.id
        for line in lines
        if line.settings["bot"]["enabled"] and line.settings["bot"]["bot_id"] == bot_id
    ]


@router.post("", status_code=201)
async def create_bot(body: BotCreate, session: Session, _: Admin) -> BotOut:
    bot = Bot(name=body.name)
    session.add(bot)
    await session.commit()
    return bot_out(bot)


@router.get("")
async def list_bots(session: Session, _: Supervisor) -> list[BotOut]:
    """The bots that are not deleted."""
    bots = await session.scalars(select(Bot).where(Bot.deleted_at.is_(None)).order_by(Bot.id))
    return [bot_out(bot) for bot in bots]


@router.get("/{bot_id}")
async def get_bot(bot_id: int, session: Session, _: Supervisor) -> BotOut:
    return bot_out(await get_or_404(session, Bot, bot_id, "bot"))


@router.patch("/{bot_id}")
async def update_bot(bot_id: int, body: BotUpdate, session: Session, _: Admin) -> BotOut:
    bot = await get_or_404(session, Bot, bot_id, "bot", lock=True)
    if body.name is not None:
        bot.name = body.name
    await session.commit()
    return bot_out(bot)


@router.delete("/{bot_id}", status_code=204)
async def delete_bot(bot_id: int, session: Session, _: Admin) -> None:
    """Marks the bot deleted; refused while a line hands its dialogs to it.

    The bot's row is locked first: a line enabling it at the same time either commits
    before (and is named here) or finds it deleted.
    """
    bot = await get_or_404(session, Bot, bot_id, "bot", lock=True)
    using = await lines_using(session, bot_id)
    if using:
        lines = ", ".join(str(line_id) for line_id in using)
        word = "line" if len(using) == 1 else "lines"
        raise ApiError(409, f"bot {bot_id} is enabled on {word} {lines}; disable it there first")
    bot.deleted_at = datetime.now(UTC)
    await revoke_keys_of(session, bot.deleted_at, bot_id=bot.id)
    await session.commit()
