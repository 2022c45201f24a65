"""outbox rows keep the trace context of the transaction that wrote them

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-02 11:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("outbox", sa.Column("trace_context", sa.String(55), nullable=True))


def downgrade() -> None:
    op.drop_column("outbox", "trace_context")
