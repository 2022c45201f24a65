"""encrypted secrets: room for channel and webhook secrets stored encrypted

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-02 06:00:00

With ``OPENLINES_SECRET_KEY`` set, ``channels.secret``, ``channels.previous_secret``,
``webhooks.secret`` and ``webhooks.previous_secret`` hold ``enc:v1:<fernet token>``
(``core/secrets_at_rest.py``): 147 characters for a generated 43-character secret, up to 787
for the longest secret the API accepts (128 characters of 4-byte UTF-8), so the columns grow
to 1024. Only PostgreSQL is altered: SQLite cannot change a column's type in place and does
not enforce a VARCHAR's length anyway.

Existing rows are not encrypted here (a migration may run without the key): a value without
the ``enc:v1:`` prefix keeps being read as plain text, and is stored encrypted the next time
it is written (rotating the secret writes it).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = {"channels": ["secret", "previous_secret"], "webhooks": ["secret", "previous_secret"]}


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table, columns in COLUMNS.items():
        for column in columns:
            op.alter_column(
                table, column, type_=sa.String(length=1024), existing_type=sa.String(length=128)
            )


def downgrade() -> None:
    # Fails on PostgreSQL while an encrypted value is stored: they do not fit in 128.
    if op.get_bind().dialect.name != "postgresql":
        return
    for table, columns in COLUMNS.items():
        for column in columns:
            op.alter_column(
                table, column, type_=sa.String(length=128), existing_type=sa.String(length=1024)
            )
