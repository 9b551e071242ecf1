"""Forms for platforms without modals: one question at a time, kept in the database.

A handler that wants a form calls `start(ctx, form)`. Slack gets the form as a
modal; Telegram and the console get the first question, with Skip and Cancel
buttons. Each answer is stored in `conversations`, so a restart mid-way loses
nothing. The last answer submits the values to the same `@form` handler a
modal would, and a field error sends the user back to that question.

A button names its flow (a random token kept with the answers) and its
question, so a double tap, or a button of an earlier question or of a form
since replaced, changes nothing and says it is out of date.
"""
from __future__ import annotations

import secrets
from dataclasses import asdict
from typing import Any

from sqlalchemy import delete, select

from handlers.context import NOT_READ, Context
from handlers.errors import UserError
from handlers.messages import Button, Form, FormField, FormSubmission, Reply
from handlers.registry import FORM_CHECKS, FORMS, Result, action, button_number, command, payload
from storage.models import Conversation, Identity


#: Where a conversation keeps the token its buttons carry (keys starting with "_" are not answers).
FLOW_KEY = "_flow"


def chat_key(ctx: Context) -> str:
    return f"{ctx.request.platform}:{ctx.request.chat_id}"[:96]


def flow_of(conversation: Conversation) -> str:
    """The token of the flow (empty for one started before buttons carried it)."""
    return str(conversation.values.get(FLOW_KEY, ""))


def _load(data: dict[str, Any]) -> Form:
    fields = tuple(FormField(**{**f, "options": tuple(map(tuple, f["options"]))}) for f in data["fields"])
    return Form(name=data["name"], title=data["title"], fields=fields,
                submit_label=data["submit_label"], context=data["context"])


async def start(ctx: Context, form: Form) -> Reply:
    """Open `form` as a modal where the platform has them, else as a guided flow; where neither
    works now (a Slack mention carries nothing to open a modal with, and answers would not
    arrive), a button that opens it."""
    if ctx.request.supports_forms:
        return Reply(form=form)
    if not ctx.request.takes_answers:
        token = await ctx.remember("form", asdict(form))
        return Reply(text=ctx.t("guided.open_form", title=form.title), private=True,
                     buttons=[[Button(ctx.t("guided.open"), payload("gform", token), "primary")]])
    await abandon(ctx)
    conversation = Conversation(
        workspace_id=ctx.ws.id, member_id=ctx.me.id, chat_key=chat_key(ctx),
        form=asdict(form), values={FLOW_KEY: secrets.token_urlsafe(4)}, step=0, updated_at=ctx.now,
    )
    ctx.session.add(conversation)
    await ctx.session.flush()
    return _question(ctx, conversation, form, intro=True)


async def workspace_of_flow(ctx: Context, flow: str) -> int | None:
    """The workspace of the flow `flow` in this chat, among the conversations of any of the requesting
    account's memberships (a private chat may hold one per workspace)."""
    request = ctx.request
    rows = await ctx.session.execute(
        select(Conversation.workspace_id, Conversation.values)
        .join(Identity, Identity.member_id == Conversation.member_id)
        .where(Identity.platform == request.platform, Identity.external_id == request.user_id,
               Conversation.chat_key == chat_key(ctx))
    )
    return next((workspace_id for workspace_id, values in rows if flow and values.get(FLOW_KEY) == flow), None)


async def active(ctx: Context) -> Conversation | None:
    """The form the member has open in this chat: as the request's first query read it (once), else read now."""
    if ctx.open_form is not NOT_READ:
        found, ctx.open_form = ctx.open_form, NOT_READ
        return found
    return await ctx.session.scalar(
        select(Conversation).where(Conversation.member_id == ctx.me.id, Conversation.chat_key == chat_key(ctx))
    )


async def abandon(ctx: Context) -> None:
    await ctx.session.execute(
        delete(Conversation).where(Conversation.member_id == ctx.me.id, Conversation.chat_key == chat_key(ctx))
    )


def _question(ctx: Context, conversation: Conversation, form: Form, *, intro: bool = False,
              error: str = "") -> Reply:
    """The conversation's current question, with buttons that name the flow and the question."""
    step, flow = conversation.step, flow_of(conversation)
    field = form.fields[step]
    lines = [error] if error else []
    if intro:
        lines.append(ctx.t("guided.intro", title=form.title))
    in_group = not ctx.request.is_private and ctx.request.space is not None  # Telegram privacy: replies only
    lines.append(_question_line(ctx, form, step, key="guided.question_in_group" if in_group else "guided.question"))
    if field.hint:
        lines.append(field.hint)
    rows = [[Button(label, payload("gopt", flow, step, i))] for i, (_, label) in enumerate(field.options)]
    last = [] if field.required else [Button(ctx.t("guided.skip"), payload("gskip", flow, step))]
    rows.append([*last, Button(ctx.t("common.cancel"), payload("gcancel", flow))])
    return Reply(text="\n".join(lines), buttons=rows)


def _question_line(ctx: Context, form: Form, step: int, *, key: str = "guided.question") -> str:
    return ctx.t(key, n=step + 1, total=len(form.fields), label=form.fields[step].label)


async def answer(ctx: Context, conversation: Conversation, text: str) -> Result:
    """Take a typed answer to the current question."""
    form = _load(conversation.form)
    field = form.fields[conversation.step]
    value = ctx.as_typed(text.strip())  # answers are free text: keep the member's punctuation
    if field.options:
        value = _option(field, value)
        if value is None:
            return _question(ctx, conversation, form, error=ctx.t("guided.pick_option"))
    if not value and field.required:
        return _question(ctx, conversation, form, error=ctx.t("guided.required"))
    check = FORM_CHECKS.get(form.name)
    problem = await check(ctx, field.key, value) if check is not None and value else None
    if problem:
        return _question(ctx, conversation, form, error=problem)
    return await _advance(ctx, conversation, form, value)


def _option(field: FormField, text: str) -> str | None:
    for value, label in field.options:
        if text.casefold() in (value.casefold(), label.casefold()):
            return value
    return None


async def _advance(ctx: Context, conversation: Conversation, form: Form, value: str) -> Result:
    conversation.values = {**conversation.values, form.fields[conversation.step].key: value}
    conversation.updated_at = ctx.now
    following = conversation.step + 1
    revisit = conversation.values.get("_revisit")
    if revisit:  # answering a question that failed validation: submit again at once
        following = len(form.fields)
    if following < len(form.fields):
        conversation.step = following
        return _question(ctx, conversation, form)
    values = {k: v for k, v in conversation.values.items() if not k.startswith("_")}
    result = await FORMS[form.name](ctx, FormSubmission(form.name, values, form.context))
    replies = result if isinstance(result, list) else [result]
    errors = next((r.form_errors for r in replies if r.form_errors), None)
    if errors:
        step = next(i for i, f in enumerate(form.fields) if f.key in errors)
        conversation.step = step
        conversation.values = {**conversation.values, "_revisit": "1"}
        return _question(ctx, conversation, form, error=errors[form.fields[step].key])
    await ctx.session.delete(conversation)
    return result


async def _pressed(ctx: Context, args: list[str], *, any_step: bool = False) -> tuple[Conversation, Form, list[str]]:
    """The flow a button `<flow>:<step>:…` belongs to, still at that question (`any_step`: at any),
    and the button's other arguments."""
    conversation = await active(ctx)
    if conversation is None:
        raise UserError("error.choice_expired")
    form = _load(conversation.form)
    flow, step = (args + ["", ""])[:2]
    if flow != flow_of(conversation) or not (any_step or button_number(step) == conversation.step):
        raise UserError("guided.stale", question=_question_line(ctx, form, conversation.step))
    return conversation, form, args[2:]


@action("gskip")
async def skip(ctx: Context, args: list[str]) -> Result:
    conversation, form, _ = await _pressed(ctx, args)
    if form.fields[conversation.step].required:
        return _question(ctx, conversation, form, error=ctx.t("guided.required"))
    return await _advance(ctx, conversation, form, "")


@action("gopt")
async def choose(ctx: Context, args: list[str]) -> Result:
    conversation, form, rest = await _pressed(ctx, args)
    options = form.fields[conversation.step].options
    index = button_number(rest[0]) if rest else None
    if index is None or index >= len(options):
        raise UserError("error.choice_expired")
    return await _advance(ctx, conversation, form, options[index][0])


@action("gform")
async def open_form(ctx: Context, args: list[str]) -> Result:
    """The button `start` offers: the press can open the form."""
    return await start(ctx, _load(await ctx.recall(args[0] if args else "", "form", consume=True)))


@action("gcancel")
async def cancel(ctx: Context, args: list[str]) -> Result:
    """Cancel ends its own flow from any of its questions, never a flow started since."""
    await _pressed(ctx, args, any_step=True)
    await abandon(ctx)
    return Reply(text=ctx.t("common.cancelled"), edit=True)


@command("cancel", aliases=("取消",), menu=False)
async def cancel_command(ctx: Context, args: str) -> Result:
    """The dispatcher already dropped any guided flow before running a command."""
    return Reply(text=ctx.t("common.cancelled"))
