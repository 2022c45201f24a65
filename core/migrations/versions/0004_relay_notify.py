"""relay wake-ups: PostgreSQL notifies the relay of new outbox rows

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29 17:00:00

On PostgreSQL a statement trigger on ``outbox`` sends ``NOTIFY openlines_outbox``, delivered
when the inserting transaction commits, whichever code inserted the rows; the relay listens
and so needs no busy polling (``core/relay_wakeups.py``). Not on ``events``: a transaction
that notifies takes a database-wide lock while it commits, and nearly every transaction adds
an event; under load those commits queued behind one another (the API's 202 took 3x longer
at 25 new dialogs/s). The webhook dispatcher polls instead.
SQLite has no notifications: nothing changes there and the relay polls.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(
        """
        CREATE FUNCTION openlines_notify_relay() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM pg_notify('openlines_outbox', '');
            RETURN NULL;
        END
        $$
        """
    )
    op.execute(
        "CREATE TRIGGER outbox_notify_relay AFTER INSERT ON outbox "
        "FOR EACH STATEMENT EXECUTE FUNCTION openlines_notify_relay()"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP TRIGGER outbox_notify_relay ON outbox")
    op.execute("DROP FUNCTION openlines_notify_relay()")
