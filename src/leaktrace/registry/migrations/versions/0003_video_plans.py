"""Videos: a registered original may be a video, whose variants' plan is kept.

- ``media.plan``: for a video (``kind = 'video'``), the plan of its variants — segment starts,
  encoder settings, the video format version and the code its copies carry — as JSON; NULL
  for photos. The variants themselves live in the workspace under ``variants/<sha256>/``.

Revision ID: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("media") as batch:
        batch.add_column(sa.Column("plan", sa.JSON, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("media") as batch:
        batch.drop_column("plan")
