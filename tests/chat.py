"""A person typing into the core: what handler tests drive instead of a platform."""
from __future__ import annotations

from handlers.core import Core
from handlers.messages import Attachment, Button, FormSubmission, Reply, Request


class Chat:
    def __init__(
        self,
        core: Core,
        *,
        user_id: str,
        name: str = "",
        language: str | None = "en",
        platform: str = "console",
        space: str | None = "console",
        chat_id: str | None = None,
        private: bool = True,
    ) -> None:
        self.core = core
        self.user_id, self.name, self.language = user_id, name, language
        self.platform, self.space, self.private = platform, space, private
        self.chat_id = chat_id or f"chat-{user_id}"
        self.last: list[Reply] = []

    def request(self, **fields: object) -> Request:
        return Request(
            platform=self.platform, user_id=self.user_id, chat_id=self.chat_id, user_name=self.name,
            space=self.space, is_private=self.private, language=self.language,
            dm_chat_id=f"dm-{self.user_id}", **fields,  # type: ignore[arg-type]
        )

    async def send(self, request: Request) -> list[Reply]:
        self.last = await self.core.handle(request)
        return self.last

    async def say(self, text: str, *, file: Attachment | None = None, update_key: str | None = None) -> list[Reply]:
        return await self.send(self.request(text=text, file=file, update_key=update_key))

    async def press(self, label: str, replies: list[Reply] | None = None) -> list[Reply]:
        """Press the button whose label contains `label` in the given (or last) replies."""
        return await self.send(self.request(action=self.button(label, replies).action))

    async def submit(self, name: str, values: dict[str, str], context: dict[str, str] | None = None) -> list[Reply]:
        return await self.send(self.request(submission=FormSubmission(name, values, context or {})))

    def button(self, label: str, replies: list[Reply] | None = None) -> Button:
        buttons = [b for r in (replies if replies is not None else self.last) for b in r.all_buttons()]
        found = [b for b in buttons if label in b.label]
        assert found, f"no button {label!r} among {[b.label for b in buttons]}"
        return found[0]

    @property
    def text(self) -> str:
        return "\n".join(r.plain_text() for r in self.last)
