"""relay wake-ups: PostgreSQL notifies the relay of new outbox and event rows

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29 17:00:00

On PostgreSQL a statement trigger on ``outbox`` and ``events`` sends ``NOTIFY
openlines_outbox`` / ``openlines_events``, delivered when the inserting transaction commits,
whichever code inserted the rows; the relay listens and so needs no busy polling
(``core/relay_wakeups.py``).
SQLite has no notifications: nothing changes there and the relay polls.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = ("outbox", "events")


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(
        """
        CREATE FUNCTION openlines_notify_relay() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM pg_notify('openlines_' || TG_TABLE_NAME, '');
            RETURN NULL;
        END
        $$
        """
    )
    for table in TABLES:
        op.execute(
            f"CREATE TRIGGER {table}_notify_relay AFTER INSERT ON {table} "
            "FOR EACH STATEMENT EXECUTE FUNCTION openlines_notify_relay()"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table in TABLES:
        op.execute(f"DROP TRIGGER {table}_notify_relay ON {table}")
    op.execute("DROP FUNCTION openlines_notify_relay()")
