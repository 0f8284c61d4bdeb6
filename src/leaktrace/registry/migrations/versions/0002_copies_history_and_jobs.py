"""Copies become history, jobs live in the registry, handles are unique ignoring case.

- ``copies``: no longer one row per (media, recipient) — making a copy again adds a row and
  never rewrites the earlier one; ``state`` (``pending`` while a batch writes the file,
  ``done`` once it is in place), ``batch`` (which run wrote it) and ``job_id`` (the service
  job, if any). Existing rows are ``done``.
- ``jobs``: the service's batches, so that status and downloads survive a restart.
- ``recipients``: a unique index on ``lower(handle)``, unless two existing handles differ only
  in case (the registry refuses new clashes either way).

Revision ID: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def _v1_copies() -> sa.Table:
    """``copies`` as 0001 made it, minus its unique (media, recipient) constraint."""
    return sa.Table(
        "copies",
        sa.MetaData(),
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("media_id", sa.Integer, sa.ForeignKey("media.id"), nullable=False),
        sa.Column("recipient_id", sa.Integer, sa.ForeignKey("recipients.id"), nullable=False),
        sa.Column("path", sa.String(1024), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("strength", sa.Float, nullable=False),
        sa.Column("format_version", sa.Integer, nullable=False),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False),
    )


def upgrade() -> None:
    bind = op.get_bind()
    op.create_table(
        "jobs",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("media_id", sa.Integer, sa.ForeignKey("media.id"), nullable=False),
        sa.Column("handles", sa.JSON, nullable=False),
        sa.Column("strength", sa.Float, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("done", sa.Integer, nullable=False),
        sa.Column("total", sa.Integer, nullable=False),
        sa.Column("errors", sa.JSON, nullable=False),
        sa.Column("warnings", sa.JSON, nullable=False),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished", sa.DateTime(timezone=True), nullable=True),
    )
    if bind.dialect.name == "sqlite":
        # SQLite cannot drop a constraint: the table is rebuilt from its 0001 shape without it.
        batch = op.batch_alter_table("copies", recreate="always", copy_from=_v1_copies())
    else:
        op.drop_constraint("copies_media_id_recipient_id_key", "copies", type_="unique")
        batch = op.batch_alter_table("copies")
    with batch as copies:
        copies.add_column(sa.Column("state", sa.String(8), nullable=False, server_default="done"))
        copies.add_column(sa.Column("batch", sa.String(32), nullable=True))
        copies.add_column(sa.Column("job_id", sa.String(32), nullable=True))
        copies.create_foreign_key("fk_copies_job_id_jobs", "jobs", ["job_id"], ["id"])
    for column in ("media_id", "recipient_id", "path", "sha256", "batch", "job_id"):
        op.create_index(f"ix_copies_{column}", "copies", [column])
    clash = bind.execute(
        sa.text("SELECT lower(handle) FROM recipients GROUP BY lower(handle) HAVING count(*) > 1")
    ).first()
    if clash is None:
        op.create_index(
            "ix_recipients_handle_lower", "recipients", [sa.text("lower(handle)")], unique=True
        )
    op.execute("UPDATE meta SET value = '2' WHERE name = 'schema_version'")


def downgrade() -> None:
    raise NotImplementedError("copies made as history cannot be folded back to one per recipient")
