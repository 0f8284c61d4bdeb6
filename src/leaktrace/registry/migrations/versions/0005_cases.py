"""Scans and cases: many suspected leaks traced at once, grouped by leaker.

- ``scans``: each run of ``scan`` (status, progress).
- ``scan_files``: every file a scan met, recorded with its trace in one transaction as it is
  judged (so a scan stopped midway loses nothing and is resumed without tracing a file twice).
- ``cases``: one per leaker (or leakers together), with the combined probability last computed.
- ``case_exports``: the SHA-256 of every exported evidence bundle's manifest.

Revision ID: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "scans",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("folder", sa.String(2048), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("done", sa.Integer, nullable=False),
        sa.Column("total", sa.Integer, nullable=False),
        sa.Column("errors", sa.JSON, nullable=False),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_table(
        "cases",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("key", sa.String(1024), nullable=False, unique=True),
        sa.Column("handles", sa.JSON, nullable=False),
        sa.Column("log10_p", sa.Float, nullable=True),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "scan_files",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("scan_id", sa.String(32), sa.ForeignKey("scans.id"), nullable=False),
        sa.Column("path", sa.String(2048), nullable=False),
        sa.Column("name", sa.String(512), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("size", sa.Integer, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("reason", sa.String(1024), nullable=False),
        sa.Column("trace_id", sa.Integer, sa.ForeignKey("traces.id"), nullable=True),
        sa.Column("media_id", sa.Integer, sa.ForeignKey("media.id"), nullable=True),
        sa.Column("case_id", sa.Integer, sa.ForeignKey("cases.id"), nullable=True),
        sa.Column("fingerprint", sa.LargeBinary, nullable=False),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_scan_files_scan_id", "scan_files", ["scan_id"])
    op.create_index("ix_scan_files_sha256", "scan_files", ["sha256"])
    op.create_index("ix_scan_files_case_id", "scan_files", ["case_id"])
    op.create_table(
        "case_exports",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("case_id", sa.Integer, sa.ForeignKey("cases.id"), nullable=False),
        sa.Column("manifest_sha256", sa.String(64), nullable=False),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_case_exports_case_id", "case_exports", ["case_id"])
    op.create_index("ix_case_exports_manifest_sha256", "case_exports", ["manifest_sha256"])


def downgrade() -> None:
    op.drop_table("case_exports")
    op.drop_table("scan_files")
    op.drop_table("cases")
    op.drop_table("scans")
