"""webhooks: an index for one endpoint's due deliveries (the sender's lanes)

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_webhook_deliveries_lane", "webhook_deliveries",
                    ["endpoint_id", "status", "next_attempt_at", "seq"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_webhook_deliveries_lane", table_name="webhook_deliveries")
