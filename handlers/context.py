"""What a handler gets: who is asking, in which workspace, and the services to answer.

One `Context` lives for one request and one database transaction. It carries
the member's language and time zone, the access `Scope`, the injected clock,
and small helpers every handler needs (texts, times, money, stored choices).
"""
from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from contextlib import AbstractAsyncContextManager
from typing import Any, Awaitable, Callable, Iterable
from zoneinfo import ZoneInfo

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from handlers.errors import UserError
from handlers.i18n import t
from handlers.messages import Reply, Request
from handlers.parsing import as_typed
from storage.access import Scope
from storage.models import Member, PendingChoice, Workspace
from storage.search import CustomerSearch

Clock = Callable[[], datetime]
#: Opens a transaction of its own (`Database.transaction`), for work done after the command's.
Transaction = Callable[[], AbstractAsyncContextManager[AsyncSession]]
#: Work a command leaves for after its transaction: it writes in transactions of its own, in turns
#: (a big import, batch by batch), and answers with more replies.
LaterWork = Callable[[Transaction], Awaitable[list[Reply]]]

CURRENCY_SYMBOLS = {"CNY": "¥", "USD": "$", "EUR": "€", "GBP": "£"}
CHOICE_TTL = timedelta(days=2)
#: `Context.open_form` before (or without) the request's first query.
NOT_READ: Any = object()


def fmt_money(minor: int, currency: str) -> str:
    """`¥12,000`, `$300.50`, `50 EUR`: amounts in minor units, as people write them."""
    major = minor / 100
    number = f"{major:,.0f}" if minor % 100 == 0 else f"{major:,.2f}"
    symbol = CURRENCY_SYMBOLS.get(currency)
    return f"{symbol}{number}" if symbol else f"{number} {currency}"


@dataclass
class Services:
    """What outlives a request: the clock, the search index and process defaults."""

    clock: Clock
    search: CustomerSearch
    default_timezone: str = "Asia/Shanghai"
    default_locale: str = "zh"


@dataclass
class Context:
    services: Services
    session: AsyncSession
    request: Request
    now: datetime
    locale: str
    tz: ZoneInfo
    workspace: Workspace | None = None
    member: Member | None = None
    #: The book whose member the requester was until they lost access (storage.offboarding): what a
    #: refusal names. The request then has no workspace or member.
    refused: Workspace | None = None
    #: Personal data was erased: traces the database keeps outside its tables go after the commit.
    erased: bool = False
    #: The guided form the member has open in this chat, as the request's first query read it
    #: (handlers.identity), for `guided.active` to take once; NOT_READ when that query did not run.
    open_form: Any = NOT_READ
    _after_commit: list[Callable[[], None]] = field(default_factory=list)
    _later: list[LaterWork] = field(default_factory=list)

    # --- who and where --------------------------------------------------------
    @property
    def ws(self) -> Workspace:
        if self.workspace is None:
            raise self.not_a_member()
        return self.workspace

    @property
    def me(self) -> Member:
        if self.member is None:
            raise self.not_a_member()
        return self.member

    def not_a_member(self) -> UserError:
        if self.refused is not None:
            return UserError("error.no_access", workspace=self.refused.name)
        return UserError("error.no_workspace")

    @property
    def scope(self) -> Scope:
        return Scope(self.ws.id, self.me.id, self.me.role, self.ws.visibility)

    # --- texts ----------------------------------------------------------------
    def t(self, key: str, **params: object) -> str:
        return t(self.locale, key, **params)

    def listed(self, parts: Iterable[str]) -> str:
        """`a, b, c` in English, `a、b、c` in Chinese."""
        return self.t("common.list_sep").join(parts)

    def as_typed(self, folded_part: str) -> str:
        """A piece of the (folded) command text as the member typed it: for free text."""
        return as_typed(self.request.text, folded_part)

    def local(self, moment: datetime) -> datetime:
        return moment.astimezone(self.tz)

    def fmt_time(self, moment: datetime | None) -> str:
        if moment is None:
            return "—"
        local = self.local(moment)
        weekday = self.t(f"weekday.{local.weekday()}")
        return f"{local:%Y-%m-%d} {weekday} {local:%H:%M}"

    def fmt_date(self, moment: datetime | None) -> str:
        return "—" if moment is None else f"{self.local(moment):%Y-%m-%d}"

    def fmt_money(self, minor: int, currency: str) -> str:
        return fmt_money(minor, currency)

    # --- stored choices (buttons that survive a restart) ------------------------
    async def remember(self, kind: str, payload: dict[str, Any], ttl: timedelta = CHOICE_TTL) -> str:
        token = secrets.token_urlsafe(6)
        self.session.add(
            PendingChoice(
                token=token, workspace_id=self.ws.id, member_id=self.me.id, kind=kind,
                payload=payload, created_at=self.now, expires_at=self.now + ttl,
            )
        )
        await self.session.flush()
        return token

    async def recall(self, token: str, kind: str, *, consume: bool = False) -> dict[str, Any]:
        """The payload stored under `token`, only for the member who was asked."""
        choice = await self.session.scalar(
            select(PendingChoice).where(
                PendingChoice.token == token,
                PendingChoice.kind == kind,
                PendingChoice.workspace_id == self.ws.id,
                PendingChoice.member_id == self.me.id,
                PendingChoice.expires_at > self.now,
            )
        )
        if choice is None:
            someone_elses = await self.session.scalar(select(PendingChoice.token).where(
                PendingChoice.token == token, PendingChoice.workspace_id == self.ws.id,
                PendingChoice.expires_at > self.now))
            raise UserError("error.choice_not_yours" if someone_elses else "error.choice_expired")
        if consume:
            await self.session.execute(delete(PendingChoice).where(PendingChoice.token == token))
        return choice.payload

    # --- after the transaction ----------------------------------------------------
    def after_commit(self, callback: Callable[[], None]) -> None:
        """Run `callback` once the transaction has committed (e.g. search index updates)."""
        self._after_commit.append(callback)

    def run_after_commit(self) -> None:
        for callback in self._after_commit:
            callback()
        self._after_commit.clear()

    def later(self, work: LaterWork) -> None:
        """Run `work` once the command's transaction has committed, outside it: long work that
        commits in batches, so other commands are not kept waiting behind one long transaction."""
        self._later.append(work)

    def take_later(self) -> list[LaterWork]:
        work, self._later = self._later, []
        return work
