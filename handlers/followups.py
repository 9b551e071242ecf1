"""Follow-ups: /remind (and the card's Remind form), /reminders, /done, /snooze, /silent.

Also the buttons of reminder messages and silent-customer lists, which the
scheduler attaches to what it delivers (`reminder_buttons`, `silent_buttons`):
`rdone:<reminder_id>`, `rsnz:<reminder_id>:<1d|1w>`, `ssnz:<customer_id>`,
`slost:<customer_id>` and the card's `flog:<customer_id>`. Buttons pressed in a
/reminders or /silent list carry one more part, the list they sit in (`m0`: mine,
page 0; `t2`: the team's, page 2), so the press redraws that list; elsewhere the
press shows the reminder's new state. Buttons carry ids, which are re-read within
the member's workspace: a stale or foreign id is an expired button.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta, timezone

from handlers import guided
from handlers.cards import customer_label
from handlers.context import Context
from handlers.customers import saved
from handlers.errors import UserError
from handlers.i18n import catalogue
from handlers.interactions import customer_by_id
from handlers.lookup import take_customer
from handlers.messages import Button, Field, Form, FormField, FormSubmission, Reply
from handlers.paging import PAGE_SIZE, page_buttons
from handlers.parsing import Token, When, parse_when, split_when, tokenize
from handlers.readings import MOVE_ACTION, move_button, reading_note
from handlers.registry import Result, action, button_number, command, form, payload
from storage import followups, scoring
from storage.followups import PendingReminder, SilentCustomer
from storage.models import Customer, Member, Reminder

#: Longest reminder note (storage keeps 1,000 characters).
NOTE_LIMIT = 1000
SNOOZE_DAYS = {"1d": 1, "1w": 7}
TEAM_WORDS = ("team", "all", "团队", "全部")


# --- which list a button sits in -----------------------------------------------------------

@dataclass(frozen=True)
class ListView:
    """A page of /reminders or /silent: the member's own list or the team's."""

    team: bool
    page: int = 0

    def code(self) -> str:
        return f"{'t' if self.team else 'm'}{self.page}"

    @classmethod
    def read(cls, code: str) -> ListView | None:
        page = button_number(code[1:]) if len(code) >= 2 and code[0] in "mt" else None
        return cls(code[0] == "t", page) if page is not None else None

    def member_id(self, ctx: Context) -> int | None:
        """Whose rows are listed: the member's, or everyone's (None; managers only)."""
        if not self.team:
            return ctx.me.id
        ctx.scope.require_role("manager", "team")
        return None

    def within(self, total: int) -> ListView:
        """The same list, on its last page if rows went away since it was shown."""
        return ListView(self.team, min(self.page, max(0, (total - 1) // PAGE_SIZE)))

    @property
    def args(self) -> str:
        return "team" if self.team else ""


def read_team(ctx: Context, text: str) -> bool:
    """Nothing: the member's own list; `team`: everyone's (the list checks the role)."""
    word = text.strip().casefold()
    if word and word not in TEAM_WORDS:
        raise UserError("error.team_usage")
    return bool(word)


def _view(args: list[str], index: int) -> ListView | None:
    return ListView.read(args[index]) if len(args) > index else None


# --- dates ------------------------------------------------------------------------------------

def future_when(ctx: Context, text: str) -> When:
    """A date that has not passed yet (reminders and snoozes look forward)."""
    return _ahead(ctx, parse_when(text, now=ctx.now, tz=ctx.tz))


def _ahead(ctx: Context, when: When) -> When:
    if when.at < ctx.now:
        raise UserError("error.when_past", when=ctx.fmt_time(when.at))
    return when


def split_when_note(ctx: Context, args: str, tokens: list[Token]) -> tuple[When, str]:
    """The longest leading part of the words (up to the first quoted one) that reads as a date,
    and the note after it (`friday 3pm bring samples`, `明天下午三点打电话`)."""
    leading = next((i for i, token in enumerate(tokens) if token.quoted), len(tokens))
    end = tokens[leading - 1].end if leading else tokens[0].start
    try:
        when, rest = split_when(args[tokens[0].start:end], now=ctx.now, tz=ctx.tz)
    except UserError:
        raise UserError("error.remind_bad_date", text=args[tokens[0].start:][:40]) from None
    note = (rest + " " + args[end:]).strip() if end < len(args) else rest
    return _ahead(ctx, when), note


# --- /remind and the Remind form ------------------------------------------------------------------

@command("remind", aliases=("提醒",))
async def remind(ctx: Context, args: str) -> Result:
    tokens = tokenize(args)
    if not tokens:
        raise UserError("error.remind_usage")
    customer, rest = await take_customer(ctx, tokens, "remind")
    if not rest:
        return await guided.start(ctx, remind_form(ctx, customer))
    when, note = split_when_note(ctx, args, rest)
    return await save_reminder(ctx, customer, when, ctx.as_typed(note))


async def save_reminder(ctx: Context, customer: Customer, when: When, note: str) -> Reply:
    """A reminder for the member who set it; the customer's next follow-up moves with it."""
    if len(note) > NOTE_LIMIT:
        raise UserError("error.activity_too_long", limit=NOTE_LIMIT)
    reminder = await followups.create_reminder(
        ctx.session, ctx.ws, member_id=ctx.me.id, created_by=ctx.me.id, customer_id=customer.id,
        due_at=when.at, explicit_time=when.explicit_time, note=note, now=ctx.now,
    )
    await saved(ctx, customer, purchases_changed=False)
    text = "\n".join(filter(None, [reminder_line(ctx, reminder, customer), reading_note(ctx, when)]))
    return Reply(text=text, buttons=[[move_button(ctx, reminder.id)]])


def remind_form(ctx: Context, customer: Customer) -> Form:
    return Form(
        name="remind",
        title=ctx.t("form.remind.title", customer=customer.name[:40]),
        fields=(
            FormField("when", ctx.t("form.remind.when"), required=True, hint=ctx.t("form.remind.when_hint")),
            FormField("note", ctx.t("form.remind.note"), multiline=True, hint=ctx.t("form.remind.note_hint")),
        ),
        submit_label=ctx.t("form.save"),
        context={"customer_id": str(customer.id)},
    )


@action("frem")
async def remind_button(ctx: Context, args: list[str]) -> Result:
    customer = await customer_by_id(ctx, args[0] if args else "", "remind")
    return await guided.start(ctx, remind_form(ctx, customer))


async def check_remind_answer(ctx: Context, key: str, value: str) -> str | None:
    if key == "when":
        try:
            future_when(ctx, value)
        except UserError as problem:
            return ctx.t(problem.key, **problem.params)
    if key == "note" and len(value) > NOTE_LIMIT:
        return ctx.t("error.activity_too_long", limit=NOTE_LIMIT)
    return None


@form("remind", check=check_remind_answer)
async def submit_remind(ctx: Context, submission: FormSubmission) -> Result:
    customer = await customer_by_id(ctx, submission.context.get("customer_id", ""), "remind")
    text = (submission.values.get("when") or "").strip()
    note = (submission.values.get("note") or "").strip()
    errors: dict[str, str] = {}
    when = None
    try:
        when = future_when(ctx, text) if text else None
    except UserError as problem:
        errors["when"] = ctx.t(problem.key, **problem.params)
    if not text:
        errors["when"] = ctx.t("guided.required")
    if len(note) > NOTE_LIMIT:
        errors["note"] = ctx.t("error.activity_too_long", limit=NOTE_LIMIT)
    if errors or when is None:
        return Reply(form_errors=errors)
    return await save_reminder(ctx, customer, when, note)


# --- how a reminder reads ---------------------------------------------------------------------------

def reminder_line(ctx: Context, reminder: Reminder, customer: Customer | None) -> str:
    """`Reminder #N: <customer> on <time> — <note>`."""
    line = ctx.t("reminder.line", number=reminder.number, when=ctx.fmt_time(reminder.due_at),
                 customer=customer_label(customer) if customer else "—")
    return _with_note(line, reminder.note)


def _with_note(line: str, note: str) -> str:
    return f"{line} — {note}" if note else line


def reminder_buttons(ctx: Context, reminder: Reminder) -> list[list[Button]]:
    """Done / Snooze 1 day / Snooze 1 week / Log, for a delivered reminder."""
    rows = [[Button(ctx.t("reminder.done_button"), payload("rdone", reminder.id), "primary"),
             Button(ctx.t("reminder.snooze_day"), payload("rsnz", reminder.id, "1d")),
             Button(ctx.t("reminder.snooze_week"), payload("rsnz", reminder.id, "1w"))]]
    if reminder.customer_id is not None:
        rows.append([Button(ctx.t("button.log"), payload("flog", reminder.customer_id))])
    return rows


# --- /reminders -----------------------------------------------------------------------------------

@command("reminders", parse=read_team, aliases=("我的提醒",))
async def reminders(ctx: Context, team: bool, page: int = 0) -> Result:
    return await reminder_list(ctx, ListView(team, page))


async def reminder_list(ctx: Context, view: ListView, *, note: str = "") -> Reply:
    """A page of pending reminders, overdue first, each with Done and Snooze (1 day)."""
    member_id = view.member_id(ctx)
    total = await followups.count_pending_reminders(ctx.session, ctx.ws.id, member_id)
    here = view.within(total)
    rows = await followups.pending_reminders(ctx.session, ctx.ws.id, member_id, limit=PAGE_SIZE,
                                             offset=here.page * PAGE_SIZE)
    which = "team" if view.team else "mine"
    heading = ctx.t(f"reminders.{which}", count=total) if total else ctx.t(f"reminders.none_{which}")
    return Reply(
        text="\n".join(filter(None, [note, heading])),
        items=[_reminder_row(ctx, row, view.team) for row in rows],
        buttons=[[Button(ctx.t("reminders.done_button", number=row.reminder.number),
                         payload("rdone", row.reminder.id, here.code())),
                  Button(ctx.t("reminders.snooze_button", number=row.reminder.number),
                         payload("rsnz", row.reminder.id, "1d", here.code()))] for row in rows]
        + await page_buttons(ctx, "reminders", here.args, here.page, total),
    )


def _reminder_row(ctx: Context, row: PendingReminder, team: bool) -> str:
    reminder = row.reminder
    key = "reminders.row_overdue" if reminder.due_at < ctx.now else "reminders.row"
    line = ctx.t(key, number=reminder.number, when=ctx.fmt_time(reminder.due_at),
                 customer=customer_label(row.customer) if row.customer else "—")
    if team:
        line += " · " + ctx.t("reminders.for", member=row.member_name)
    return _with_note(line, reminder.note)


# --- /done, /snooze and their buttons ------------------------------------------------------------------

@command("done", aliases=("完成",))
async def done(ctx: Context, args: str) -> Result:
    tokens = tokenize(args)
    if len(tokens) != 1:
        raise UserError("error.done_usage")
    reminder = await _numbered(ctx, tokens[0].text, "error.done_usage")
    customer = await _close(ctx, reminder)
    return _closed_reply(ctx, reminder, customer)


@command("snooze", aliases=("推迟",))
async def snooze(ctx: Context, args: str) -> Result:
    tokens = tokenize(args)
    if len(tokens) < 2:
        raise UserError("error.snooze_usage")
    reminder = await _numbered(ctx, tokens[0].text, "error.snooze_usage")
    when = future_when(ctx, args[tokens[1].start:])
    customer = await _move(ctx, reminder, when)
    return _moved_reply(ctx, reminder, customer, reading=reading_note(ctx, when))


@action("rdone")
async def done_button(ctx: Context, args: list[str]) -> Result:
    reminder = await _pressed(ctx, args)
    customer = await _close(ctx, reminder)
    view = _view(args, 1)
    if view is not None:
        note = ctx.t("reminder.done", number=reminder.number)
        return _redrawn(await reminder_list(ctx, view, note=note), note)
    return _closed_reply(ctx, reminder, customer, pressed=True)


@action("rsnz")
async def snooze_button(ctx: Context, args: list[str]) -> Result:
    """Snooze by a day or a week: from the due time if it is still ahead, else from now."""
    days = SNOOZE_DAYS.get(args[1]) if len(args) > 1 else None
    if days is None:
        raise UserError("error.choice_expired")
    reminder = await _pressed(ctx, args)
    ahead = reminder.due_at > ctx.now
    start = ctx.local(reminder.due_at if ahead else ctx.now)
    due_at = (start + timedelta(days=days)).astimezone(timezone.utc)  # wall-clock days, across DST
    customer = await _move(ctx, reminder, When(due_at, reminder.explicit_time and ahead))
    view = _view(args, 2)
    if view is not None:
        note = ctx.t("reminder.snoozed", number=reminder.number, when=ctx.fmt_time(due_at))
        return _redrawn(await reminder_list(ctx, view, note=note), note)
    return _moved_reply(ctx, reminder, customer, pressed=True)


def move_form(ctx: Context, reminder: Reminder) -> Form:
    """One field: the reminder's new time, read like /snooze's."""
    return Form(
        name="rmove",
        title=ctx.t("form.move.title", number=reminder.number),
        fields=(FormField("when", ctx.t("form.remind.when"), required=True, hint=ctx.t("form.remind.when_hint")),),
        submit_label=ctx.t("form.save"),
        context={"reminder_id": str(reminder.id)},
    )


@action(MOVE_ACTION)
async def move_button_pressed(ctx: Context, args: list[str]) -> Result:
    return await guided.start(ctx, move_form(ctx, await _pressed(ctx, args)))


async def check_move_answer(ctx: Context, key: str, value: str) -> str | None:
    try:
        future_when(ctx, value)
    except UserError as problem:
        return ctx.t(problem.key, **problem.params)
    return None


@form("rmove", check=check_move_answer)
async def submit_move(ctx: Context, submission: FormSubmission) -> Result:
    reminder = await _pressed(ctx, [submission.context.get("reminder_id", "")])
    text = (submission.values.get("when") or "").strip()
    try:
        when = future_when(ctx, text) if text else None
    except UserError as problem:
        return Reply(form_errors={"when": ctx.t(problem.key, **problem.params)})
    if when is None:
        return Reply(form_errors={"when": ctx.t("guided.required")})
    customer = await _move(ctx, reminder, when)
    return _moved_reply(ctx, reminder, customer, reading=reading_note(ctx, when))


async def _numbered(ctx: Context, text: str, usage: str) -> Reminder:
    """The workspace's pending reminder `#n`, if this member may close or move it."""
    number = button_number(text.removeprefix("#"))  # ASCII digits only: '²' is a digit to str.isdigit
    if number is None:
        raise UserError(usage)
    reminder = await followups.reminder_by_number(ctx.session, ctx.ws.id, number)
    if reminder is None:
        raise UserError("error.no_reminder", number=number)
    return await _open_and_mine(ctx, reminder)


async def _pressed(ctx: Context, args: list[str]) -> Reminder:
    """The reminder a button names; a stale or foreign id is an expired button."""
    reminder_id = button_number(args[0]) if args else None
    reminder = await followups.reminder_by_id(ctx.session, ctx.ws.id, reminder_id) if reminder_id is not None else None
    if reminder is None:
        raise UserError("error.choice_expired")
    return await _open_and_mine(ctx, reminder)


async def _open_and_mine(ctx: Context, reminder: Reminder) -> Reminder:
    if not followups.may_close(ctx.scope, reminder):
        member = await ctx.session.get(Member, reminder.member_id)
        raise UserError("error.reminder_not_yours", number=reminder.number, member=member.name if member else "—")
    if reminder.status != followups.PENDING:
        status = f"reminder.status.{reminder.status}"
        raise UserError("error.reminder_closed", number=reminder.number,
                        status=ctx.t(status) if status in catalogue("en") else reminder.status)
    return reminder


async def _customer_of(ctx: Context, reminder: Reminder) -> Customer | None:
    if reminder.customer_id is None:
        return None
    return await ctx.session.get(Customer, reminder.customer_id)


async def _close(ctx: Context, reminder: Reminder) -> Customer | None:
    followups.complete_reminder(ctx.session, reminder, member_id=ctx.me.id, now=ctx.now)
    return await _refreshed(ctx, reminder)


async def _move(ctx: Context, reminder: Reminder, when: When) -> Customer | None:
    followups.reschedule_reminder(ctx.session, reminder, due_at=when.at, explicit_time=when.explicit_time,
                                  member_id=ctx.me.id, now=ctx.now)
    return await _refreshed(ctx, reminder)


async def _refreshed(ctx: Context, reminder: Reminder) -> Customer | None:
    """The reminder's customer with its next follow-up recomputed."""
    customer = await _customer_of(ctx, reminder)
    if customer is not None:
        await saved(ctx, customer, purchases_changed=False)
    return customer


def _closed_reply(ctx: Context, reminder: Reminder, customer: Customer | None, *, pressed: bool = False) -> Reply:
    note = ctx.t("reminder.done", number=reminder.number)
    buttons = [[Button(ctx.t("button.log"), payload("flog", customer.id))]] if customer else []
    return _state_reply(ctx, note, reminder, customer, buttons, pressed)


def _moved_reply(ctx: Context, reminder: Reminder, customer: Customer | None, *, pressed: bool = False,
                 reading: str = "") -> Reply:
    note = ctx.t("reminder.snoozed", number=reminder.number, when=ctx.fmt_time(reminder.due_at))
    buttons = reminder_buttons(ctx, reminder) + ([] if pressed else [[move_button(ctx, reminder.id)]])
    reply = _state_reply(ctx, note, reminder, customer, buttons, pressed)
    if reading:
        reply.text += "\n" + reading
    return reply


def _state_reply(
    ctx: Context, note: str, reminder: Reminder, customer: Customer | None, buttons: list[list[Button]],
    pressed: bool,
) -> Reply:
    """The reminder's new state; a button press edits the reminder message into it."""
    fields = [Field(ctx.t("card.next_followup"), ctx.fmt_time(customer.next_followup_at))] if customer else []
    return Reply(text=f"{note}\n{reminder_line(ctx, reminder, customer)}", fields=fields, buttons=buttons,
                 edit=pressed, notice=note if pressed else "")


def _redrawn(reply: Reply, note: str) -> Reply:
    """A list redrawn in place of the one whose button was pressed, `note` on top and as a toast."""
    reply.edit, reply.notice = True, note
    return reply


# --- /silent and its buttons --------------------------------------------------------------------------

@command("silent", parse=read_team, aliases=("沉默",))
async def silent(ctx: Context, team: bool, page: int = 0) -> Result:
    return await silent_list(ctx, ListView(team, page))


async def silent_list(ctx: Context, view: ListView, *, note: str = "") -> Reply:
    """A page of customers past their cadence, longest silent first, with Log / Snooze / Mark lost."""
    member_id = view.member_id(ctx)
    total = await followups.count_silent_customers(ctx.session, ctx.scope, member_id, ctx.now)
    here = view.within(total)
    rows = await followups.silent_customers(ctx.session, ctx.scope, member_id, ctx.now, PAGE_SIZE,
                                            here.page * PAGE_SIZE)
    which = "team" if view.team else "mine"
    heading = ctx.t(f"silent.{which}", count=total) if total else ctx.t(f"silent.none_{which}")
    return Reply(
        text="\n".join(filter(None, [note, heading])),
        items=[_silent_row(ctx, row, view.team) for row in rows],
        buttons=[silent_buttons(ctx, row.customer, here) for row in rows]
        + await page_buttons(ctx, "silent", here.args, here.page, total),
    )


def _silent_row(ctx: Context, row: SilentCustomer, team: bool) -> str:
    tier = ctx.t(f"tier.{row.customer.tier}") if row.customer.tier else ctx.t("silent.no_tier")
    line = ctx.t("silent.row", customer=customer_label(row.customer), days=row.silent_days,
                 cadence=row.cadence_days, tier=tier)
    return f"{line} · {ctx.t('silent.owner', owner=row.owner_name)}" if team else line


def silent_buttons(ctx: Context, customer: Customer, view: ListView | None = None) -> list[Button]:
    """Log / Snooze / Mark lost for one silent customer (the sweep's message uses them too)."""
    listed = (view.code(),) if view else ()
    ask = ("", view.code()) if view else ()
    return [
        Button(ctx.t("silent.log_button", number=customer.number), payload("flog", customer.id), "primary"),
        Button(ctx.t("silent.snooze_button", number=customer.number), payload("ssnz", customer.id, *listed)),
        Button(ctx.t("silent.lost_button", number=customer.number), payload("slost", customer.id, *ask)),
    ]


@action("ssnz")
async def snooze_silence(ctx: Context, args: list[str]) -> Result:
    customer = await customer_by_id(ctx, args[0] if args else "", "edit")
    followups.snooze_silence(ctx.session, customer, member_id=ctx.me.id, now=ctx.now)
    until = ctx.now + timedelta(days=scoring.cadence_days(customer, ctx.ws))
    note = ctx.t("silent.snoozed", customer=customer_label(customer), until=ctx.fmt_date(until))
    view = _view(args, 1)
    if view is not None:
        return _redrawn(await silent_list(ctx, view, note=note), note)
    return Reply(text=note, notice=note)


@action("slost")
async def mark_lost(ctx: Context, args: list[str]) -> Result:
    """`slost:<id>` asks; `slost:<id>:y` marks lost, `slost:<id>:n` cancels; a list code may follow."""
    customer = await customer_by_id(ctx, args[0] if args else "", "edit")
    answer, view = (args[1] if len(args) > 1 else ""), _view(args, 2)
    listed = (view.code(),) if view else ()
    if answer == "":
        return Reply(
            text=ctx.t("silent.lost_confirm", customer=customer_label(customer), number=customer.number),
            buttons=[[Button(ctx.t("silent.lost_yes"), payload("slost", customer.id, "y", *listed), "danger"),
                      Button(ctx.t("common.cancel"), payload("slost", customer.id, "n", *listed))]],
            edit=view is not None,
        )
    if answer == "y":
        if customer.lost_at is None:
            followups.mark_lost(ctx.session, customer, member_id=ctx.me.id, now=ctx.now)
            await saved(ctx, customer)
        note = ctx.t("silent.lost", customer=customer_label(customer), stage=ctx.t(f"stage.{customer.stage}"))
    else:
        note = ctx.t("common.cancelled")
    if view is not None:
        return _redrawn(await silent_list(ctx, view, note=note), note)
    return Reply(text=note, edit=True)
