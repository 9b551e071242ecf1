"""One update delivered to two processes at once (two webhook processes behind a load balancer, Telegram
sending again while the first is still answering) is answered once: both may be told its kept replies,
only the one whose first posting request claims them at the wire (`Core.answered`) sends them."""
from __future__ import annotations

import httpx
import pytest

from handlers.core import Core
from handlers.messages import Attachment, Request
from reminders.delivery import SentElsewhere, leaving, sending
from tests.chat import Chat


def _log_request(alice: Chat, key: str) -> Request:
    return alice.request(text="/log Tom call: said yes", update_key=key, reports_answers=True)


async def test_the_second_delivery_before_the_first_answer_leaves_is_told_the_replies_but_cannot_claim_them(
    alice: Chat, core: Core
) -> None:
    await alice.say("/add Tom")
    request = _log_request(alice, "u-twice")
    first = await core.handle(request)  # process A applied it; its answer has not left yet
    second = await core.handle(request)  # process B, with the same update: applied once, the replies kept
    assert [r.plain_text() for r in second] == [r.plain_text() for r in first] and first
    assert await core.answered("u-twice") is True  # A's sendMessage is the first on the wire
    assert await core.answered("u-twice") is False  # B's must not post: A answers
    assert await core.handle(request) == []  # and a later redelivery gets nothing


async def test_a_try_that_failed_puts_its_replies_back_for_whoever_claims_them_next(alice: Chat, core: Core) -> None:
    await alice.say("/add Tom")
    request = _log_request(alice, "u-refused")
    replies = await core.handle(request)
    assert await core.answered("u-refused") is True
    assert await core.answered("u-refused", replies) is True  # Telegram refused it (a 429): kept again
    assert [r.plain_text() for r in await core.handle(request)] == [r.plain_text() for r in replies]
    assert await core.answered("u-refused") is True
    assert await core.answered("u-refused") is False


async def test_what_work_after_the_command_says_is_kept_even_when_the_command_itself_said_nothing(
    alice: Chat, core: Core
) -> None:
    """An import answers from its work after the commit: that summary is kept for a redelivery too, though
    the update's row was written with nothing to keep."""
    upload = Attachment("few.csv", "name,phone\nAda Lee,+1 415 555 0100\n".encode(), "text/csv")
    request = alice.request(text="/import", file=upload, update_key="u-import", reports_answers=True)
    summary = await core.handle(request)
    assert summary and "1" in summary[-1].plain_text()
    again = await core.handle(request)  # the process died before the summary left: it comes again
    assert [r.plain_text() for r in again] == [r.plain_text() for r in summary]
    assert await core.answered("u-import") is True


class _Claimed:
    """WireMarks whose claim another process won."""

    def __init__(self) -> None:
        self.put_back = 0

    async def on_wire(self) -> None:
        raise SentElsewhere("u-1")

    async def not_on_wire(self) -> None:
        self.put_back += 1


async def test_a_try_whose_claim_was_lost_ends_quietly_whatever_the_http_client_made_of_it() -> None:
    """The claim is refused inside the HTTP client's trace hook; the client wraps what it raises (PTB: a
    NetworkError); the adapter's own error handling wraps that again. None of it reaches the user."""
    marks, after = _Claimed(), []

    async def post() -> None:
        try:
            await leaving()
        except SentElsewhere as lost:
            raise httpx.HTTPError("the hook failed") from lost
        after.append("posted")

    async with sending(marks):
        try:
            await post()
        except httpx.HTTPError as failed:
            raise RuntimeError("answer not shown") from failed
    assert after == [] and marks.put_back == 0  # nothing posted, and nothing put back: it is A's to send


async def test_any_other_failure_of_a_try_still_puts_its_mark_back_and_is_raised() -> None:
    class Marks:
        def __init__(self) -> None:
            self.calls: list[str] = []

        async def on_wire(self) -> None:
            self.calls.append("on")

        async def not_on_wire(self) -> None:
            self.calls.append("back")

    marks = Marks()
    with pytest.raises(RuntimeError):
        async with sending(marks):
            await leaving()
            raise RuntimeError("refused")
    assert marks.calls == ["on", "back"]

