"""seed conformance: ``dialogs.unanswered``, ``leads.comments``

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02 01:30:00

``no_answer.after`` is the time until a dialog nobody accepted is marked unanswered; the mark
is kept on the row (reads, the list's ``?unanswered=`` filter) until an accept or a reply.
A lead made from a dialog carries the client's conversation in ``comments``.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A plain ADD COLUMN on both backends (see 0007).
    op.add_column(
        "dialogs",
        sa.Column("unanswered", sa.Boolean(), nullable=False, server_default=sa.false()),
    )
    op.add_column("leads", sa.Column("comments", sa.Text(), nullable=True))


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("ALTER TABLE leads DROP COLUMN comments")
        op.execute("ALTER TABLE dialogs DROP COLUMN unanswered")
    else:
        op.drop_column("leads", "comments")
        op.drop_column("dialogs", "unanswered")
