"""How the Telegram adapter talks to Telegram: ordering, flood limits, polling, and the moment a
message leaves.

- `ChatOrderedProcessor`: updates of different chats concurrently, each chat's in order.
- `ChatRateLimiter`: PTB's AIORateLimiter, with a 429 holding back only its chat.
- `ConfirmingPoller`: long polling that confirms each batch at once, kept in the database until handled.
- `LEAVING_HOOKS`: the httpx event hook that tells a delivery under way its message is leaving
  (reminders.delivery.leaving), after the rate limiter, as the request starts to be written.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import warnings
from datetime import datetime, timedelta, timezone
from typing import Any, Awaitable, Callable, Sequence

import httpx
from telegram import Update
from telegram.error import Conflict, NetworkError, RetryAfter, TelegramError
from telegram.ext import AIORateLimiter, BaseUpdateProcessor
from telegram.warnings import PTBUserWarning

from handlers import metrics
from reminders.delivery import leaving, refused
from storage.inbox import Inbox

log = logging.getLogger(__name__)
# AIORateLimiter logs every 429 it does not retry itself as an error with a traceback; ChatRateLimiter
# retries them and logs each one at INFO.
logging.getLogger("telegram.ext.AIORateLimiter").setLevel(logging.CRITICAL)

# ConfirmingPoller asks for getUpdates through do_api_request, to parse only the updates it has not seen
warnings.filterwarnings("ignore", message=r"Please use 'Bot\.get_updates'", category=PTBUserWarning)

#: Bot API methods that post a message: the requests a delivery marks as on the wire.
POSTING_METHODS = frozenset({"sendMessage", "sendPhoto", "sendDocument"})


async def _mark_posting(request: httpx.Request) -> None:
    """An httpx request hook: a posting request marks its delivery as it starts writing, once its
    connection is ready (httpcore's trace), so a crash before that point sends it again."""
    if request.url.path.rsplit("/", 1)[-1] in POSTING_METHODS:
        request.extensions = {**request.extensions, "trace": _on_the_wire}


async def _on_the_wire(event: str, info: dict[str, Any]) -> None:
    if event == "http11.send_request_headers.started":
        await leaving()


#: `httpx_kwargs` for PTB's HTTPXRequest.
LEAVING_HOOKS: dict[str, Any] = {"event_hooks": {"request": [_mark_posting]}}


def chat_of(update: object) -> int | None:
    if isinstance(update, Update):
        if update.effective_chat is not None:
            return update.effective_chat.id
        if update.effective_user is not None:
            return update.effective_user.id
    return None


class ChatOrderedProcessor(BaseUpdateProcessor):
    """Different chats concurrently, one chat's updates one at a time in arrival order.

    PTB's own semaphore only admits updates (they may wait for their chat); at
    most `workers` run at once. A chat's lock lives while it has updates waiting.
    """

    ADMITTED = 4096

    def __init__(self, workers: int = 16, on_handled: Callable[[int], None] | None = None) -> None:
        super().__init__(max_concurrent_updates=self.ADMITTED)
        self.workers = workers
        self.on_handled = on_handled
        self._running = asyncio.Semaphore(workers)
        self._chats: dict[int, _ChatTurn] = {}

    async def do_process_update(self, update: object, coroutine: Awaitable[Any]) -> None:
        key = chat_of(update)
        if key is None:
            await self._run(coroutine)
        else:
            turn = self._chats.setdefault(key, _ChatTurn())
            turn.waiting += 1
            try:
                async with turn.lock:
                    await self._run(coroutine)
            finally:
                turn.waiting -= 1
                if not turn.waiting:
                    del self._chats[key]
        if self.on_handled is not None and isinstance(update, Update):
            self.on_handled(update.update_id)  # not reached when cancelled: Telegram sends it again

    async def _run(self, coroutine: Awaitable[Any]) -> None:
        started = False
        try:
            async with self._running:
                started = True
                await coroutine
        finally:
            if not started and hasattr(coroutine, "close"):
                coroutine.close()  # cancelled while waiting: never ran

    @property
    def chats_waiting(self) -> int:
        return len(self._chats)

    async def initialize(self) -> None:
        """Nothing to set up: locks are made per chat as updates arrive."""

    async def shutdown(self) -> None:
        """Nothing to free: a chat's lock goes with its last update."""


class _ChatTurn:
    __slots__ = ("lock", "waiting")

    def __init__(self) -> None:
        self.lock, self.waiting = asyncio.Lock(), 0


class ConfirmingPoller:
    """Long polling that confirms each batch at once, once it is kept in the database (storage.inbox).

    PTB's Updater confirms a batch as soon as it is queued, so a process killed
    mid-burst loses every queued update; holding the offset back until each
    update is handled instead made Telegram hand every unhandled one out again
    on each poll. Here a batch is written to the inbox (one INSERT) before the
    next getUpdates confirms it, so Telegram hands each update out once, and
    what a killed process had not handled is replayed from the inbox when this
    poller starts (after a restart, or on taking over the polling lease). The
    core's redelivery key applies each update once, replayed or not.
    """

    MAX_BACKOFF = 30.0
    #: Seconds a getUpdates answer may take past its long-polling `timeout` (PTB's default read timeout).
    READ_MARGIN = 5.0
    #: How long stop() waits for the request in flight (httpx over anyio may sit out a cancel).
    STOP_WAIT = 1.0

    def __init__(self, bot: Any, queue: asyncio.Queue, inbox: Inbox, key_of: Callable[[int], str], *,
                 timeout: int, allowed_updates: Sequence[str], limit: int = 100,
                 clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc)) -> None:
        self.bot, self.queue, self.inbox, self.key_of, self.clock = bot, queue, inbox, key_of, clock
        self.timeout, self.allowed_updates, self.limit = timeout, list(allowed_updates), limit
        self._next: int | None = None  # the offset that confirms everything fetched so far
        self._queued: set[int] = set()  # queued (fetched or replayed) and not handled yet
        self._done: list[str] = []  # keys of handled updates, forgotten by the inbox on the next poll
        self._task: asyncio.Task | None = None
        self._stopping = False
        #: Updates parsed into `Update`s (each once).
        self.parsed = 0

    @property
    def pending(self) -> int:
        """Updates fetched or replayed and not handled yet."""
        return len(self._queued)

    def handled(self, update_id: int) -> None:
        self._queued.discard(update_id)
        self._done.append(self.key_of(update_id))

    def start(self) -> None:
        self._stopping = False
        self._task = asyncio.create_task(self._poll(), name="telegram polling")

    async def stop(self) -> None:
        """Stop fetching; what was fetched is still handled (Application.stop drains the queue)."""
        self._stopping = True
        if self._task is not None:
            self._task.cancel()
            await asyncio.wait({self._task}, timeout=self.STOP_WAIT)

    async def finished(self) -> None:
        """Wait for the polling task to end (after the HTTP clients closed, a stuck request fails)."""
        if self._task is not None:
            await asyncio.wait({self._task}, timeout=self.STOP_WAIT)
            self._task = None

    async def confirm(self) -> None:
        """Tell Telegram about the last batch and forget what was handled, so a restart fetches and
        replays nothing twice."""
        if self._next is not None:
            with contextlib.suppress(TelegramError):
                await self.bot.get_updates(offset=self._next, timeout=0, limit=1,
                                           allowed_updates=self.allowed_updates)
        with contextlib.suppress(Exception):
            await self._forget_handled()

    async def _poll(self) -> None:
        failures = 0
        replayed = False
        while not self._stopping:
            try:
                if not replayed:
                    await self._queue([json.loads(kept) for kept in await self.inbox.unhandled()], replayed=True)
                    replayed = True
                await self._forget_handled()
                updates = await self._fetch(self._next)
                if self._stopping:
                    return  # neither kept nor confirmed: the next start fetches them
                fresh = [item for item in updates if item["update_id"] not in self._queued]
                await self.inbox.keep(((self.key_of(item["update_id"]), json.dumps(item)) for item in fresh),
                                      self.clock())
            except RetryAfter as flood:
                await asyncio.sleep(retry_seconds(flood))
                continue
            except Exception as problem:  # noqa: BLE001 - polling goes on whatever one request did
                if self._stopping:
                    return
                failures += 1
                pause = min(self.MAX_BACKOFF, 2.0 ** (failures - 1))
                if isinstance(problem.__cause__, httpx.PoolTimeout):
                    await self._new_client()
                if isinstance(problem, (Conflict, NetworkError)):
                    log.warning("getUpdates failed (%s); again in %.0f s", problem, pause)
                else:
                    log.exception("getUpdates failed; again in %.0f s", pause)
                await asyncio.sleep(pause)
                continue
            failures = 0
            if updates:  # kept: the next getUpdates confirms them
                self._next = max(self._next or 0, max(item["update_id"] for item in updates) + 1)
            await self._queue(fresh)

    async def _new_client(self) -> None:
        """A getUpdates cancelled mid-request (the lease lost, a stop) can keep the only connection of
        getUpdates' pool for good (httpcore's bug encode/httpcore#1093): every poll after it times out
        waiting for the pool. A new HTTP client has the connection free again. PTB keeps getUpdates'
        request apart from the others' and names it nowhere public: `Bot._request[0]`."""
        request = self.bot._request[0]
        await request.shutdown()
        await request.initialize()

    async def _queue(self, items: list[dict[str, Any]], *, replayed: bool = False) -> None:
        """Parse and queue the updates (the Bot API's JSON) not queued already."""
        fresh = [item for item in items if item["update_id"] not in self._queued]
        if replayed and fresh:
            log.info("handling %d update(s) received before the restart", len(fresh))
        for update in self._parsed(fresh):
            self._queued.add(update.update_id)
            await self.queue.put(update)

    async def _forget_handled(self) -> None:
        if self._done:
            done, self._done = self._done, []
            try:
                await self.inbox.forget(done)
            except BaseException:
                self._done = done + self._done  # tried again on the next poll
                raise

    async def _fetch(self, offset: int | None) -> list[dict[str, Any]]:
        """getUpdates, as the Bot API's JSON: kept as it came (the inbox) and parsed once (`_parsed`)."""
        asked = {"offset": offset, "timeout": self.timeout, "limit": self.limit,
                 "allowed_updates": self.allowed_updates}
        return await self.bot.do_api_request(
            "get_updates", api_kwargs={name: value for name, value in asked.items() if value is not None},
            read_timeout=self.timeout + self.READ_MARGIN)

    def _parsed(self, fresh: list[dict[str, Any]]) -> list[Update]:
        """The new updates as PTB's `Update`s, as `Bot.get_updates` would give them."""
        updates = Update.de_list(fresh, self.bot)
        for update in updates:
            self.bot.insert_callback_data(update)  # what ExtBot.get_updates does (a no-op without the cache)
        self.parsed += len(updates)
        return updates


class ChatRateLimiter(AIORateLimiter):
    """PTB's AIORateLimiter (aiolimiter buckets: 30 messages a second, 20 a minute per group), but a
    429 holds back only the chat it was about, for its `retry_after`, before the request goes again.

    AIORateLimiter retrying by itself pauses every request of the bot while it waits, so one
    flooded group would keep every private chat waiting for half a minute. Here it sends each
    request once (no retries of its own) and the waiting happens per chat.
    """

    def __init__(self, *, overall_max_rate: float = 30, group_max_rate: float = 20, max_retries: int = 3) -> None:
        super().__init__(overall_max_rate=overall_max_rate, group_max_rate=group_max_rate, max_retries=0)
        self.retries = max_retries
        self._held_until: dict[object, float] = {}  # chat -> loop time its 429 ends

    async def process_request(self, callback: Callable[..., Any], args: Any, kwargs: dict[str, Any],
                              endpoint: str, data: dict[str, Any], rate_limit_args: int | None) -> Any:
        chat = data.get("chat_id")
        retries = self.retries if rate_limit_args is None else rate_limit_args
        for attempt in range(retries + 1):
            await self._held(chat)
            try:
                return await super().process_request(callback, args, kwargs, endpoint, data, None)
            except RetryAfter as flood:
                metrics.rate_limited("telegram", retry_seconds(flood))
                if attempt == retries:
                    raise
                await refused()  # not sent: a crash while waiting must not count it as on the wire
                pause = retry_seconds(flood) + 0.1
                log.info("Telegram asked to wait %.1f s before %s in chat %s", pause, endpoint, chat)
                until = asyncio.get_running_loop().time() + pause
                self._held_until[chat] = max(until, self._held_until.get(chat, 0.0))
        raise AssertionError("unreachable")

    async def _held(self, chat: object) -> None:
        until = self._held_until.get(chat)
        if until is None:
            return
        wait = until - asyncio.get_running_loop().time()
        if wait > 0:
            await asyncio.sleep(wait)
        if self._held_until.get(chat) == until:
            del self._held_until[chat]


def retry_seconds(flood: RetryAfter) -> float:
    """A 429's `retry_after` in seconds (an int today, a timedelta in PTB's next major version)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        value = flood.retry_after
    return value.total_seconds() if isinstance(value, timedelta) else float(value)
