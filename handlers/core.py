"""The one entry point every adapter calls: `Core.handle(request) -> replies`.

Each request is one database transaction: the redelivery key, the member's
sighting and the command's work commit together, so a platform that delivers
an update twice gets it applied once; an adapter that reports when its replies
were shown (`answered`) gets them again on a redelivery that comes before that
(the process died in between). Two deliveries of one update at once (two
processes behind a load balancer) may both be told its kept replies; only the
one whose first posting request claims them at the wire (`answered` returns
True) sends them. A `UserError`, a refused permission or a crash
rolls back the whole transaction, and a second one records the key, the
sighting and the short message the member gets in their language instead of a
stack trace: exactly the command's changes are undone, without a savepoint
around every command.
"""
from __future__ import annotations

import asyncio
import importlib
import logging
import time
from dataclasses import replace
from datetime import timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, bindparam, delete, update
from sqlalchemy.exc import IntegrityError

from handlers import guided, identity, kept_replies, metrics
from handlers.cards import customer_label
from handlers.context import Context, LaterWork, Services
from handlers.customers import invalid_text
from handlers.errors import UserError
from handlers.lookup import NeedChoice
from handlers.messages import Button, Reply, Request
from handlers.parsing import fold
from handlers.registry import ACTIONS, FORMS, Result, action, button_number, find_command, payload
from storage.access import Forbidden
from storage.db import Database, commit_without_waiting_for_the_disk
from storage.db_thread import run_on
from storage.prepared import Prepared
from storage.rows import insert_row
from storage.models import (Conversation, Customer, ImportFile, Invite, LinkCode, PendingChoice, ProcessedUpdate,
                            ReceivedUpdate)
from storage.standardise import InvalidValue

log = logging.getLogger(__name__)
_KEY = ProcessedUpdate.key == bindparam("update_key")
_STILL_KEPT = ProcessedUpdate.unanswered.is_not(None)


def _answer_mark(*where: ColumnElement[bool], kept: Any) -> Prepared:
    """A mark an answer's request waits on, built once (no statement built and keyed per answer);
    its row comes back when it changed one."""
    return Prepared(update(ProcessedUpdate).where(*where).values(unanswered=kept).returning(ProcessedUpdate.key))


#: The kept replies claimed as leaving from this process: no row when another delivery claimed them.
_CLAIM_ANSWER = _answer_mark(_KEY, _STILL_KEPT, kept=None)
#: The replies put back: this process's try failed, or it kept only the replies of its later work.
_KEEP_ANSWER = _answer_mark(_KEY, kept=bindparam("kept_replies"))
#: The replies of the later work added to those kept, unless another delivery claimed those.
_KEEP_MORE = _answer_mark(_KEY, _STILL_KEPT, kept=bindparam("kept_replies"))


class Core:
    def __init__(self, db: Database, services: Services) -> None:
        importlib.import_module("handlers.commands")  # the command families register on import
        self.db = db
        self.services = services

    async def handle(self, request: Request) -> list[Reply]:
        """The replies to `request`, its work done where the database runs commands (Database.on_thread)."""
        return await self.db.on_thread(self._handle, _progress_back_here(request))

    async def _handle(self, request: Request) -> list[Reply]:
        now, started = self.services.clock(), time.perf_counter()
        outcome = metrics.OK
        try:
            try:
                ctx, replies = await self._apply(request, now)
            except _CommandFailed as failed:  # its transaction rolled back: answer it in a new one
                outcome = failed.outcome
                ctx, replies = await self._apply(request, now, failed)
        except Exception as problem:
            if isinstance(problem, IntegrityError) and request.update_key:  # applied by a concurrent delivery
                log.info("update %s was applied concurrently; skipping", request.update_key)
                return []
            metrics.command_done(_command_name(request), metrics.FAILURE, time.perf_counter() - started)
            raise  # the database failed under the command: the adapter apologises
        metrics.command_done(_command_name(request), outcome, time.perf_counter() - started)
        if ctx is None:
            return replies
        ctx.run_after_commit()
        if ctx.erased:
            await self.db.erase_traces()
        later = ctx.take_later()
        if not later:
            return replies
        later_replies = await self._run_later(ctx, later)
        if not (request.update_key and request.reports_answers):
            return replies + later_replies
        if await self._keep(_KEEP_MORE, request.update_key, replies + later_replies):
            return replies + later_replies  # all kept until they are shown
        if later_replies:  # another delivery is showing the first replies (or there were none)
            await self._keep(_KEEP_ANSWER, request.update_key, later_replies)
        return later_replies  # this one shows what came later

    async def _apply(self, request: Request, now: Any, failed: _CommandFailed | None = None,
                     ) -> tuple[Context | None, list[Reply]]:
        """One transaction: the redelivery key, the member's sighting, and the command's work, or, after
        the command failed (`failed`), what tells the member so. No context for an update applied before."""
        async with self.db.transaction() as session:
            ctx = Context(
                services=self.services, session=session, request=request, now=now,
                locale=self.services.default_locale, tz=ZoneInfo(self.services.default_timezone),
            )
            done = await identity.resolve(ctx)  # reads the redelivery key too
            if done is not None:
                return None, _still_unanswered(done)
            replies = await self._run(ctx) if failed is None else await failed.explained(ctx)
            if request.update_key:  # written once, with the replies to keep: a concurrent delivery
                await insert_row(session, ProcessedUpdate(  # of the same update fails on this key and changes
                    key=request.update_key, processed_at=now,  # nothing
                    unanswered=kept_replies.dumps(replies) if request.reports_answers and replies else None))
        return ctx, replies

    async def _run_later(self, ctx: Context, work: list[LaterWork]) -> list[Reply]:
        """Work a command left for after its transaction (Context.later), each in transactions of its own."""
        replies: list[Reply] = []
        for job in work:
            try:
                replies += await job(self.db.transaction)
            except UserError as problem:
                replies.append(Reply(text=ctx.t(problem.key, **problem.params), private=True))
            except Exception:
                log.exception("work after the command failed for %r", _describe(ctx.request))
                replies.append(Reply(text=ctx.t("error.internal_later"), private=True))
        return replies

    async def locale_for(self, request: Request) -> str:
        """The language this request would be answered in (for an adapter's own lines); changes nothing."""
        return await self.db.on_thread(self._locale_for, request)

    async def _locale_for(self, request: Request) -> str:
        async with self.db.transaction() as session:
            return await identity.locale_for(session, request, self.services.default_locale)

    async def answered(self, update_key: str, replies: list[Reply] | None = None) -> bool:
        """The replies to this update are leaving from here (a redelivery now gets nothing): True, or
        False when another delivery of it claimed them first (that one answers, this one must not).
        Given `replies`: this process's try failed, and a redelivery should get them after all."""
        mark = _KEEP_ANSWER if replies else _CLAIM_ANSWER
        return await self.db.on_thread(self._keep, mark, update_key, replies)

    async def _keep(self, mark: Prepared, update_key: str, replies: list[Reply] | None) -> bool:
        async with self.db.plain_transaction() as connection:
            await commit_without_waiting_for_the_disk(connection)  # the answer's request waits for this
            marked = await mark.run(connection, {
                "update_key": update_key, "kept_replies": kept_replies.dumps(replies) if replies else None})
        return bool(marked.rows)

    async def _run(self, ctx: Context) -> list[Reply]:
        """The command; one that fails raises `_CommandFailed`, rolling back the whole transaction (no
        savepoint on every command: the failed path pays for a second transaction instead)."""
        try:
            result = await dispatch(ctx)
        except (UserError, Forbidden, InvalidValue, NeedChoice) as problem:
            raise _CommandFailed(problem) from None
        except Exception:
            log.exception("handler failed for %r", _describe(ctx.request))
            log.debug("the failed request's text: %r", ctx.request.text[:200])
            raise _CommandFailed(None) from None
        return result if isinstance(result, list) else [result]


class _CommandFailed(Exception):
    """A command refused (`problem`) or broken (None); what the answer needs outlives its transaction."""

    def __init__(self, problem: UserError | Forbidden | InvalidValue | NeedChoice | None) -> None:
        super().__init__("the command failed")
        self.problem = problem
        #: how the command ended, for handlers.metrics: "which one?" is no error, a crash is a failure
        self.outcome = (metrics.FAILURE if problem is None else
                        metrics.OK if isinstance(problem, NeedChoice) else metrics.USER_ERROR)
        if isinstance(problem, NeedChoice):  # read now: the rollback expires the customers
            problem.choices = [(c.id, customer_label(c)) for c in problem.candidates]

    async def explained(self, ctx: Context) -> list[Reply]:
        if self.problem is None:
            return [Reply(text=ctx.t("error.internal"), private=True)]
        result = await _explain(ctx, self.problem)
        return result if isinstance(result, list) else [result]


async def dispatch(ctx: Context) -> Result:
    """Route a request to its action, form or command handler."""
    request = ctx.request
    if request.action:
        name, *args = request.action.split(":")
        entry = ACTIONS.get(name)
        if entry is None:
            raise UserError("error.choice_expired")
        ctx.scope.require_role(entry.role, name)
        return await entry.func(ctx, args)
    if request.submission:
        if request.submission.name not in FORMS:
            raise UserError("error.choice_expired")
        _ = ctx.scope  # forms need a member
        return await FORMS[request.submission.name](ctx, request.submission)
    return await run_text(ctx, fold(request.text).strip())


async def run_text(ctx: Context, text: str) -> Result:
    word, _, args = text.partition(" ")
    entry = find_command(word.lstrip("/").split("@")[0]) if word else None
    conversation = await guided.active(ctx) if ctx.member is not None else None
    if conversation is not None and not word.startswith("/") and (entry is None or entry.name != "cancel"):
        return await guided.answer(ctx, conversation, text)  # mid-form, only /commands interrupt
    if entry is None:
        if not ctx.request.addressed:
            return []
        raise UserError("error.unknown_command", command=word[:40]) if word else UserError("error.nothing_typed")
    if ctx.refused is not None and (entry.needs_workspace or ctx.request.space is not None):
        raise ctx.not_a_member()  # lost access: nothing works in that book's chats, or on it elsewhere
    if entry.needs_workspace and ctx.workspace is None:
        raise UserError("error.start_first" if ctx.request.space and not ctx.request.is_private else "error.no_workspace")
    if ctx.workspace is not None:
        ctx.scope.require_role(entry.role, entry.name)
    if conversation is not None:  # a command ends the form it interrupts
        await guided.abandon(ctx)
    args = entry.arguments(word.lstrip("/").split("@")[0], args.strip())
    try:
        parsed: Any = entry.parse(ctx, args) if entry.parse else args
        return await (entry.func(ctx, parsed))
    except NeedChoice as choice:
        choice.text, choice.offset = text, len(text) - len(args)
        raise
    except UserError as problem:
        if problem.key != "error.need_customer":
            raise
        raise _need_customer_for(ctx, entry.name) from None


def _need_customer_for(ctx: Context, command_name: str) -> UserError:
    """"Which customer?" with how this command is written and its own first example (not /show's)."""
    usage = ctx.t(f"help.cmd.{command_name}.usage").strip().splitlines()[0].strip()
    example = ctx.t(f"help.cmd.{command_name}.examples").strip().splitlines()[0].strip()
    return UserError("error.need_customer_for", usage=usage, example=example)


async def _explain(ctx: Context, problem: Exception) -> Result:
    if isinstance(problem, NeedChoice):
        return await _ask_which(ctx, problem)
    if isinstance(problem, UserError):
        return Reply(text=ctx.t(problem.key, **problem.params), private=True)
    if isinstance(problem, Forbidden):
        role = ctx.t(f"role.{problem.needed}")
        key = "error.forbidden_owner" if problem.owner else (
            "error.forbidden_admin" if problem.needed == "admin" else "error.forbidden")  # none above admin
        return Reply(text=ctx.t(key, role=role), private=True)
    assert isinstance(problem, InvalidValue)
    return Reply(text=invalid_text(ctx, problem), private=True)


async def _ask_which(ctx: Context, choice: NeedChoice) -> Reply:
    """Store the half-run command and ask which customer was meant."""
    start, end = choice.offset + choice.start, choice.offset + choice.end
    token = await ctx.remember("pick", {"text": choice.text, "start": start, "end": end,
                                        "typed": ctx.request.text, "ids": [id_ for id_, _ in choice.choices]})
    rows = [[Button(label, payload("pick", token, i))] for i, (_, label) in enumerate(choice.choices)]
    rows.append([Button(ctx.t("common.cancel"), payload("pick", token, "x"))])
    ref = choice.text[start:end].strip("\"'“”‘’「」『』")  # the catalogue quotes it already
    which = "lookup.which" if len(choice.choices) > 1 else "lookup.which_one"  # one name close enough
    return Reply(text=ctx.t(which, ref=ref), buttons=rows, private=True)


@action("pick")
async def pick(ctx: Context, args: list[str]) -> Result:
    """The answer to "which one?": run the stored command with `#number` in place of the name."""
    token, index = (args + ["", ""])[:2]
    stored = await ctx.recall(token, "pick", consume=True)
    if index == "x":
        return Reply(text=ctx.t("common.cancelled"), edit=True)
    ids: list[int] = stored["ids"]
    number = button_number(index)
    if number is None or number >= len(ids):
        raise UserError("error.choice_expired")
    customer = await ctx.session.scalar(ctx.scope.customers().where(Customer.id == ids[number]))
    if customer is None:
        raise UserError("error.choice_expired")
    text = f"{stored['text'][:stored['start']]}#{customer.number}{stored['text'][stored['end']:]}"
    ctx.request = replace(ctx.request, action=None, text=stored.get("typed", text))  # free text as typed
    result = await run_text(ctx, text)
    replies = result if isinstance(result, list) else [result]
    return [Reply(text=ctx.t("lookup.picked", customer=customer_label(customer)), edit=True), *replies]


def _progress_back_here(request: Request) -> Request:
    """The request with its progress sink (the adapter's, bound to its loop) called on the loop
    handing the request over, wherever the command runs."""
    sink = request.progress
    if sink is None:
        return request
    loop = asyncio.get_running_loop()

    async def progress(reply: Reply) -> None:
        if asyncio.get_running_loop() is loop:
            await sink(reply)
        else:
            await run_on(loop, sink(reply))

    return replace(request, progress=progress)


def _still_unanswered(done: ProcessedUpdate) -> list[Reply]:
    """An update applied before: its replies if they were never shown (the process died first), else none."""
    if done.unanswered is None:
        return []
    try:
        return kept_replies.loads(done.unanswered)
    except ValueError:
        log.warning("the kept replies of update %s cannot be read; it stays unanswered", done.key)
        return []


def _command_name(request: Request) -> str:
    """The request's name for the metrics: a command, `button:<action>` or `form:<name>` from the
    registry, else `text` (free text, an unknown command): never what was typed."""
    if request.action:
        name = request.action.split(":")[0]
        return f"button:{name}" if name in ACTIONS else "button:unknown"
    if request.submission:
        return f"form:{request.submission.name}" if request.submission.name in FORMS else "form:unknown"
    word = fold(request.text).split(maxsplit=1)[0] if request.text.strip() else ""
    entry = find_command(word.lstrip("/").split("@")[0]) if word else None
    return entry.name if entry else "text"


def _describe(request: Request) -> dict[str, Any]:
    """Which request failed, for the log: ids and the command word, never what it said about a customer
    (that is logged at DEBUG only)."""
    word = fold(request.text).split(maxsplit=1)[0] if request.text.strip() else ""
    entry = find_command(word.lstrip("/").split("@")[0]) if word else None
    return {"platform": request.platform, "user": request.user_id, "chat": request.chat_id,
            "command": entry.name if entry else None,
            "action": (request.action or "").split(":")[0] or None,
            "form": request.submission.name if request.submission else None, "update": request.update_key}


async def cleanup(db: Database, services: Services) -> None:
    """Drop expired choices, kept import files, invites and link codes, stale guided flows, old
    redelivery keys and received updates left unhandled for a week (nightly)."""
    now = services.clock()
    async with db.transaction() as session:
        await session.execute(delete(PendingChoice).where(PendingChoice.expires_at < now))
        await session.execute(delete(ImportFile).where(ImportFile.expires_at < now))
        await session.execute(delete(ProcessedUpdate).where(ProcessedUpdate.processed_at < now - timedelta(days=7)))
        # a poller forgets what it handled; a row left for a week was never handled, and never will be
        await session.execute(delete(ReceivedUpdate).where(ReceivedUpdate.received_at < now - timedelta(days=7)))
        await session.execute(delete(Conversation).where(Conversation.updated_at < now - timedelta(days=7)))
        await session.execute(delete(Invite).where(Invite.expires_at < now))
        await session.execute(delete(LinkCode).where(LinkCode.expires_at < now))
