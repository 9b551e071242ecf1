"""The customer book's tables (SQLAlchemy 2 declarative, same on SQLite and PostgreSQL).

Times are stored as naive UTC and come back as aware UTC (`UTCDateTime`), so
rules can compare them with an injected clock on either database. Money is
stored in minor units (cents/分) as integers: exact on both databases.
"""
from __future__ import annotations

from datetime import date, datetime, timezone
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    literal_column,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class UTCDateTime(TypeDecorator):
    """Aware UTC datetimes in, aware UTC datetimes out, naive UTC in the column."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(timezone.utc).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        return None if value is None else value.replace(tzinfo=timezone.utc)


NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


def _fk(target: str, *, nullable: bool = False, ondelete: str = "CASCADE") -> Mapped[Any]:
    return mapped_column(ForeignKey(target, ondelete=ondelete), nullable=nullable)


class Workspace(Base):
    """One team's customer book, with its settings (SPEC §2, `/settings`)."""

    __tablename__ = "workspaces"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    timezone: Mapped[str] = mapped_column(String(64))
    locale: Mapped[str] = mapped_column(String(8))
    currency: Mapped[str] = mapped_column(String(3))
    phone_region: Mapped[str] = mapped_column(String(2))
    visibility: Mapped[str] = mapped_column(String(8), default="team")
    cadence_a: Mapped[int] = mapped_column(Integer, default=14)
    cadence_b: Mapped[int] = mapped_column(Integer, default=30)
    cadence_c: Mapped[int] = mapped_column(Integer, default=60)
    cadence_none: Mapped[int] = mapped_column(Integer, default=30)
    digest_time: Mapped[str] = mapped_column(String(5), default="08:30")
    sweep_time: Mapped[str] = mapped_column(String(5), default="09:00")
    lifetime_years: Mapped[int] = mapped_column(Integer, default=3)
    #: How many days ahead the owner's morning message names customers' birthdays (0: never).
    birthday_days: Mapped[int] = mapped_column(Integer, default=3, server_default="3")
    #: Counters for the short numbers people type (`#12`, `/done 3`).
    next_customer_no: Mapped[int] = mapped_column(Integer, default=1)
    next_reminder_no: Mapped[int] = mapped_column(Integer, default=1)
    #: When the scheduler next sweeps for silent customers / recomputes derived data (UTC; NULL:
    #: not computed yet, the scheduler fills it in). See storage.schedule.
    next_sweep_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    next_recompute_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)


class Space(Base):
    """Where a workspace is reached: a Slack team, a Telegram group, the console."""

    __tablename__ = "spaces"
    __table_args__ = (UniqueConstraint("platform", "external_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    platform: Mapped[str] = mapped_column(String(16))
    external_id: Mapped[str] = mapped_column(String(64))
    workspace_id: Mapped[int] = _fk("workspaces.id")


class Member(Base):
    __tablename__ = "members"
    __table_args__ = (Index("ix_members_digest_due", "digest_enabled", "next_digest_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    workspace_id: Mapped[int] = _fk("workspaces.id")
    name: Mapped[str] = mapped_column(String(200), default="")
    role: Mapped[str] = mapped_column(String(8), default="rep")
    timezone: Mapped[str | None] = mapped_column(String(64))
    locale: Mapped[str | None] = mapped_column(String(8))
    digest_enabled: Mapped[bool] = mapped_column(Boolean, default=False)
    digest_time: Mapped[str | None] = mapped_column(String(5))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_seen_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_platform: Mapped[str | None] = mapped_column(String(16))
    #: When this member's next digest falls due (UTC; NULL: not subscribed or not computed yet).
    next_digest_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: Set when the member lost access to the book (storage.offboarding): removed by an admin, or
    #: suspended because they left the team's group or their account was deactivated; `removed_how`
    #: says which (`removed`, `left`, `deactivated`). NULL: an active member.
    removed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    removed_how: Mapped[str | None] = mapped_column(String(16))


class Identity(Base):
    """A platform account acting as a member; `/link` gives one member several."""

    __tablename__ = "identities"
    __table_args__ = (UniqueConstraint("platform", "external_id", "workspace_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    member_id: Mapped[int] = _fk("members.id")
    workspace_id: Mapped[int] = _fk("workspaces.id")
    platform: Mapped[str] = mapped_column(String(16))
    external_id: Mapped[str] = mapped_column(String(64))
    dm_chat_id: Mapped[str | None] = mapped_column(String(64))
    language: Mapped[str | None] = mapped_column(String(16))
    timezone: Mapped[str | None] = mapped_column(String(64))
    last_seen_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: Set when the platform refused a message because the user blocked the bot.
    blocked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


#: The silent sweep's index expressions and predicates (migration 0003): written as
#: storage.followups writes its conditions, so the planner matches them.
SILENT_SINCE = text("coalesce(last_contact_at, created_at)")
OWN_CADENCE_PASSED = text("(coalesce(last_contact_at, created_at) + cadence_days * interval '1 day')")
SWEPT_ON_DEFAULT = text("cadence_days IS NULL AND lost_at IS NULL AND deleted_at IS NULL")
SWEPT_ON_OWN = text("cadence_days IS NOT NULL AND lost_at IS NULL AND deleted_at IS NULL")
#: A name typed in any case (handlers.lookup compares `lower(name)`; migration 0005).
FOLDED_NAME = text("lower(name)")
#: A company as "same person?" compares it (storage.customers.possible_duplicates; migration 0011).
FOLDED_COMPANY = text("lower(company)")


class Customer(Base):
    __tablename__ = "customers"
    __table_args__ = (
        UniqueConstraint("workspace_id", "number"),
        Index("ix_customers_ws_phone", "workspace_id", "phone"),
        Index("ix_customers_ws_email", "workspace_id", "email"),
        Index("ix_customers_ws_folded_name", "workspace_id", FOLDED_NAME),
        Index("ix_customers_ws_folded_company", "workspace_id", FOLDED_COMPANY),
        Index("ix_customers_ws_updated", "workspace_id", "updated_at"),
        Index("ix_customers_ws_owner_contact", "workspace_id", "owner_id", "last_contact_at"),
        # silence ranges on the stored columns (`/find silent:30d`, handlers.customers)
        Index("ix_customers_ws_contact", "workspace_id", "last_contact_at"),
        Index("ix_customers_ws_created_uncontacted", "workspace_id", "created_at",
              postgresql_where=text("last_contact_at IS NULL"), sqlite_where=text("last_contact_at IS NULL")),
        # the sweep's branches (storage.followups._due), over live customers not marked lost: when
        # silence began, per tier, for those on their tier's default cadence; for the others, when
        # silence passes their own cadence (an expression PostgreSQL can index; SQLite scans them)
        Index("ix_customers_sweep_tier", "workspace_id", "tier", SILENT_SINCE,
              postgresql_where=SWEPT_ON_DEFAULT, sqlite_where=SWEPT_ON_DEFAULT),
        Index("ix_customers_sweep_own_cadence", "workspace_id", OWN_CADENCE_PASSED,
              postgresql_where=SWEPT_ON_OWN).ddl_if(dialect="postgresql"),
        Index("ix_customers_ws_own_cadence", "workspace_id",
              sqlite_where=text("cadence_days IS NOT NULL")).ddl_if(dialect="sqlite"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    workspace_id: Mapped[int] = _fk("workspaces.id")
    number: Mapped[int] = mapped_column(Integer)
    owner_id: Mapped[int] = _fk("members.id", ondelete="RESTRICT")
    created_by: Mapped[int | None] = _fk("members.id", nullable=True, ondelete="SET NULL")
    # basic information
    name: Mapped[str] = mapped_column(String(200))
    company: Mapped[str | None] = mapped_column(String(200))
    title: Mapped[str | None] = mapped_column(String(200))
    phone: Mapped[str | None] = mapped_column(String(32))
    email: Mapped[str | None] = mapped_column(String(254))
    address: Mapped[str | None] = mapped_column(String(500))
    region: Mapped[str | None] = mapped_column(String(100))
    industry: Mapped[str | None] = mapped_column(String(100))
    size: Mapped[str | None] = mapped_column(String(50))
    gender: Mapped[str | None] = mapped_column(String(16))
    birthday: Mapped[date | None] = mapped_column(Date)
    source: Mapped[str | None] = mapped_column(String(100))
    # needs and preferences
    prefs: Mapped[str | None] = mapped_column(Text)
    cadence_days: Mapped[int | None] = mapped_column(Integer)
    lost_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # derived, kept up to date by storage.scoring
    stage: Mapped[str] = mapped_column(String(16), default="lead")
    tier: Mapped[str | None] = mapped_column(String(1))
    ltv_minor: Mapped[int | None] = mapped_column(BigInteger)
    last_contact_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    next_followup_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: When the silent sweep last nudged the owner about this customer.
    silent_nudged_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Interaction(Base):
    __tablename__ = "interactions"
    __table_args__ = (
        Index("ix_interactions_customer_at", "customer_id", "occurred_at"),
        Index("ix_interactions_ws_at", "workspace_id", "occurred_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    workspace_id: Mapped[int] = _fk("workspaces.id")
    customer_id: Mapped[int] = _fk("customers.id")
    member_id: Mapped[int | None] = _fk("members.id", nullable=True, ondelete="SET NULL")
    channel: Mapped[str] = mapped_column(String(16))
    summary: Mapped[str] = mapped_column(Text, default="")
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class CustomerTag(Base):
    """A manual tag (typed by someone) or an auto tag (kept by storage.scoring)."""

    __tablename__ = "customer_tags"
    __table_args__ = (
        UniqueConstraint("customer_id", "name", "auto"),
        Index("ix_customer_tags_ws_name", "workspace_id", "name"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    workspace_id: Mapped[int] = _fk("workspaces.id")
    customer_id: Mapped[int] = _fk("customers.id")
    name: Mapped[str] = mapped_column(String(64))
    auto: Mapped[bool] = mapped_column(Boolean, default=False)


class Purchase(Base):
    __tablename__ = "purchases"
    __table_args__ = (
        Index("ix_purchases_customer_at", "customer_id", "occurred_at"),
        Index("ix_purchases_ws_at", "workspace_id", "occurred_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    workspace_id: Mapped[int] = _fk("workspaces.id")
    customer_id: Mapped[int] = _fk("customers.id")
    member_id: Mapped[int | None] = _fk("members.id", nullable=True, ondelete="SET NULL")
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    note: Mapped[str] = mapped_column(Text, default="")
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Feedback(Base):
    __tablename__ = "feedback"
    __table_args__ = (Index("ix_feedback_customer_at", "customer_id", "created_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    workspace_id: Mapped[int] = _fk("workspaces.id")
    customer_id: Mapped[int] = _fk("customers.id")
    member_id: Mapped[int | None] = _fk("members.id", nullable=True, ondelete="SET NULL")
    score: Mapped[int] = mapped_column(Integer)
    comment: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Reminder(Base):
    """A revisit reminder; the scheduler claims due ones here (lease in `claimed_until`)."""

    __tablename__ = "reminders"
    __table_args__ = (
        UniqueConstraint("workspace_id", "number"),
        Index("ix_reminders_status_due", "status", "due_at"),
        Index("ix_reminders_member_status", "member_id", "status"),
        # a customer's pending follow-ups (storage.scoring's next_followup_at): a seek, not a workspace scan
        Index("ix_reminders_customer_status_due", "customer_id", "status", "due_at"),
        # what the scheduler claims: pending and not yet delivered (delivered ones stay pending until done)
        Index("ix_reminders_undelivered_due", "due_at",
              postgresql_where=text("status = 'pending' AND sent_at IS NULL"),
              sqlite_where=text("status = 'pending' AND sent_at IS NULL")),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    workspace_id: Mapped[int] = _fk("workspaces.id")
    number: Mapped[int] = mapped_column(Integer)
    customer_id: Mapped[int | None] = _fk("customers.id", nullable=True)
    member_id: Mapped[int] = _fk("members.id")
    created_by: Mapped[int | None] = _fk("members.id", nullable=True, ondelete="SET NULL")
    due_at: Mapped[datetime] = mapped_column(UTCDateTime)
    #: The user gave a time of day, so quiet hours do not hold it back.
    explicit_time: Mapped[bool] = mapped_column(Boolean, default=False)
    note: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(12), default="pending")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    done_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: When delivery finished: sent, or given up (then `last_error` says why).
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: A sender's lease on the row, or a hold (quiet hours, back-off): not claimable before.
    claimed_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(String(500))


#: `reminders.status = 'pending'`, the value written into the SQL. Compared with a bound value
#: instead, SQLite prepares the statement again on every run, since the value might match the WHERE
#: of the partial index ix_reminders_undelivered_due: 6 µs more on a one-row SELECT, 60-130 µs more
#: on the scoring refresh's UPDATE.
REMINDER_PENDING = Reminder.status == literal_column("'pending'", String)


class OutboxMessage(Base):
    """A message the bot sends first (a digest, a silent-customer list), one row per message.

    `key` makes it once-only (`digest:<member>:<local date>`); `payload` holds ids and dates
    only: the text is built when it is sent. Claimed and leased like reminders
    (storage.schedule); `parts_sent` counts the replies already out (a digest and its chart).
    """

    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_status_due", "status", "due_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key: Mapped[str] = mapped_column(String(160), unique=True)
    kind: Mapped[str] = mapped_column(String(16))
    workspace_id: Mapped[int] = _fk("workspaces.id")
    member_id: Mapped[int] = _fk("members.id")
    payload: Mapped[dict] = mapped_column(JSON)
    due_at: Mapped[datetime] = mapped_column(UTCDateTime)
    #: pending, sent, blocked (the recipient blocked the bot), failed, skipped (nothing left to say)
    status: Mapped[str] = mapped_column(String(12), default="pending")
    claimed_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    parts_sent: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(String(500))


class AuditEntry(Base):
    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_ws_customer_at", "workspace_id", "customer_id", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    workspace_id: Mapped[int] = _fk("workspaces.id")
    member_id: Mapped[int | None] = _fk("members.id", nullable=True, ondelete="SET NULL")
    customer_id: Mapped[int | None] = _fk("customers.id", nullable=True, ondelete="SET NULL")
    action: Mapped[str] = mapped_column(String(32))
    before: Mapped[dict | None] = mapped_column(JSON)
    after: Mapped[dict | None] = mapped_column(JSON)
    at: Mapped[datetime] = mapped_column(UTCDateTime)


class ProcessedUpdate(Base):
    """Keys of platform updates already applied, so a redelivery is applied once."""

    __tablename__ = "processed_updates"

    key: Mapped[str] = mapped_column(String(128), primary_key=True)
    processed_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    #: The replies (handlers.kept_replies) until the adapter reports them sent; a redelivery gets them.
    unanswered: Mapped[str | None] = mapped_column(Text)


class ReceivedUpdate(Base):
    """An update a platform handed over, kept from its arrival until it has been handled (storage.inbox):
    a poller confirms a batch to the platform at once, and what a killed process had not handled yet
    is handled after the restart from here."""

    __tablename__ = "received_updates"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    #: Where it came from (`telegram:<bot id>`): one process's poller replays only its own.
    source: Mapped[str] = mapped_column(String(64), index=True)
    #: The redelivery key the core applies it under (processed_updates.key).
    key: Mapped[str] = mapped_column(String(128), unique=True)
    #: The update as the platform sent it (JSON).
    payload: Mapped[str] = mapped_column(Text)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)


class PendingChoice(Base):
    """What a button refers to ("which one?", confirmations, pages), so it survives a restart."""

    __tablename__ = "pending_choices"

    token: Mapped[str] = mapped_column(String(16), primary_key=True)
    workspace_id: Mapped[int] = _fk("workspaces.id")
    member_id: Mapped[int] = _fk("members.id")
    kind: Mapped[str] = mapped_column(String(16))
    payload: Mapped[dict] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)


class Conversation(Base):
    """A guided form in progress in one chat (Telegram/console `/add` step by step)."""

    __tablename__ = "conversations"
    __table_args__ = (UniqueConstraint("member_id", "chat_key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    workspace_id: Mapped[int] = _fk("workspaces.id")
    member_id: Mapped[int] = _fk("members.id")
    chat_key: Mapped[str] = mapped_column(String(96))
    form: Mapped[dict] = mapped_column(JSON)
    values: Mapped[dict] = mapped_column(JSON)
    step: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Invite(Base):
    __tablename__ = "invites"

    code: Mapped[str] = mapped_column(String(16), primary_key=True)
    workspace_id: Mapped[int] = _fk("workspaces.id")
    created_by: Mapped[int | None] = _fk("members.id", nullable=True, ondelete="SET NULL")
    role: Mapped[str] = mapped_column(String(8), default="rep")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    #: How many times the code was redeemed (`/invite list`); an admin invite works once.
    uses: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


class LinkCode(Base):
    """A one-time code from `/link` that joins another platform's account to a member."""

    __tablename__ = "link_codes"

    code: Mapped[str] = mapped_column(String(16), primary_key=True)
    member_id: Mapped[int] = _fk("members.id")
    workspace_id: Mapped[int] = _fk("workspaces.id")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)


class CodeGuard(Base):
    """Wrong invite and link codes counted per account and overall (storage.code_guard), kept in the
    database so that a restart does not forgive them."""

    __tablename__ = "code_guards"

    #: `account:<platform>:<user id>`, or `all` for every account together.
    key: Mapped[str] = mapped_column(String(96), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    window_started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime)


class ImportFile(Base):
    """A file sent to /import, kept while its member looks at the mapping (Import / Change / Cancel), so
    the buttons work after a restart; `changes` holds the columns set by hand (header → target)."""

    __tablename__ = "import_files"

    token: Mapped[str] = mapped_column(String(16), primary_key=True)
    workspace_id: Mapped[int] = _fk("workspaces.id")
    member_id: Mapped[int] = _fk("members.id")
    name: Mapped[str] = mapped_column(String(200))
    content: Mapped[bytes] = mapped_column(LargeBinary)
    changes: Mapped[dict] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)


class SlackTeam(Base):
    """The Enterprise Grid organisation a Slack workspace belongs to, noted when someone there acts:
    a delivery to that workspace finds an org-wide installation's bot token by it (storage.slack_installs)."""

    __tablename__ = "slack_teams"

    team_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    enterprise_id: Mapped[str] = mapped_column(String(32))
