"""The mapping step of /import: how the first rows will land, with Import / Change / Cancel.

Shown when a file has columns no rule knows (or no column of names). The file is
kept in the database (`ImportFile`) while its member decides, so the buttons
work after a restart. *Change* picks one column and what it holds: buttons on
Telegram and numbered choices in the console, a modal with one select menu per
column on Slack. Each change shows the preview again; nothing starts over.
"""
from __future__ import annotations

import secrets
from datetime import datetime, timedelta

from sqlalchemy import delete, select

from handlers.context import Context
from handlers.errors import UserError
from handlers.i18n import t
from handlers.messages import Attachment, Button, Form, FormField, FormSubmission, Reply
from handlers.registry import Result, action, button_number, form, payload
from handlers.transfer import read_plan, row_reader, start_import, target_label
from storage.models import ImportFile, Workspace
from storage.transfer.columns import TARGETS, Column
from storage.transfer.export import readable_phone
from storage.transfer.plan import Plan
from storage.transfer.values import Candidate

FILE_TTL = timedelta(days=2)
PREVIEW_ROWS = 3
#: Columns offered under *Change* (those with values first); Slack modals hold up to 100 blocks.
MAX_CHOICES = 40
_ORDER = {target: i for i, target in enumerate(TARGETS)}


async def ask_about(ctx: Context, upload: Attachment, plan: Plan) -> Reply:
    """Keep the file and show how it would land."""
    token = secrets.token_urlsafe(6)
    ctx.session.add(ImportFile(token=token, workspace_id=ctx.ws.id, member_id=ctx.me.id, name=upload.name[:200],
                               content=upload.content, changes={}, created_at=ctx.now, expires_at=ctx.now + FILE_TTL))
    await ctx.session.flush()
    return preview(ctx, token, upload.name, plan)


def preview(ctx: Context, token: str, name: str, plan: Plan) -> Reply:
    """The mapping, the columns left out and the first rows as they would land, with the buttons."""
    lines, rows = describe(ctx.locale, plan, ctx.ws, ctx.now)
    buttons = [[Button(ctx.t("import.button.go"), payload("imp", token, "go"), "primary"),
                Button(ctx.t("import.button.change"), payload("imp", token, "chg")),
                Button(ctx.t("common.cancel"), payload("imp", token, "x"))]]
    if not plan.mapping.has_name:
        buttons[0].pop(0)  # nothing to call the customers by: change the mapping first
    return Reply(title=ctx.t("import.preview.title", name=name[:80]), text="\n".join(lines), items=rows,
                 buttons=buttons, private=True)


def describe(locale: str, plan: Plan, workspace: Workspace, now: datetime) -> tuple[list[str], list[str]]:
    """(lines, rows): a line per field and the columns it comes from (`Phone ← 手机号码 + 联系电话`), the
    columns left out, and the first rows as they would land (also what `crm-bot import` prints)."""
    sep = t(locale, "common.list_sep")
    landing: dict[str, list[str]] = {}
    for column in plan.mapping.columns:
        if column.header and column.role.target != "unused":
            landing.setdefault(_shown_target(column), []).append(column.header)
    order = sorted(landing, key=lambda target: _ORDER.get(target, len(_ORDER)))
    lines = [t(locale, "import.preview.rows", rows=f"{plan.rows:,}"),
             " · ".join(f"{target_label(locale, target)} ← {' + '.join(landing[target])}" for target in order)]
    unsure = plan.unsure
    if unsure:
        lines.append(t(locale, "import.preview.unknown", columns=sep.join(_sampled(plan, c) for c in unsure)))
    unused = [c.header for c in plan.mapping.columns if c.role.target == "unused" and c.header and c not in unsure
              and _has_values(plan, c)]
    if unused:
        lines.append(t(locale, "import.preview.unused", columns=sep.join(unused)))
    if not plan.mapping.has_name:
        lines.append(t(locale, "import.preview.no_name"))
    reader = row_reader(plan, workspace, locale, now)
    shown = [c for c in (reader.read(line, cells) for line, cells in plan.samples[:PREVIEW_ROWS]) if c is not None]
    return lines, [_landed(locale, workspace, c) for c in shown]


def _shown_target(column: Column) -> str:
    target = column.role.target
    if target in ("middle_name", "suffix"):
        return "name"
    if target in ("nickname", "honorific", "address_part", "label", "stage", "cadence"):
        return {"nickname": "name", "honorific": "gender", "address_part": "address", "label": "notes"}.get(
            target, "notes")
    return target


def _has_values(plan: Plan, column: Column) -> bool:
    return any(column.index < len(cells) and cells[column.index] for _, cells in plan.samples)


def _sampled(plan: Plan, column: Column) -> str:
    value = next((cells[column.index] for _, cells in plan.samples
                  if column.index < len(cells) and cells[column.index]), "")
    return f"{column.header} (“{value[:20]}”)" if value else column.header


def _landed(locale: str, workspace: Workspace, candidate: Candidate) -> str:
    values = candidate.values
    parts = [values.get("name") or "?"]
    parts += [str(values[k]) for k in ("company", "title") if values.get(k)]
    if values.get("phone"):
        parts.append(readable_phone(values["phone"], workspace.phone_region))
    parts += [str(values[k]) for k in ("email", "region") if values.get(k)]
    if candidate.owner:
        parts.append(t(locale, "import.preview.owner", owner=candidate.owner))
    return " · ".join(parts)


async def _kept(ctx: Context, token: str) -> ImportFile:
    kept = await ctx.session.scalar(select(ImportFile).where(
        ImportFile.token == token, ImportFile.workspace_id == ctx.ws.id, ImportFile.expires_at > ctx.now))
    if kept is None:
        raise UserError("error.choice_expired")
    if kept.member_id != ctx.me.id:
        raise UserError("error.choice_not_yours")
    return kept


def _plan(ctx: Context, kept: ImportFile) -> Plan:
    return read_plan(kept.content, kept.name, ctx.locale, changes=kept.changes)


@action("imp")
async def import_choice(ctx: Context, args: list[str]) -> Result:
    token, what, *rest = (args + ["", ""])[:2] + args[2:]
    kept = await _kept(ctx, token)
    if what == "x":
        await ctx.session.execute(delete(ImportFile).where(ImportFile.token == token))
        return Reply(text=ctx.t("import.cancelled", name=kept.name[:80]), edit=True)
    plan = _plan(ctx, kept)
    if what == "go":
        if not plan.mapping.has_name:
            raise UserError("import.preview.no_name")
        await ctx.session.execute(delete(ImportFile).where(ImportFile.token == token))  # a second press: expired
        start_import(ctx, plan, kept.name)
        return Reply(text=ctx.t("import.started", rows=f"{plan.rows:,}"), edit=True)
    if what == "chg":
        if ctx.request.supports_forms:
            return Reply(form=_mapping_form(ctx, token, plan))
        return _columns(ctx, token, plan)
    if what == "col" and rest:
        index = button_number(rest[0])
        if index is None or index >= len(plan.mapping.columns):
            raise UserError("error.choice_expired")
        return _targets(ctx, token, plan.mapping.columns[index])
    if what == "set" and len(rest) == 2:
        index = button_number(rest[0])
        if index is None or index >= len(plan.mapping.columns) or rest[1] not in TARGETS:
            raise UserError("error.choice_expired")
        kept.changes = {**kept.changes, plan.mapping.columns[index].header or str(index + 1): rest[1]}
        reply = preview(ctx, token, kept.name, _plan(ctx, kept))
        reply.edit = True
        return reply
    if what == "back":
        reply = preview(ctx, token, kept.name, plan)
        reply.edit = True
        return reply
    raise UserError("error.choice_expired")


def _offered(plan: Plan) -> list[Column]:
    with_values = [c for c in plan.mapping.columns if c.header and _has_values(plan, c)]
    return with_values[:MAX_CHOICES]


def _columns(ctx: Context, token: str, plan: Plan) -> Reply:
    """Which column to change: one button each, showing what it holds now."""
    rows = [[Button(f"{c.header[:30]} → {target_label(ctx.locale, _shown_target(c))}", payload("imp", token, "col", c.index))]
            for c in _offered(plan)]
    rows.append([Button(ctx.t("import.button.back"), payload("imp", token, "back"))])
    return Reply(text=ctx.t("import.change.which"), buttons=rows, edit=True, private=True)


def _targets(ctx: Context, token: str, column: Column) -> Reply:
    """What the column holds: one button per field, two a row."""
    buttons = [Button(target_label(ctx.locale, target), payload("imp", token, "set", column.index, target))
               for target in TARGETS]
    rows = [buttons[i:i + 2] for i in range(0, len(buttons), 2)]
    rows.append([Button(ctx.t("import.button.back"), payload("imp", token, "back"))])
    return Reply(text=ctx.t("import.change.what", column=column.header[:60]), buttons=rows, edit=True, private=True)


def _mapping_form(ctx: Context, token: str, plan: Plan) -> Form:
    options = tuple((target, target_label(ctx.locale, target)) for target in TARGETS)
    fields = tuple(FormField(str(c.index), c.header[:60], options=options, initial=_form_value(c))
                   for c in _offered(plan))
    return Form(name="importmap", title=ctx.t("import.change.title"), fields=fields,
                submit_label=ctx.t("import.button.show"), context={"token": token})


def _form_value(column: Column) -> str:
    target = _shown_target(column)
    return target if target in TARGETS else "notes"


@form("importmap")
async def submit_mapping(ctx: Context, submission: FormSubmission) -> Result:
    token = submission.context.get("token", "")
    kept = await _kept(ctx, token)
    plan = _plan(ctx, kept)
    changes = dict(kept.changes)
    for column in _offered(plan):
        picked = submission.values.get(str(column.index)) or ""
        if picked in TARGETS and picked != _form_value(column):
            changes[column.header] = picked
    kept.changes = changes
    return preview(ctx, token, kept.name, _plan(ctx, kept))
