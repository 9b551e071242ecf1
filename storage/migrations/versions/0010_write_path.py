"""write path: an index on reminders(customer_id, status, due_at)

Refreshing a customer's next follow-up (storage.scoring) read every reminder of
the workspace to find that customer's pending ones; with the index it seeks
them, so a /log costs the same in a book of 1,000 or 100,000 customers.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02
"""
from alembic import op


revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('reminders', schema=None) as batch_op:
        batch_op.create_index('ix_reminders_customer_status_due', ['customer_id', 'status', 'due_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('reminders', schema=None) as batch_op:
        batch_op.drop_index('ix_reminders_customer_status_due')
