"""Forms for platforms without modals: one question at a time, kept in the database.

A handler that wants a form calls `start(ctx, form)`. Slack gets the form as a
modal; Telegram and the console get the first question, with Skip and Cancel
buttons. Each answer is stored in `conversations`, so a restart mid-way loses
nothing. The last answer submits the values to the same `@form` handler a
modal would, and a field error sends the user back to that question.
"""
from __future__ import annotations

from dataclasses import asdict
from typing import Any

from sqlalchemy import delete, select

from handlers.context import Context
from handlers.errors import UserError
from handlers.messages import Button, Form, FormField, FormSubmission, Reply
from handlers.registry import FORM_CHECKS, FORMS, Result, action, button_number, command, payload
from storage.models import Conversation


def chat_key(ctx: Context) -> str:
    return f"{ctx.request.platform}:{ctx.request.chat_id}"[:96]


def _load(data: dict[str, Any]) -> Form:
    fields = tuple(FormField(**{**f, "options": tuple(map(tuple, f["options"]))}) for f in data["fields"])
    return Form(name=data["name"], title=data["title"], fields=fields,
                submit_label=data["submit_label"], context=data["context"])


async def start(ctx: Context, form: Form) -> Reply:
    """Open `form` as a modal where the platform has them, else as a guided flow."""
    if ctx.request.supports_forms:
        return Reply(form=form)
    await abandon(ctx)
    ctx.session.add(Conversation(
        workspace_id=ctx.ws.id, member_id=ctx.me.id, chat_key=chat_key(ctx),
        form=asdict(form), values={}, step=0, updated_at=ctx.now,
    ))
    await ctx.session.flush()
    return _question(ctx, form, 0, intro=True)


async def active(ctx: Context) -> Conversation | None:
    return await ctx.session.scalar(
        select(Conversation).where(Conversation.member_id == ctx.me.id, Conversation.chat_key == chat_key(ctx))
    )


async def abandon(ctx: Context) -> None:
    await ctx.session.execute(
        delete(Conversation).where(Conversation.member_id == ctx.me.id, Conversation.chat_key == chat_key(ctx))
    )


def _question(ctx: Context, form: Form, step: int, *, intro: bool = False, error: str = "") -> Reply:
    field = form.fields[step]
    lines = [error] if error else []
    if intro:
        lines.append(ctx.t("guided.intro", title=form.title))
    lines.append(ctx.t("guided.question", n=step + 1, total=len(form.fields), label=field.label))
    if field.hint:
        lines.append(field.hint)
    rows = [[Button(label, payload("gopt", i))] for i, (_, label) in enumerate(field.options)]
    last = [] if field.required else [Button(ctx.t("guided.skip"), payload("gskip"))]
    rows.append([*last, Button(ctx.t("common.cancel"), payload("gcancel"))])
    return Reply(text="\n".join(lines), buttons=rows)


async def answer(ctx: Context, conversation: Conversation, text: str) -> Result:
    """Take a typed answer to the current question."""
    form = _load(conversation.form)
    field = form.fields[conversation.step]
    value = ctx.as_typed(text.strip())  # answers are free text: keep the member's punctuation
    if field.options:
        value = _option(field, value)
        if value is None:
            return _question(ctx, form, conversation.step, error=ctx.t("guided.pick_option"))
    if not value and field.required:
        return _question(ctx, form, conversation.step, error=ctx.t("guided.required"))
    check = FORM_CHECKS.get(form.name)
    problem = await check(ctx, field.key, value) if check is not None and value else None
    if problem:
        return _question(ctx, form, conversation.step, error=problem)
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
        return _question(ctx, form, following)
    values = {k: v for k, v in conversation.values.items() if not k.startswith("_")}
    result = await FORMS[form.name](ctx, FormSubmission(form.name, values, form.context))
    replies = result if isinstance(result, list) else [result]
    errors = next((r.form_errors for r in replies if r.form_errors), None)
    if errors:
        step = next(i for i, f in enumerate(form.fields) if f.key in errors)
        conversation.step = step
        conversation.values = {**values, "_revisit": "1"}
        return _question(ctx, form, step, error=errors[form.fields[step].key])
    await ctx.session.delete(conversation)
    return result


async def _current(ctx: Context) -> tuple[Conversation, Form]:
    conversation = await active(ctx)
    if conversation is None:
        raise UserError("error.choice_expired")
    return conversation, _load(conversation.form)


@action("gskip")
async def skip(ctx: Context, args: list[str]) -> Result:
    conversation, form = await _current(ctx)
    if form.fields[conversation.step].required:
        return _question(ctx, form, conversation.step, error=ctx.t("guided.required"))
    return await _advance(ctx, conversation, form, "")


@action("gopt")
async def choose(ctx: Context, args: list[str]) -> Result:
    conversation, form = await _current(ctx)
    options = form.fields[conversation.step].options
    index = button_number(args[0]) if args else None
    if index is None or index >= len(options):
        raise UserError("error.choice_expired")
    return await _advance(ctx, conversation, form, options[index][0])


@action("gcancel")
async def cancel(ctx: Context, args: list[str]) -> Result:
    await abandon(ctx)
    return Reply(text=ctx.t("common.cancelled"), edit=True)


@command("cancel", aliases=("取消",), menu=False)
async def cancel_command(ctx: Context, args: str) -> Result:
    """The dispatcher already dropped any guided flow before running a command."""
    return Reply(text=ctx.t("common.cancelled"))
