"""customers: an index on the name as a reference compares it (lower case), so a name is a seek, not a scan of the book

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01
"""
from alembic import op
import sqlalchemy as sa


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index('ix_customers_ws_folded_name', 'customers', ['workspace_id', sa.text('lower(name)')], unique=False)


def downgrade() -> None:
    op.drop_index('ix_customers_ws_folded_name', table_name='customers')
