"""The delivery port: how reminders/ hands a message to whichever platform reaches a member.

bot/ implements `Sender` once per platform (the same rendering its adapter uses
for replies); reminders/ never imports a platform library. `Delivery` picks the
member's account (the platform they used last; another if that one blocked the
bot), retries short failures inline with exponential back-off, honouring the
platform's `retry_after`, and says when to try again otherwise.

A crash mid-send must neither repeat a message nor drop it, and the platforms
take no idempotency key. So a sender's HTTP client calls `leaving()` at the last
moment before a request that posts the message goes out (after any rate
limiter): the delivery under way records that its message is on the wire
(`WireMarks`), and a crash after that counts it as sent, a crash before it
sends it again (reminders.claims). A mark may also be refused (`SentElsewhere`:
another process is sending that same message), and the try then ends quietly.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
from contextvars import ContextVar
from dataclasses import dataclass, field
from enum import Enum
from typing import AsyncIterator, Awaitable, Callable, Mapping, Protocol

from handlers import metrics
from handlers.context import Clock
from handlers.messages import Reply
from storage import blocking
from storage.db import Database
from storage.schedule import Recipient

log = logging.getLogger(__name__)


class DeliveryError(Exception):
    """Sending failed; `retry_after` (seconds) when the platform said when to try again."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class RecipientBlocked(DeliveryError):
    """The person blocked the bot (Telegram 403) or cannot be messaged; retrying won't help."""


class NotInstalled(DeliveryError):
    """The app is no longer installed where this account is reached (Slack's app_uninstalled or
    tokens_revoked): the account is skipped, not marked blocked, and a message no other account
    takes is not retried."""


class Sender(Protocol):
    platform: str

    async def send(self, chat_id: str, reply: Reply) -> None:
        """Post `reply` to a direct chat; raise DeliveryError / RecipientBlocked on failure.
        Just before the request that posts it leaves the process: `await leaving()`."""


class SentElsewhere(Exception):
    """Raised by `WireMarks.on_wire`: another process claimed this message as leaving first (one
    update delivered to two processes at once), so this try must not post it."""


class WireMarks(Protocol):
    """What the delivery under way records when its message leaves (or refuses: `SentElsewhere`),
    or when that attempt failed."""

    async def on_wire(self) -> None: ...

    async def not_on_wire(self) -> None: ...


class _Attempt:
    """One try at sending one reply: marks it on the wire once, however many requests it takes."""

    def __init__(self, marks: WireMarks) -> None:
        self.marks, self.marked, self.elsewhere = marks, False, False

    async def leaving(self) -> None:
        if not self.marked:
            try:
                await self.marks.on_wire()
            except SentElsewhere:
                self.elsewhere = True
                raise
            self.marked = True

    async def failed(self) -> None:
        if self.marked:
            await self.marks.not_on_wire()
            self.marked = False


_attempt: ContextVar[_Attempt | None] = ContextVar("crm_delivery_attempt", default=None)
_book: ContextVar[int | None] = ContextVar("crm_delivery_book", default=None)


def delivering_for() -> int | None:
    """The customer book (workspace id) of the delivery under way, None outside one: a sender that
    holds a token per workspace (Slack installed through OAuth) picks the token by it."""
    return _book.get()


async def leaving() -> None:
    """Called by a sender's HTTP client right before a request that posts a message goes out;
    outside `sending()` it does nothing."""
    attempt = _attempt.get()
    if attempt is not None:
        await attempt.leaving()


async def refused() -> None:
    """Called when the platform refused such a request and it will be tried again (a 429): the
    message is not on the wire after all, until the next `leaving()`."""
    attempt = _attempt.get()
    if attempt is not None:
        await attempt.failed()


@contextlib.asynccontextmanager
async def sending(marks: WireMarks | None) -> AsyncIterator[None]:
    """One try at sending one message: within, `leaving()` reaches `marks` once, `refused()` takes
    the mark back, and so does an exception out of the try. A mark refused (`SentElsewhere`) ends
    the try quietly, whatever the HTTP client made of the exception on its way out. Deliveries use
    it for each reply; the Telegram adapter for the answer to a command (handlers.kept_replies)."""
    attempt = _Attempt(marks) if marks is not None else None
    token = _attempt.set(attempt)
    try:
        yield
    except Exception:
        if attempt is not None:
            if attempt.elsewhere:
                log.info("another process is sending this message; this one does not")
                return
            await attempt.failed()
        raise
    finally:
        _attempt.reset(token)


class Outcome(Enum):
    SENT = "sent"
    BLOCKED = "blocked"  # every account of the member refused (recorded on each)
    RETRY = "retry"  # a failure that outlasted the inline retries: try again in `retry_in` seconds
    UNREACHABLE = "unreachable"  # no account on a running platform with a direct chat
    UNINSTALLED = "uninstalled"  # the app was uninstalled (or its tokens revoked) where the accounts are


@dataclass(frozen=True)
class Route:
    platform: str
    chat_id: str
    workspace_id: int | None = None


@dataclass
class Result:
    outcome: Outcome
    parts_sent: int
    retry_in: float = 0.0
    error: str = ""
    blocked: list[Route] = field(default_factory=list)


class _Later(Exception):
    def __init__(self, seconds: float, error: str) -> None:
        super().__init__(error)
        self.seconds, self.error = seconds, error


PartSent = Callable[[int], Awaitable[None]]


class Delivery:
    """Sends one message (a few replies) to a member, once, over the first account that takes it."""

    def __init__(
        self,
        db: Database,
        senders: Mapping[str, Sender],
        *,
        clock: Clock,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        inline_attempts: int = 3,
        inline_budget: float = 60.0,
        first_backoff: float = 1.0,
    ) -> None:
        self.db, self.senders, self.clock, self.sleep = db, dict(senders), clock, sleep
        self.inline_attempts, self.inline_budget, self.first_backoff = inline_attempts, inline_budget, first_backoff

    def routes(self, recipient: Recipient) -> list[Route]:
        """The member's reachable accounts on the running platforms, last used platform first."""
        return [Route(i.platform, i.dm_chat_id, recipient.workspace.id) for i in recipient.identities
                if i.platform in self.senders and i.dm_chat_id]

    async def deliver(self, routes: list[Route], replies: list[Reply], *, on_part: PartSent | None = None,
                      marks: WireMarks | None = None) -> Result:
        """Send `replies` in order over the first route that does not refuse; `on_part(n)` after
        each reply but the last, so a retry can resume after the `n` already out; `marks` hears
        when each reply leaves (see `leaving`)."""
        sent, blocked, uninstalled = 0, [], False
        for route in routes:
            sender = self.senders[route.platform]
            book = _book.set(route.workspace_id)
            try:
                while sent < len(replies):
                    await self._send_retrying(sender, route.chat_id, replies[sent], marks)
                    sent += 1
                    if on_part is not None and sent < len(replies):
                        await on_part(sent)
                return Result(Outcome.SENT, sent, blocked=blocked)
            except NotInstalled as gone:
                log.info("%s chat %s skipped: %s", route.platform, route.chat_id, gone)
                uninstalled = True
            except RecipientBlocked as refused:
                log.info("%s chat %s refused delivery: %s", route.platform, route.chat_id, refused)
                await self._record_blocked(route)
                blocked.append(route)
            except _Later as later:
                return Result(Outcome.RETRY, sent, retry_in=later.seconds, error=later.error, blocked=blocked)
            finally:
                _book.reset(book)
        if blocked:
            return Result(Outcome.BLOCKED, sent, error="blocked the bot", blocked=blocked)
        if uninstalled:
            return Result(Outcome.UNINSTALLED, sent, error="the app is not installed in that workspace")
        return Result(Outcome.UNREACHABLE, sent, error="no account to reach")

    async def _send_retrying(self, sender: Sender, chat_id: str, reply: Reply, marks: WireMarks | None) -> None:
        """Up to `inline_attempts` tries within `inline_budget` seconds, else `_Later`."""
        waited = 0.0
        for attempt in range(1, self.inline_attempts + 1):
            try:
                await self._send_marked(sender, chat_id, reply, marks)
                metrics.SENDS.labels(sender.platform, "sent").inc()
                return
            except RecipientBlocked:
                metrics.SENDS.labels(sender.platform, "blocked").inc()
                raise
            except NotInstalled:
                metrics.SENDS.labels(sender.platform, "not_installed").inc()
                raise
            except DeliveryError as problem:
                error = str(problem) or type(problem).__name__
                pause = problem.retry_after if problem.retry_after is not None else self._backoff(attempt)
            except Exception as problem:  # noqa: BLE001 - one broken send must not stop the rest
                log.exception("%s sender failed on chat %s", sender.platform, chat_id)
                error, pause = f"{type(problem).__name__}: {problem}", self._backoff(attempt)
            metrics.SENDS.labels(sender.platform, "error").inc()
            if attempt == self.inline_attempts or waited + pause > self.inline_budget:
                raise _Later(pause, error)
            log.info("%s chat %s: %s; retrying in %.1f s", sender.platform, chat_id, error, pause)
            await self.sleep(pause)
            waited += pause

    @staticmethod
    async def _send_marked(sender: Sender, chat_id: str, reply: Reply, marks: WireMarks | None) -> None:
        """One try, with `leaving()` reaching `marks`; a failed try takes its mark back."""
        async with sending(marks):
            await sender.send(chat_id, reply)

    def _backoff(self, attempt: int) -> float:
        return self.first_backoff * 2 ** (attempt - 1)

    async def _record_blocked(self, route: Route) -> None:
        async with self.db.transaction() as session:
            await blocking.record_blocked(session, route.platform, now=self.clock(), dm_chat_id=route.chat_id)
