"""Pages of a list: ``{items, next_cursor}``, newest first, ``limit`` at a time."""

from typing import Annotated, Any, Generic, TypeVar

from fastapi import Query
from pydantic import BaseModel
from sqlalchemy import Select

from api.deps import cursor_id

Limit = Annotated[int, Query(ge=1, le=200)]
Item = TypeVar("Item", bound=BaseModel)


class Page(BaseModel, Generic[Item]):
    items: list[Item]
    next_cursor: str | None


def page(query: Select[Any], model: Any, cursor: str | None, limit: int) -> Select[Any]:
    """Newest first, from after ``cursor`` (the previous page's ``next_cursor``); one row
    more than ``limit``, which says whether there is a next page."""
    if (after := cursor_id(cursor)) is not None:
        query = query.where(model.id < after)
    return query.order_by(model.id.desc()).limit(limit + 1)


def next_cursor(rows: list[Any], limit: int) -> str | None:
    return str(rows[limit - 1].id) if len(rows) > limit else None
