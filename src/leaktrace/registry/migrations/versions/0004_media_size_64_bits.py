"""A media item's size in bytes takes 64 bits: a video over 2 GiB fits on PostgreSQL too.

SQLite's INTEGER is 64-bit whatever the declared type, so there nothing changes (altering it
would rebuild the table for nothing); PostgreSQL's INTEGER is 32-bit and becomes BIGINT.

Revision ID: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        op.alter_column("media", "size", type_=sa.BigInteger, existing_nullable=False)


def downgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        op.alter_column("media", "size", type_=sa.Integer, existing_nullable=False)
