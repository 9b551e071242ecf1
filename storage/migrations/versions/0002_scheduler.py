"""scheduler: outbox, next-run times, delivery errors, sweep and claim indexes

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24
"""
from alembic import op
import sqlalchemy as sa


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None

UNDELIVERED = sa.text("status = 'pending' AND sent_at IS NULL")
UNCONTACTED = sa.text("last_contact_at IS NULL")
OWN_CADENCE = sa.text("cadence_days IS NOT NULL")


def upgrade() -> None:
    op.create_table('outbox',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('key', sa.String(length=160), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('workspace_id', sa.Integer(), nullable=False),
    sa.Column('member_id', sa.Integer(), nullable=False),
    sa.Column('payload', sa.JSON(), nullable=False),
    sa.Column('due_at', sa.DateTime(), nullable=False),
    sa.Column('status', sa.String(length=12), nullable=False),
    sa.Column('claimed_until', sa.DateTime(), nullable=True),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('parts_sent', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('sent_at', sa.DateTime(), nullable=True),
    sa.Column('last_error', sa.String(length=500), nullable=True),
    sa.ForeignKeyConstraint(['member_id'], ['members.id'], name=op.f('fk_outbox_member_id_members'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['workspace_id'], ['workspaces.id'], name=op.f('fk_outbox_workspace_id_workspaces'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_outbox')),
    sa.UniqueConstraint('key', name=op.f('uq_outbox_key'))
    )
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.create_index('ix_outbox_status_due', ['status', 'due_at'], unique=False)

    with op.batch_alter_table('workspaces', schema=None) as batch_op:
        batch_op.add_column(sa.Column('next_sweep_at', sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column('next_recompute_at', sa.DateTime(), nullable=True))
        batch_op.create_index(batch_op.f('ix_workspaces_next_sweep_at'), ['next_sweep_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_workspaces_next_recompute_at'), ['next_recompute_at'], unique=False)

    with op.batch_alter_table('members', schema=None) as batch_op:
        batch_op.add_column(sa.Column('next_digest_at', sa.DateTime(), nullable=True))
        batch_op.create_index('ix_members_digest_due', ['digest_enabled', 'next_digest_at'], unique=False)

    with op.batch_alter_table('reminders', schema=None) as batch_op:
        batch_op.add_column(sa.Column('last_error', sa.String(length=500), nullable=True))
        batch_op.create_index('ix_reminders_undelivered_due', ['due_at'], unique=False,
                              postgresql_where=UNDELIVERED, sqlite_where=UNDELIVERED)

    with op.batch_alter_table('customers', schema=None) as batch_op:
        batch_op.create_index('ix_customers_ws_contact', ['workspace_id', 'last_contact_at'], unique=False)
        batch_op.create_index('ix_customers_ws_created_uncontacted', ['workspace_id', 'created_at'], unique=False,
                              postgresql_where=UNCONTACTED, sqlite_where=UNCONTACTED)
        batch_op.create_index('ix_customers_ws_own_cadence', ['workspace_id'], unique=False,
                              postgresql_where=OWN_CADENCE, sqlite_where=OWN_CADENCE)


def downgrade() -> None:
    with op.batch_alter_table('customers', schema=None) as batch_op:
        batch_op.drop_index('ix_customers_ws_own_cadence')
        batch_op.drop_index('ix_customers_ws_created_uncontacted')
        batch_op.drop_index('ix_customers_ws_contact')

    with op.batch_alter_table('reminders', schema=None) as batch_op:
        batch_op.drop_index('ix_reminders_undelivered_due')
        batch_op.drop_column('last_error')

    with op.batch_alter_table('members', schema=None) as batch_op:
        batch_op.drop_index('ix_members_digest_due')
        batch_op.drop_column('next_digest_at')

    with op.batch_alter_table('workspaces', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_workspaces_next_recompute_at'))
        batch_op.drop_index(batch_op.f('ix_workspaces_next_sweep_at'))
        batch_op.drop_column('next_recompute_at')
        batch_op.drop_column('next_sweep_at')

    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.drop_index('ix_outbox_status_due')

    op.drop_table('outbox')
