"""relay wake-ups: drop the notification on ``events`` that an earlier 0004 created

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29 21:20:00

The first version of migration 0004 also put the notifying trigger on ``events``; it was
changed in place to ``outbox`` only (a notifying transaction takes a database-wide lock while
it commits, and nearly every transaction adds an event). A database migrated with that first
version still has the trigger, and alembic will not run 0004 again: this drops it. On a
database migrated since, there is nothing to drop.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP TRIGGER IF EXISTS events_notify_relay ON events")


def downgrade() -> None:
    """Nothing: the trigger was a mistake, not a state worth going back to."""
