"""The delivery port: how reminders/ hands a message to whichever platform reaches a member.

bot/ implements `Sender` once per platform (the same rendering its adapter uses
for replies); reminders/ never imports a platform library.
"""
from __future__ import annotations

from typing import Protocol

from handlers.messages import Reply


class DeliveryError(Exception):
    """Sending failed; `retry_after` (seconds) when the platform said when to try again."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class RecipientBlocked(DeliveryError):
    """The person blocked the bot (Telegram 403) or cannot be messaged; retrying won't help."""


class Sender(Protocol):
    platform: str

    async def send(self, chat_id: str, reply: Reply) -> None:
        """Post `reply` to a direct chat; raise DeliveryError / RecipientBlocked on failure."""
