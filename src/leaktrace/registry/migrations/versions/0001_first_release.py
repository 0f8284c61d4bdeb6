"""The registry as leaktrace 0.1 made it (schema version 1).

Workspaces made before migrations existed already hold these tables: each is created only
if it is missing (``tokens`` came later in 0.1).

Revision ID: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def _created() -> sa.Column:
    return sa.Column("created", sa.DateTime(timezone=True), nullable=False)


def upgrade() -> None:
    have = set(sa.inspect(op.get_bind()).get_table_names())
    tables = {
        "meta": lambda: op.create_table(
            "meta",
            sa.Column("name", sa.String(64), primary_key=True),
            sa.Column("value", sa.String(256), nullable=False),
        ),
        "recipients": lambda: op.create_table(
            "recipients",
            sa.Column("id", sa.Integer, primary_key=True),
            sa.Column("handle", sa.String(64), nullable=False, unique=True),
            sa.Column("name", sa.String(256), nullable=False),
            sa.Column("email", sa.String(256), nullable=False),
            _created(),
        ),
        "media": lambda: op.create_table(
            "media",
            sa.Column("id", sa.Integer, primary_key=True),
            sa.Column("sha256", sa.String(64), nullable=False, unique=True),
            sa.Column("kind", sa.String(16), nullable=False),
            sa.Column("name", sa.String(512), nullable=False),
            sa.Column("stored", sa.String(512), nullable=False),
            sa.Column("size", sa.Integer, nullable=False),
            sa.Column("width", sa.Integer, nullable=False),
            sa.Column("height", sa.Integer, nullable=False),
            sa.Column("fingerprint", sa.LargeBinary, nullable=False),
            sa.Column("features", sa.LargeBinary, nullable=False),
            _created(),
        ),
        "copies": lambda: op.create_table(
            "copies",
            sa.Column("id", sa.Integer, primary_key=True),
            sa.Column("media_id", sa.Integer, sa.ForeignKey("media.id"), nullable=False),
            sa.Column("recipient_id", sa.Integer, sa.ForeignKey("recipients.id"), nullable=False),
            sa.Column("path", sa.String(1024), nullable=False),
            sa.Column("sha256", sa.String(64), nullable=False),
            sa.Column("strength", sa.Float, nullable=False),
            sa.Column("format_version", sa.Integer, nullable=False),
            _created(),
            sa.UniqueConstraint(
                "media_id", "recipient_id", name="copies_media_id_recipient_id_key"
            ),
        ),
        "traces": lambda: op.create_table(
            "traces",
            sa.Column("id", sa.Integer, primary_key=True),
            sa.Column("sha256", sa.String(64), nullable=False),
            sa.Column("name", sa.String(512), nullable=False),
            sa.Column("verdict", sa.String(16), nullable=False),
            sa.Column("recipient", sa.String(64), nullable=True),
            sa.Column("media_id", sa.Integer, sa.ForeignKey("media.id"), nullable=True),
            sa.Column("p_value", sa.Float, nullable=True),
            sa.Column("result", sa.JSON, nullable=False),
            _created(),
        ),
        "tokens": lambda: op.create_table(
            "tokens",
            sa.Column("id", sa.Integer, primary_key=True),
            sa.Column("name", sa.String(128), nullable=False),
            sa.Column("digest", sa.String(64), nullable=False, unique=True),
            sa.Column("hint", sa.String(16), nullable=False),
            _created(),
            sa.Column("revoked", sa.DateTime(timezone=True), nullable=True),
        ),
    }
    for name, create in tables.items():
        if name not in have:
            create()
    meta = sa.table("meta", sa.column("name", sa.String), sa.column("value", sa.String))
    bind = op.get_bind()
    if bind.execute(sa.select(meta.c.name).where(meta.c.name == "schema_version")).first() is None:
        op.bulk_insert(meta, [{"name": "schema_version", "value": "1"}])


def downgrade() -> None:
    raise NotImplementedError("the first schema has nothing to go back to")
