"""contact merges: a merge an operator confirmed, with what it moved, so it can be undone

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-02 05:40:00

The chat tracker no longer merges two existing contacts on its own (a client's message could
name other people's phones). A merge is asked for through the API; its row records who asked,
when, and the ids of the identities, chats, dialogs, leads and earlier-merged contacts that
moved, and what the kept contact took over (name, responsible), so an undo can move them back.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "contact_merges",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("kept_id", sa.Integer(), sa.ForeignKey("contacts.id"), nullable=False),
        sa.Column("merged_id", sa.Integer(), sa.ForeignKey("contacts.id"), nullable=False),
        sa.Column("moved", sa.JSON(), nullable=False),
        sa.Column("took_over", sa.JSON(), nullable=False),
        sa.Column("merged_by", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("undone_by", sa.String(length=64), nullable=True),
        sa.Column("undone_at", sa.DateTime(timezone=True), nullable=True),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_contact_merges_kept", "contact_merges", ["kept_id"])
    op.create_index("ix_contact_merges_merged", "contact_merges", ["merged_id"])


def downgrade() -> None:
    op.drop_index("ix_contact_merges_merged", table_name="contact_merges")
    op.drop_index("ix_contact_merges_kept", table_name="contact_merges")
    op.drop_table("contact_merges")
