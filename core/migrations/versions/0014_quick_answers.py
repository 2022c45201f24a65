"""quick answers: lists of ready replies (title, short code, text) that lines offer operators

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-02 09:00:00

A line names its list in ``quick_answers_list_id``; an answer's short code is unique within
its list, and deleting a list deletes its answers.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "quick_answer_lists",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "quick_answers",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "list_id",
            sa.Integer(),
            sa.ForeignKey("quick_answer_lists.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("title", sa.String(length=255), nullable=False),
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_quick_answers_list_code", "quick_answers", ["list_id", "code"], unique=True)


def downgrade() -> None:
    op.drop_index("ix_quick_answers_list_code", table_name="quick_answers")
    op.drop_table("quick_answers")
    op.drop_table("quick_answer_lists")
