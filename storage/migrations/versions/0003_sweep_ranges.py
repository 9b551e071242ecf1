"""silent sweep: index ranges on when silence began (per tier) and when it passes an own cadence

On PostgreSQL the own-cadence expression index replaces ix_customers_ws_own_cadence, which
offered the planner every own-cadence customer of the workspace instead; SQLite keeps it.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26
"""
from alembic import op
import sqlalchemy as sa


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None

SILENT_SINCE = sa.text("coalesce(last_contact_at, created_at)")
OWN_CADENCE_PASSED = sa.text("(coalesce(last_contact_at, created_at) + cadence_days * interval '1 day')")
SWEPT_ON_DEFAULT = sa.text("cadence_days IS NULL AND lost_at IS NULL AND deleted_at IS NULL")
SWEPT_ON_OWN = sa.text("cadence_days IS NOT NULL AND lost_at IS NULL AND deleted_at IS NULL")
OWN_CADENCE = sa.text("cadence_days IS NOT NULL")


def upgrade() -> None:
    op.create_index('ix_customers_sweep_tier', 'customers', ['workspace_id', 'tier', SILENT_SINCE], unique=False,
                    postgresql_where=SWEPT_ON_DEFAULT, sqlite_where=SWEPT_ON_DEFAULT)
    if op.get_context().dialect.name == 'postgresql':  # interval arithmetic; SQLite compares whole days instead
        op.create_index('ix_customers_sweep_own_cadence', 'customers', ['workspace_id', OWN_CADENCE_PASSED],
                        unique=False, postgresql_where=SWEPT_ON_OWN)
        op.drop_index('ix_customers_ws_own_cadence', table_name='customers')


def downgrade() -> None:
    if op.get_context().dialect.name == 'postgresql':
        op.create_index('ix_customers_ws_own_cadence', 'customers', ['workspace_id'], unique=False,
                        postgresql_where=OWN_CADENCE)
        op.drop_index('ix_customers_sweep_own_cadence', table_name='customers')
    op.drop_index('ix_customers_sweep_tier', table_name='customers')
