"""Quick answers: lists of ready replies (a title, a short code, a text) that a line offers its
operators through ``quick_answers_list_id``.

An operator types ``/`` and a few letters in the reply box; ``ranked`` orders the list's
answers for those letters, and ``filled`` puts the client's and the operator's names into the
chosen text. Lists are small (at most ``MAX_ANSWERS`` answers), so search runs over the whole
list in memory, case-insensitively.
"""

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from core.models import Base, utcnow

MAX_ANSWERS = 1000
CLIENT_NAME = "#CLIENT_NAME#"
OPERATOR_NAME = "#OPERATOR_NAME#"


class QuickAnswerList(Base):
    __tablename__ = "quick_answer_lists"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class QuickAnswer(Base):
    __tablename__ = "quick_answers"
    __table_args__ = (Index("ix_quick_answers_list_code", "list_id", "code", unique=True),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    list_id: Mapped[int] = mapped_column(ForeignKey("quick_answer_lists.id", ondelete="CASCADE"))
    title: Mapped[str] = mapped_column(String(255))
    # What the operator types after "/" to find it; unique within its list.
    code: Mapped[str] = mapped_column(String(64))
    text: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


def ranked(answers: Iterable[QuickAnswer], query: str) -> list[QuickAnswer]:
    """The answers matching ``query``, best first: short code starting with it, then short
    code containing it, then title containing it, then text containing it; within a rank by
    short code. An empty query matches every answer, by short code."""
    wanted = query.strip().casefold()

    def rank(answer: QuickAnswer) -> int | None:
        code = answer.code.casefold()
        if code.startswith(wanted):
            return 0
        if wanted in code:
            return 1
        if wanted in answer.title.casefold():
            return 2
        if wanted in answer.text.casefold():
            return 3
        return None

    found = [(r, answer) for answer in answers if (r := rank(answer)) is not None]
    found.sort(key=lambda item: (item[0], item[1].code.casefold(), item[1].id))
    return [answer for _, answer in found]


def filled(text: str, client_name: str | None, operator_name: str | None) -> str:
    """The text with ``#CLIENT_NAME#`` and ``#OPERATOR_NAME#`` replaced; a name not known is
    left out (with the space before it), so "Hello, #CLIENT_NAME#!" becomes "Hello!"."""
    for marker, name in ((CLIENT_NAME, client_name), (OPERATOR_NAME, operator_name)):
        if name:
            text = text.replace(marker, name)
        else:
            for unknown in (f", {marker}", f" {marker}", marker):
                text = text.replace(unknown, "")
    return text
