"""The SQLite database thread: a command's whole database work in one hand-off, not one per statement.

With aiosqlite every statement, commit and rollback is a trip to its worker
thread and back through the event loop (≈ 80 µs each, ~16 for a `/log`),
and SQLAlchemy's async glue around each. Here the core's work on a request
(handlers.core) is handed once to a thread of its own, which runs it on an
event loop of its own whose engine calls sqlite3 where it is asked
(storage.sqlite_inline): the adapters' loop never waits on SQLite, and the
commands of one process queue on this thread as they queued on SQLite's
write lock before.

Transactions opened on this thread and on the adapters' loop (the scheduler,
a lease, an inbox row) still take turns first come, first served on one
`TurnLock`, so neither busy-waits on SQLite's lock behind the other.
"""
from __future__ import annotations

import asyncio
import collections
import contextlib
import threading
from typing import Any, Awaitable, Callable, Coroutine, TypeVar

T = TypeVar("T")


class TurnLock:
    """A first-come, first-served lock for coroutines on any event loop of the process.

    Taking it always lets the loop run once first, so work that takes it again and again (an
    import, batch by batch) lets a command that arrived meanwhile queue up between two turns;
    with statements that never yield to the loop it would otherwise never get in."""

    def __init__(self) -> None:
        self._mutex = threading.Lock()
        self._held = False
        self._waiting: collections.deque[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = collections.deque()

    async def __aenter__(self) -> None:
        await asyncio.sleep(0)
        loop = asyncio.get_running_loop()
        with self._mutex:
            if not self._held:
                self._held = True
                return
            turn: asyncio.Future[None] = loop.create_future()
            self._waiting.append((loop, turn))
        try:
            await turn
        except asyncio.CancelledError:
            with self._mutex:
                queued = (loop, turn) in self._waiting
                if queued:
                    self._waiting.remove((loop, turn))
            if not queued and turn.done() and not turn.cancelled():
                self._release()  # given the turn, cancelled before taking it: pass it on
            raise  # (a turn given to a cancelled future is passed on by _give)

    async def __aexit__(self, *_: Any) -> None:
        self._release()

    def _release(self) -> None:
        with self._mutex:
            if not self._waiting:
                self._held = False
                return
            loop, turn = self._waiting.popleft()  # still held: it is theirs now
        loop.call_soon_threadsafe(self._give, turn)

    def _give(self, turn: asyncio.Future[None]) -> None:
        if turn.cancelled():
            self._release()
        else:
            turn.set_result(None)


async def run_on(loop: asyncio.AbstractEventLoop, coroutine: Coroutine[Any, Any, T]) -> T:
    """`await coroutine` as a task on `loop`, another thread's: one wake-up of that thread and one of
    this one back (≈ 80 µs together here), without run_coroutine_threadsafe's concurrent future and
    wrap_future's chained callbacks (≈ 40 µs more a hand-off, two hand-offs a command). Cancelling
    the caller cancels the task there; the caller does not wait for it to wind down."""
    here = asyncio.get_running_loop()
    outcome: asyncio.Future[T] = here.create_future()
    started: list[asyncio.Task[T]] = []

    def settle(task: asyncio.Task[T]) -> None:
        if outcome.done():
            return
        if task.cancelled():
            outcome.cancel()
        elif (problem := task.exception()) is not None:
            outcome.set_exception(problem)
        else:
            outcome.set_result(task.result())

    def start() -> None:  # on `loop`
        task = loop.create_task(coroutine)
        started.append(task)
        task.add_done_callback(lambda done: here.call_soon_threadsafe(settle, done))

    try:
        loop.call_soon_threadsafe(start)
    except RuntimeError:  # that loop is closed
        coroutine.close()
        raise
    try:
        return await outcome
    except asyncio.CancelledError:
        with contextlib.suppress(RuntimeError):  # (that loop closed meanwhile)
            loop.call_soon_threadsafe(lambda: started[0].cancel())  # runs after `start`, in order
        raise


class DatabaseThread:
    """A daemon thread running an event loop for the database work handed to it (`run`)."""

    def __init__(self, name: str) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._serve, name=name, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_forever()
        finally:
            self.loop.close()

    def is_current(self) -> bool:
        return threading.current_thread() is self._thread

    async def run(self, function: Callable[..., Awaitable[T]], *args: Any) -> T:
        """`await function(*args)` on this thread; cancelling the caller cancels it there."""
        return await run_on(self.loop, function(*args))

    async def stop(self, last: Callable[[], Awaitable[None]]) -> None:
        """Cancel the work still running on the thread (its transactions roll back; whoever waits for it
        gets CancelledError), run `last` there (closing what it opened), then end the thread."""

        async def wind_down() -> None:
            running = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
            for task in running:
                task.cancel()
            await asyncio.gather(*running, return_exceptions=True)
            await last()

        try:
            await self.run(wind_down)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            await asyncio.to_thread(self._thread.join)
