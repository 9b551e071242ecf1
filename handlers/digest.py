"""The managers' digest (SPEC §4): `/digest`, `/digest on [HH:MM]`, `/digest off`, and its builder.

`build_digest` needs no chat request, only a session, the workspace, the
manager, the clock and the manager's language and time zone: the scheduler
calls it at each manager's digest time, `/digest` calls it on demand. It
covers yesterday (local midnight to midnight); on a Monday, the week before,
with a chart. `/digest today` shows the same figures for today so far, for a
manager who wants them before tomorrow morning.
"""
from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncSession

from handlers.cards import customer_label
from handlers.charts import weekly_chart
from handlers.context import Context, fmt_money
from handlers.errors import UserError
from handlers.i18n import t
from handlers.messages import Attachment, Field, Reply
from handlers.parsing import parse_hhmm
from handlers.registry import Result, command
from handlers.team import for_the_asker
from storage import audit
from storage.access import Scope
from storage.digest import (
    CustomerLine,
    DigestNumbers,
    OverdueFollowup,
    RepCount,
    digest_numbers,
    midnight,
    WeeklySeries,
    weekly_revenue,
)
from storage.models import Member, Workspace

#: Reps named in a per-rep line; the rest are "+N more".
SHOWN_REPS = 5
NAME_CHARS = 16
#: The digest's text stays under this many characters (Telegram allows 4096);
#: past it, the longest customer lists lose their last lines.
TEXT_BUDGET = 3500

ON_WORDS = ("on", "开", "开启", "订阅")
TODAY_WORDS = ("today", "今天", "今日")
OFF_WORDS = ("off", "关", "关闭", "退订")


# --- the builder ------------------------------------------------------------------

@dataclass(frozen=True)
class DigestPeriod:
    """Whole local days `first_day`..`last_day`, as the UTC bounds `[start, end)`; `so_far` when
    the period is today up to `end` (now)."""

    first_day: date
    last_day: date
    start: datetime
    end: datetime
    so_far: bool = False

    @property
    def weekly(self) -> bool:
        return self.first_day != self.last_day

    @property
    def span(self) -> str:
        return f"{self.first_day:%m-%d} … {self.last_day:%m-%d}"


def digest_period(now: datetime, tz: ZoneInfo) -> DigestPeriod:
    """Yesterday in `tz`; on a (local) Monday, the seven days Monday to Sunday before it."""
    today = now.astimezone(tz).date()
    first_day = today - timedelta(days=7 if today.weekday() == 0 else 1)
    return DigestPeriod(first_day, today - timedelta(days=1), midnight(first_day, tz), midnight(today, tz))


def today_so_far(now: datetime, tz: ZoneInfo) -> DigestPeriod:
    """From local midnight today until `now`, which counts: a call logged this instant is in."""
    today = now.astimezone(tz).date()
    return DigestPeriod(today, today, midnight(today, tz), now + timedelta(microseconds=1), so_far=True)


async def build_digest(
    session: AsyncSession, workspace: Workspace, member: Member, *, now: datetime, locale: str, tz: ZoneInfo,
    period: DigestPeriod | None = None,
) -> list[Reply]:
    """The digest for `member` (a manager of `workspace`) as of `now`: the text, and on Mondays the chart.
    `period` defaults to the scheduled digest's (`digest_period`).

    Raises `storage.access.Forbidden` for a member who is not a manager.
    """
    if member.workspace_id != workspace.id:
        raise ValueError(f"member {member.id} is not in workspace {workspace.id}")
    Scope(workspace.id, member.id, member.role, workspace.visibility).require_role("manager", "digest")
    period = period or digest_period(now, tz)
    numbers = await digest_numbers(session, workspace, start=period.start, end=period.end, now=now)
    replies = [compose(numbers, period, locale=locale, tz=tz)]
    if period.weekly:
        # The week's activity per rep is the digest's own figure: no second pass over the interactions.
        revenue = await weekly_revenue(session, workspace, end=period.end, tz=tz)
        series = WeeklySeries(workspace.currency, numbers.interactions_by_rep, revenue)
        # Off the event loop: drawing takes a few hundred milliseconds of CPU.
        png = await asyncio.to_thread(weekly_chart, series, locale=locale, period=period.span)
        image = Attachment(f"digest-{period.last_day:%Y-%m-%d}.png", png, "image/png")
        replies.append(Reply(text=t(locale, "digest.chart.caption"), image=image))
    return replies


def compose(numbers: DigestNumbers, period: DigestPeriod, *, locale: str, tz: ZoneInfo) -> Reply:
    """The digest message: one field per figure, then the customers that need someone."""
    writer = _Writer(locale, tz)
    say = writer.say
    if period.weekly:
        title = say("digest.title_weekly", start=f"{period.first_day:%m-%d}", end=f"{period.last_day:%m-%d}")
    elif period.so_far:
        title = say("digest.title_today", date=period.first_day.isoformat(),
                    time=f"{period.end.astimezone(tz):%H:%M}")
    else:
        title = say("digest.title_daily", date=period.first_day.isoformat())
    interactions = writer.per_rep(numbers.interactions, numbers.interactions_by_rep)
    if numbers.reps_without_interactions:
        idle = say("digest.idle_reps", count=numbers.reps_without_interactions)
        interactions = say("digest.and", first=interactions, second=idle)
    fields = [
        Field(say("digest.field.interactions"), interactions),
        Field(say("digest.field.new_customers"), writer.per_rep(numbers.new_customers, numbers.new_customers_by_rep)),
        Field(say("digest.field.deals"), writer.deals(numbers)),
        Field(say("digest.field.feedback"), say("digest.none") if numbers.feedback_average is None else say(
            "digest.feedback_value", average=f"{numbers.feedback_average:.1f}", count=numbers.feedback_count)),
        Field(say("digest.field.overdue"), writer.per_rep(numbers.overdue, numbers.overdue_by_rep)),
        Field(say("digest.field.newly_silent"), writer.count(numbers.newly_silent)),
        Field(say("digest.field.at_risk"), writer.count(numbers.at_risk)),
        Field(say("digest.field.incomplete"), writer.per_rep(numbers.incomplete, numbers.incomplete_by_rep)),
    ]
    if numbers.blocked_members:
        names = say("digest.list_sep").join(writer.name(n) for n in numbers.blocked_members[:SHOWN_REPS])
        fields.append(Field(say("digest.field.blocked"), say("digest.blocked_value", names=names)))
    if numbers.handovers:
        moves = [say("digest.handover.value", old=writer.name(h.old), new=writer.name(h.new), count=h.customers)
                 for h in numbers.handovers[:SHOWN_REPS]]
        fields.append(Field(say("digest.handover.field"), say("digest.list_sep").join(moves)))
    reply = Reply(title=title, fields=fields)
    lists = [
        [say("digest.item.overdue", customer=writer.reminder_subject(o), rep=writer.name(o.rep),
             due=writer.day(o.due_at)) for o in numbers.overdue_oldest],
        [say("digest.item.newly_silent", customer=writer.customer(c), owner=writer.name(c.owner),
             since=writer.day(c.silent_since)) for c in numbers.newly_silent_top],
        [say("digest.item.at_risk", customer=writer.customer(c), owner=writer.name(c.owner),
             since=writer.day(c.silent_since), value=writer.value(c, numbers.currency)) for c in numbers.at_risk_top],
    ]
    reply.items = _fit(lists, TEXT_BUDGET - len(reply.plain_text()))
    return reply


@dataclass(frozen=True)
class _Writer:
    """Short renderings of names, days and money in one manager's language and time zone."""

    locale: str
    tz: ZoneInfo

    def say(self, key: str, **params: object) -> str:
        return t(self.locale, key, **params)

    def name(self, name: str | None) -> str:
        name = name or "—"
        return name if len(name) <= NAME_CHARS else name[: NAME_CHARS - 1] + "…"

    def count(self, total: int) -> str:
        return str(total) if total else self.say("digest.none")

    def per_rep(self, total: int, counts: list[RepCount]) -> str:
        """`12 — Alice 7, Bob 5, +3 more`, or "none"."""
        if not total or not counts:
            return self.count(total)
        parts = [self.say("digest.rep_count", name=self.name(c.name), count=c.count) for c in counts[:SHOWN_REPS]]
        if len(counts) > SHOWN_REPS:
            parts.append(self.say("digest.more_reps", count=len(counts) - SHOWN_REPS))
        return self.say("digest.total_by", total=total, parts=self.say("digest.list_sep").join(parts))

    def money(self, minor: int, currency: str) -> str:
        return fmt_money(minor, currency)

    def deals(self, numbers: DigestNumbers) -> str:
        if not numbers.deals:
            return self.say("digest.none")
        parts = [self.say("digest.deals_value", count=d.count, total=self.money(d.total_minor, d.currency))
                 for d in (numbers.deals_in_currency, *numbers.deals_other[:3]) if d.count]
        if len(parts) == 1:
            return parts[0]
        return self.say("digest.total_by", total=numbers.deals, parts=self.say("digest.list_sep").join(parts))

    def day(self, moment: datetime) -> str:
        return f"{moment.astimezone(self.tz):%Y-%m-%d}"

    def customer(self, line: CustomerLine) -> str:
        label = customer_label(line)  # type: ignore[arg-type]  # needs only number, name, company
        return f"{label} ({line.tier})" if line.tier else label

    def reminder_subject(self, overdue: OverdueFollowup) -> str:
        if overdue.customer_number is None:
            return self.say("digest.reminder_no", number=overdue.number)
        return f"#{overdue.customer_number} {overdue.customer_name}"[:60]

    def value(self, line: CustomerLine, currency: str) -> str:
        return "" if line.ltv_minor is None else self.say("digest.ltv", value=self.money(line.ltv_minor, currency))


def _fit(lists: list[list[str]], budget: int) -> list[str]:
    """The lists, in order, after dropping the last lines of the longest ones until they fit `budget`."""
    kept = [list(lines) for lines in lists]
    while sum(len(line) + 3 for lines in kept for line in lines) > budget and any(kept):
        max(kept, key=len).pop()
    return [line for lines in kept for line in lines]


# --- /digest ------------------------------------------------------------------------

@dataclass(frozen=True)
class DigestCommand:
    verb: Literal["show", "today", "on", "off"]
    time: str | None = None  # HH:MM, with "on"


def parse_digest(ctx: Context, text: str) -> DigestCommand:
    """`` (the digest now), `today` (today so far), `on [HH:MM]`, `off`; Chinese 今天/开/关 too."""
    verb, _, rest = text.strip().partition(" ")
    if not verb:
        return DigestCommand("show")
    if verb.lower() in ON_WORDS:
        return DigestCommand("on", parse_hhmm(rest) if rest.strip() else None)
    if verb.lower() in OFF_WORDS and not rest.strip():
        return DigestCommand("off")
    if verb.lower() in TODAY_WORDS and not rest.strip():
        return DigestCommand("today")
    raise UserError("error.digest_usage")


@command("digest", parse=parse_digest, role="manager", aliases=("日报",))
async def digest(ctx: Context, request: DigestCommand) -> Result:
    if request.verb in ("show", "today"):
        private = for_the_asker(ctx, "digest", "digest.private_only")  # the team's figures
        period = today_so_far(ctx.now, ctx.tz) if request.verb == "today" else None
        replies = await build_digest(ctx.session, ctx.ws, ctx.me, now=ctx.now, locale=ctx.locale, tz=ctx.tz,
                                     period=period)
        if not ctx.me.digest_enabled:
            replies[0].text = ctx.t("digest.hint_subscribe")
        for reply in replies:
            reply.private = private
        return replies
    me = ctx.me
    before = {"digest_enabled": me.digest_enabled, "digest_time": me.digest_time}
    me.digest_enabled = request.verb == "on"
    if request.time:
        me.digest_time = request.time
    changed_before, changed_after = audit.changes(before, {"digest_enabled": me.digest_enabled,
                                                           "digest_time": me.digest_time})
    if changed_after:
        audit.record(ctx.session, workspace_id=ctx.ws.id, member_id=me.id, action=f"digest_{request.verb}",
                     before=changed_before, after=changed_after, at=ctx.now)
    if request.verb == "off":
        return Reply(text=ctx.t("digest.unsubscribed"))
    return Reply(text=ctx.t("digest.subscribed", time=me.digest_time or ctx.ws.digest_time, tz=ctx.tz.key))
