"""A local stand-in of the Telegram Bot API, served over real HTTP on 127.0.0.1.

The bot under test talks to it exactly as to api.telegram.org (`TELEGRAM_API_BASE_URL`):
`/bot<token>/<method>` with form, multipart or JSON parameters, answers shaped
like Telegram's (`{"ok": true, "result": …}`, errors with `error_code`,
`description` and `parameters.retry_after`), long polling with offset
semantics (a second poller displaces the first with 409 Conflict, as at
Telegram), file downloads under `/file/bot<token>/<path>`. It checks what
Telegram checks and a careless bot gets wrong: HTML that Telegram cannot parse,
messages over 4096 characters, callback data over 64 bytes, "message is not
modified".

The test side: updates are built from the recorded payloads in
`payloads/telegram/` (`Person.says`, `press`, `document_update` …) and queued with
`push`; every call is recorded (`calls`), and what the bot sent is read chat by
chat with `take`, which waits for it. `fail_next` and `delay` inject 429s, 403s
and slow answers. `python -m tests.e2e.telegram_api` serves it as its own process
for the benches, with a small `/_control` API.
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import copy
import html
import itertools
import json
import re
import struct
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from aiohttp import web

PAYLOADS = Path(__file__).with_name("payloads") / "telegram"
BOT_ID = 7000001
TOKEN = f"{BOT_ID}:AAH-stand-in-token_0123456789abcdef"
BOT_USERNAME = "crm_test_bot"
MAX_TEXT = 4096
MAX_CAPTION = 1024
MAX_CALLBACK_DATA = 64
JSON_PARAMS = {"reply_markup", "commands", "allowed_updates", "scope", "reply_parameters",
               "link_preview_options", "entities", "caption_entities", "media"}
SEND_METHODS = {"sendMessage", "sendDocument", "sendPhoto"}
OUTGOING = SEND_METHODS | {"editMessageText", "editMessageReplyMarkup"}
NOT_MODIFIED = ("Bad Request: message is not modified: specified new message content and reply markup are "
                "exactly the same as a current content and reply markup of the message")
BLOCKED = "Forbidden: bot was blocked by the user"


class ApiError(Exception):
    def __init__(self, code: int, description: str, retry_after: int | None = None) -> None:
        super().__init__(description)
        self.code, self.description, self.retry_after = code, description, retry_after

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"ok": False, "error_code": self.code, "description": self.description}
        if self.retry_after is not None:
            body["parameters"] = {"retry_after": self.retry_after}
        return body


def bad_request(what: str) -> ApiError:
    return ApiError(400, f"Bad Request: {what}")


# --- Telegram's HTML ----------------------------------------------------------------------

_TAG = re.compile(r"<(/?)([a-zA-Z][a-zA-Z0-9-]*)((?:\s+[a-zA-Z-]+=\"[^\"<>]*\")*)\s*>")
_ENTITY = re.compile(r"&(?:lt|gt|amp|quot|#[0-9]+|#x[0-9a-fA-F]+);")
_TAGS = {"b", "strong", "i", "em", "u", "ins", "s", "strike", "del", "span", "tg-spoiler", "a", "code", "pre",
         "blockquote", "tg-emoji"}
_BOLD = {"b", "strong"}


@dataclass
class Rendered:
    text: str
    bold: list[str]


def parse_html(markup: str) -> Rendered:
    """What the user sees of an HTML message, as strictly as Telegram parses it."""
    out: list[str] = []
    bold: list[str] = []
    stack: list[tuple[str, int]] = []
    i = 0
    while i < len(markup):
        char = markup[i]
        if char == "<":
            tag = _TAG.match(markup, i)
            if tag is None:
                raise bad_request(f"can't parse entities: Unexpected character at byte offset {i}")
            closing, name = tag.group(1), tag.group(2).lower()
            if name not in _TAGS:
                raise bad_request(f'can\'t parse entities: Unsupported start tag "{name}" at byte offset {i}')
            if closing:
                if not stack or stack[-1][0] != name:
                    raise bad_request(f'can\'t parse entities: Unmatched end tag at byte offset {i}, expected "</'
                                      f'{stack[-1][0] if stack else ""}>", found "</{name}>"')
                opened, start = stack.pop()
                if opened in _BOLD:
                    bold.append("".join(out)[start:])
            else:
                stack.append((name, len("".join(out))))
            i = tag.end()
        elif char == "&":
            entity = _ENTITY.match(markup, i)
            if entity is None:
                raise bad_request(f"can't parse entities: Character '&' is reserved at byte offset {i}")
            out.append(html.unescape(entity.group(0)))
            i = entity.end()
        elif char == ">":
            raise bad_request(f"can't parse entities: Character '>' is reserved at byte offset {i}")
        else:
            out.append(char)
            i += 1
    if stack:
        raise bad_request(f'can\'t parse entities: Can\'t find end tag corresponding to start tag "{stack[-1][0]}"')
    return Rendered("".join(out), bold)


def utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


# --- recorded payloads, filled in -------------------------------------------------------------

def payload(name: str) -> dict[str, Any]:
    """A recorded update from payloads/telegram/<name>.json (a fresh copy to fill in)."""
    return json.loads((PAYLOADS / f"{name}.json").read_text("utf-8"))


def entities_for(text: str) -> list[dict[str, Any]]:
    """The entities Telegram attaches: a leading /command (with @bot) and @mentions."""
    found = []
    for match in re.finditer(r"(?:^/[A-Za-z0-9_]+(?:@[A-Za-z0-9_]+)?)|(?<!\w)@[A-Za-z0-9_]{5,32}", text):
        kind = "bot_command" if match.group(0).startswith("/") else "mention"
        found.append({"offset": utf16_len(text[:match.start()]), "length": utf16_len(match.group(0)), "type": kind})
    return found


@dataclass
class Person:
    """A Telegram user of the tests."""

    id: int
    first_name: str
    language_code: str | None = "en"
    username: str | None = None

    @property
    def user(self) -> dict[str, Any]:
        user: dict[str, Any] = {"id": self.id, "is_bot": False, "first_name": self.first_name}
        if self.username:
            user["username"] = self.username
        if self.language_code:
            user["language_code"] = self.language_code
        return user

    @property
    def chat(self) -> dict[str, Any]:
        """This person's private chat with the bot."""
        chat: dict[str, Any] = {"id": self.id, "first_name": self.first_name, "type": "private"}
        if self.username:
            chat["username"] = self.username
        return chat


def group_chat(chat_id: int, title: str, *, supergroup: bool = False, forum: bool = False) -> dict[str, Any]:
    chat: dict[str, Any] = {"id": chat_id, "title": title, "type": "supergroup" if supergroup or forum else "group"}
    if forum:
        chat["is_forum"] = True
    elif not supergroup:
        chat["all_members_are_administrators"] = True
    return chat


# --- the server ---------------------------------------------------------------------------------

@dataclass
class Call:
    method: str
    params: dict[str, Any]
    files: dict[str, tuple[str, bytes]]
    at: float
    error: ApiError | None = None
    result: Any = None

    @property
    def chat_id(self) -> str | None:
        value = self.params.get("chat_id")
        return None if value is None else str(value)


@dataclass
class Outgoing:
    """One message the bot sent or edited, as its chat sees it."""

    method: str
    chat_id: str
    message_id: int
    html: str
    text: str  # visible text
    bold: list[str]
    reply_markup: dict[str, Any] | None
    thread_id: int | None
    document: tuple[str, bytes] | None = None
    photo: bytes | None = None

    @property
    def buttons(self) -> list[dict[str, Any]]:
        rows = (self.reply_markup or {}).get("inline_keyboard", [])
        return [button for row in rows for button in row]

    def button(self, label: str) -> dict[str, Any]:
        found = [b for b in self.buttons if label in b["text"]]
        assert found, f"no button {label!r} among {[b['text'] for b in self.buttons]}"
        return found[0]


@dataclass
class _Rule:
    method: str
    chat_id: str | None
    remaining: int | None  # None: until cleared
    error: ApiError | None = None
    seconds: float = 0.0

    def matches(self, method: str, chat_id: str | None) -> bool:
        return self.method == method and self.chat_id in (None, chat_id) and self.remaining != 0


class TelegramStandIn:
    def __init__(self, *, token: str = TOKEN, username: str = BOT_USERNAME, host: str = "127.0.0.1",
                 port: int = 0) -> None:
        self.token, self.username = token, username
        self.bot_id = int(token.split(":")[0])
        self.host, self.port = host, port
        self.bot_user = {"id": self.bot_id, "is_bot": True, "first_name": "CRM", "username": username}
        self.calls: list[Call] = []
        self.outbox: list[Outgoing] = []
        self.queue: list[dict[str, Any]] = []
        self.allowed_updates: list[str] = []
        self.webhook: dict[str, Any] = {}
        self.commands: dict[str, list[dict[str, str]]] = {}
        self.chats: dict[str, dict[str, Any]] = {}
        self.messages: dict[tuple[str, int], dict[str, Any]] = {}
        self.files: dict[str, tuple[str, bytes]] = {}  # file_id → (file_path, content)
        self.first_offered: float | None = None
        self._polls = 0  # getUpdates requests so far: a newer one ends an older one still waiting (409)
        self._rules: list[_Rule] = []
        self._next_update = itertools.count(500_000_001)
        self._next_message: dict[str, itertools.count] = {}
        self._read: dict[str, int] = {}  # chat → how many outgoing messages `take` returned
        self._arrived = asyncio.Event()
        self._changed = asyncio.Event()
        self._stopping = False
        self._runner: web.AppRunner | None = None

    # --- lifecycle ------------------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def application(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/bot{token}/{method}", self._api)
        app.router.add_get("/file/bot{token}/{path:.+}", self._download)
        return app

    async def start(self) -> TelegramStandIn:
        # a long poll whose bot went away ends there, as at Telegram: it must not consume what arrives later
        self._runner = web.AppRunner(self.application(), access_log=None, shutdown_timeout=0.5,
                                     handler_cancellation=True)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        self.port = self._runner.addresses[0][1]
        return self

    async def stop(self) -> None:
        self._stopping = True
        self._arrived.set()
        if self._runner is not None:
            await self._runner.cleanup()

    # --- the test side: updates in ----------------------------------------------------------------
    def push(self, update: dict[str, Any]) -> dict[str, Any]:
        """Queue an update for getUpdates (an `update_id` is given if it has none)."""
        update.setdefault("update_id", next(self._next_update))
        for message in _messages_in(update):
            self.remember_chat(message["chat"])
            self.messages[(str(message["chat"]["id"]), message["message_id"])] = message
        self.queue.append(update)
        self._arrived.set()
        return update

    def redeliver(self, update: dict[str, Any]) -> None:
        """Offer an update again with its update_id (Telegram after a bot crashed before confirming)."""
        self.queue.append(copy.deepcopy(update))
        self._arrived.set()

    def remember_chat(self, chat: dict[str, Any]) -> None:
        self.chats[str(chat["id"])] = chat

    def message_id(self, chat_id: str) -> int:
        return next(self._next_message.setdefault(chat_id, itertools.count(1)))

    def message(self, person: Person, text: str, *, chat: dict[str, Any] | None = None,
                thread_id: int | None = None, reply_to: dict[str, Any] | None = None,
                template: str | None = None) -> dict[str, Any]:
        """A message update from `person` (in their private chat unless `chat` is given)."""
        chat = chat or person.chat
        name = template or ("private_message" if chat["type"] == "private" else
                            "supergroup_topic_message" if thread_id else "group_message")
        update = payload(name)
        message = update["message"]
        message.update({"message_id": self.message_id(str(chat["id"])), "from": person.user, "chat": chat,
                        "date": int(time.time()), "text": text})
        message.pop("entities", None)
        if entities := entities_for(text):
            message["entities"] = entities
        if thread_id is not None:
            message["message_thread_id"] = thread_id
            message["reply_to_message"]["message_thread_id"] = thread_id
            message["reply_to_message"]["message_id"] = thread_id
            message["reply_to_message"]["chat"] = chat
        if reply_to is not None:
            message["reply_to_message"] = reply_to
        update.pop("update_id", None)
        return update

    def says(self, person: Person, text: str, **where: Any) -> dict[str, Any]:
        return self.push(self.message(person, text, **where))

    def press(self, person: Person, sent: Outgoing, label: str) -> dict[str, Any]:
        """Press the button labelled `label` on a message the bot sent."""
        return self.push(self.callback_update(person, sent, sent.button(label)["callback_data"]))

    def callback_update(self, person: Person, sent: Outgoing, data: str) -> dict[str, Any]:
        update = payload("callback_query")
        query = update["callback_query"]
        message = self.messages[(sent.chat_id, sent.message_id)]
        query.update({"id": str(next(self._next_update)), "from": person.user, "message": message, "data": data,
                      "chat_instance": str(-abs(hash(sent.chat_id)) % 10**18)})
        update.pop("update_id", None)
        return update

    def add_file(self, name: str, content: bytes, mime: str = "text/csv") -> dict[str, Any]:
        """Store an upload; the `document` object of a message carrying it."""
        number = len(self.files) + 1
        file_id = f"BQACAgUAAxkBAAIB{number:04d}ZmVnX2ZpbGVfaWQ"
        self.files[file_id] = (f"documents/file_{number}.{name.rsplit('.', 1)[-1]}", content)
        return {"file_name": name, "mime_type": mime, "file_id": file_id,
                "file_unique_id": f"AgAD{number:04d}", "file_size": len(content)}

    def document_update(self, person: Person, name: str, content: bytes, *, caption: str = "",
                        chat: dict[str, Any] | None = None, size: int | None = None) -> dict[str, Any]:
        chat = chat or person.chat
        update = payload("document_message")
        message = update["message"]
        document = self.add_file(name, content)
        if size is not None:
            document["file_size"] = size
        message.update({"message_id": self.message_id(str(chat["id"])), "from": person.user, "chat": chat,
                        "date": int(time.time()), "document": document})
        message.pop("caption", None)
        message.pop("caption_entities", None)
        if caption:
            message["caption"] = caption
            message["caption_entities"] = entities_for(caption)
        update.pop("update_id", None)
        return update

    # --- the test side: failures and delays ------------------------------------------------------------
    def fail_next(self, method: str, times: int = 1, *, chat_id: object = None, code: int = 429,
                  retry_after: int = 1, description: str | None = None) -> None:
        if code == 429:
            error = ApiError(429, description or f"Too Many Requests: retry after {retry_after}", retry_after)
        else:
            error = ApiError(code, description or (BLOCKED if code == 403 else "Bad Request: injected"))
        self._rules.append(_Rule(method, None if chat_id is None else str(chat_id), times, error=error))

    def delay(self, method: str, seconds: float, *, chat_id: object = None) -> None:
        self._rules.append(_Rule(method, None if chat_id is None else str(chat_id), None, seconds=seconds))

    def clear_rules(self) -> None:
        self._rules.clear()

    # --- the test side: reading what the bot did ----------------------------------------------------------
    def calls_of(self, method: str, *, ok: bool | None = None) -> list[Call]:
        return [c for c in self.calls if c.method == method and (ok is None or (c.error is None) == ok)]

    def sent(self, chat_id: object) -> list[Outgoing]:
        return [o for o in self.outbox if o.chat_id == str(chat_id)]

    async def wait_until(self, check: Callable[[], Any], timeout: float = 10.0, what: str = "") -> Any:
        """Wait (without fixed sleeps) until `check()` is truthy; its value."""
        deadline = time.monotonic() + timeout
        while True:
            value = check()
            if value:
                return value
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                recent = [(c.method, c.chat_id, c.error and c.error.description) for c in self.calls[-8:]]
                raise AssertionError(f"timed out waiting for {what or check}; last calls: {recent}")
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), min(remaining, 0.2))

    async def take(self, chat_id: object, count: int = 1, timeout: float = 10.0) -> list[Outgoing]:
        """The next `count` messages the bot sent or edited in the chat, waiting for them."""
        key = str(chat_id)
        start = self._read.get(key, 0)
        await self.wait_until(lambda: len(self.sent(key)) >= start + count, timeout,
                              f"{count} message(s) in chat {key} after {start}")
        taken = self.sent(key)[start:start + count]
        self._read[key] = start + count
        return taken

    async def take_one(self, chat_id: object, timeout: float = 10.0) -> Outgoing:
        return (await self.take(chat_id, 1, timeout))[0]

    def unread(self, chat_id: object) -> list[Outgoing]:
        return self.sent(chat_id)[self._read.get(str(chat_id), 0):]

    # --- HTTP ---------------------------------------------------------------------------------------
    async def _params(self, request: web.Request) -> tuple[dict[str, Any], dict[str, tuple[str, bytes]]]:
        params: dict[str, Any] = dict(request.query)
        files: dict[str, tuple[str, bytes]] = {}
        if request.content_type == "application/json":
            params.update(await request.json())
            return params, files
        if request.method == "POST":
            form = await request.post()
            for key, value in form.items():
                if isinstance(value, web.FileField):
                    files[key] = (value.filename, value.file.read())
                else:
                    params[key] = json.loads(value) if key in JSON_PARAMS else value
        return params, files

    async def _api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        try:
            params, files = await self._params(request)
        except ConnectionResetError:  # the bot gave up on the call (stopping)
            return web.Response(status=499)
        call = Call(method, params, files, time.monotonic())
        if method != "getUpdates":
            self.calls.append(call)
        try:
            if request.match_info["token"] != self.token:
                raise ApiError(401, "Unauthorized")
            handler = getattr(self, f"_m_{method}", None)
            if handler is None:
                raise ApiError(404, "Not Found: method not found")
            await self._apply_rules(method, call.chat_id)
            call.result = await handler(params, files)
        except ApiError as error:
            call.error = error
            if method == "getUpdates":
                self.calls.append(call)
            self._changed.set()
            return web.json_response(error.body(), status=error.code)
        if method == "getUpdates" and call.result:
            self.calls.append(call)
        self._changed.set()
        return web.json_response({"ok": True, "result": call.result})

    async def _apply_rules(self, method: str, chat_id: str | None) -> None:
        for rule in self._rules:
            if not rule.matches(method, chat_id):
                continue
            if rule.seconds:
                await asyncio.sleep(rule.seconds)
            if rule.error is not None:
                assert rule.remaining is not None
                rule.remaining -= 1
                raise rule.error

    async def _download(self, request: web.Request) -> web.Response:
        if request.match_info["token"] != self.token:
            return web.json_response(ApiError(401, "Unauthorized").body(), status=401)
        for path, content in self.files.values():
            if path == request.match_info["path"]:
                return web.Response(body=content, content_type="application/octet-stream")
        return web.json_response(ApiError(404, "Not Found").body(), status=404)

    # --- methods -----------------------------------------------------------------------------------
    async def _m_getMe(self, params: dict[str, Any], files: dict) -> dict[str, Any]:
        return {**self.bot_user, "can_join_groups": True, "can_read_all_group_messages": False,
                "supports_inline_queries": False, "can_connect_to_business": False, "has_main_web_app": False}

    async def _m_getUpdates(self, params: dict[str, Any], files: dict) -> list[dict[str, Any]]:
        if self.webhook.get("url"):
            raise ApiError(409, "Conflict: can't use getUpdates method while webhook is active; "
                                "use deleteWebhook to delete the webhook first")
        if "allowed_updates" in params:
            self.allowed_updates = list(params["allowed_updates"])
        offset, limit = int(params.get("offset") or 0), int(params.get("limit") or 100)
        deadline = time.monotonic() + float(params.get("timeout") or 0)
        self._polls += 1
        mine = self._polls
        self._arrived.set()  # a poll still waiting is displaced by this one
        while True:
            if self._polls != mine:
                raise ApiError(409, "Conflict: terminated by other getUpdates request; make sure that only one "
                                    "bot instance is running")
            if offset > 0:
                self.queue = [u for u in self.queue if u["update_id"] >= offset]
            self.queue = [u for u in self.queue if self._allowed(u)]
            if self.queue or self._stopping or time.monotonic() >= deadline:
                ready = self.queue[:limit]
                if ready and self.first_offered is None:
                    self.first_offered = time.monotonic()
                return ready
            self._arrived.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._arrived.wait(), deadline - time.monotonic())

    def _allowed(self, update: dict[str, Any]) -> bool:
        kind = next(k for k in update if k != "update_id")
        allowed = self.allowed_updates or ["message", "edited_message", "channel_post", "edited_channel_post",
                                           "callback_query", "my_chat_member", "inline_query"]
        return kind in allowed

    async def _m_deleteWebhook(self, params: dict[str, Any], files: dict) -> bool:
        self.webhook = {}
        if str(params.get("drop_pending_updates")).lower() == "true":
            self.queue.clear()
        return True

    async def _m_setWebhook(self, params: dict[str, Any], files: dict) -> bool:
        secret = params.get("secret_token")
        if secret is not None and not re.fullmatch(r"[A-Za-z0-9_-]{1,256}", secret):
            raise bad_request("secret token contains unallowed characters")
        self.webhook = {"url": params["url"], "secret_token": secret,
                        "allowed_updates": params.get("allowed_updates")}
        return True

    async def deliver_webhook(self, update: dict[str, Any], *, secret: str | None = "configured") -> int:
        """POST an update to the bot's webhook as Telegram does; the HTTP status it answered."""
        import aiohttp

        update.setdefault("update_id", next(self._next_update))
        for message in _messages_in(update):
            self.remember_chat(message["chat"])
        headers = {}
        token = self.webhook.get("secret_token") if secret == "configured" else secret
        if token is not None:
            headers["X-Telegram-Bot-Api-Secret-Token"] = token
        async with aiohttp.ClientSession() as session, \
                session.post(self.webhook["url"], json=update, headers=headers) as response:
            return response.status

    async def _m_setMyCommands(self, params: dict[str, Any], files: dict) -> bool:
        commands = params["commands"]
        if len(commands) > 100:
            raise bad_request("too many commands")
        for entry in commands:
            if not re.fullmatch(r"[a-z0-9_]{1,32}", entry["command"]):
                raise bad_request("BOT_COMMAND_INVALID")
            if not 1 <= len(entry["description"]) <= 256:
                raise bad_request("BOT_COMMAND_DESCRIPTION_INVALID")
        self.commands[params.get("language_code") or ""] = commands
        return True

    async def _m_sendChatAction(self, params: dict[str, Any], files: dict) -> bool:
        self._chat(params)
        return True

    async def _m_answerCallbackQuery(self, params: dict[str, Any], files: dict) -> bool:
        if len(params.get("text") or "") > 200:
            raise bad_request("MESSAGE_TOO_LONG")
        return True

    def _chat(self, params: dict[str, Any]) -> dict[str, Any]:
        chat = self.chats.get(str(params.get("chat_id")))
        if chat is None:
            raise bad_request("chat not found")
        return chat

    def _markup(self, params: dict[str, Any]) -> dict[str, Any] | None:
        markup = params.get("reply_markup")
        for row in (markup or {}).get("inline_keyboard", []):
            for button in row:
                data = button.get("callback_data")
                if data is not None and not 1 <= len(data.encode()) <= MAX_CALLBACK_DATA:
                    raise bad_request("BUTTON_DATA_INVALID")
        return markup

    def _text(self, params: dict[str, Any], key: str, limit: int) -> Rendered:
        raw = params.get(key) or ""
        rendered = parse_html(raw) if params.get("parse_mode") == "HTML" else Rendered(raw, [])
        if utf16_len(rendered.text.strip()) > limit:
            raise bad_request("message is too long" if key == "text" else "message caption is too long")
        return rendered

    def _thread(self, chat: dict[str, Any], params: dict[str, Any]) -> int | None:
        thread = params.get("message_thread_id")
        if thread is None:
            return None
        if not chat.get("is_forum"):
            raise bad_request("message thread not found")
        return int(thread)

    def _new_message(self, method: str, params: dict[str, Any], rendered: Rendered,
                     extra: dict[str, Any], files: dict | None = None) -> dict[str, Any]:
        chat = self._chat(params)
        thread = self._thread(chat, params)
        markup = self._markup(params)
        chat_id = str(chat["id"])
        message: dict[str, Any] = {"message_id": self.message_id(chat_id), "from": self.bot_user, "chat": chat,
                                   "date": int(time.time()), **extra}
        if thread is not None:
            message.update(message_thread_id=thread, is_topic_message=True)
        if markup:
            message["reply_markup"] = markup
        self.messages[(chat_id, message["message_id"])] = message
        document = photo = None
        if method == "sendDocument":
            document = (extra["document"]["file_name"], files["document"][1])
        if method == "sendPhoto":
            photo = files["photo"][1]
        self.outbox.append(Outgoing(method, chat_id, message["message_id"], params.get("text") or params.get(
            "caption") or "", rendered.text, rendered.bold, markup, thread, document, photo))
        return message

    async def _m_sendMessage(self, params: dict[str, Any], files: dict) -> dict[str, Any]:
        rendered = self._text(params, "text", MAX_TEXT)
        if not rendered.text.strip():
            raise bad_request("message text is empty")
        return self._new_message("sendMessage", params, rendered, {"text": rendered.text})

    async def _m_sendDocument(self, params: dict[str, Any], files: dict) -> dict[str, Any]:
        if "document" not in files:
            raise bad_request("there is no document in the request")
        rendered = self._text(params, "caption", MAX_CAPTION)
        name, content = files["document"]
        file_info = self.add_file(name, content, "text/csv" if name.endswith(".csv") else "application/octet-stream")
        extra: dict[str, Any] = {"document": file_info}
        if rendered.text:
            extra["caption"] = rendered.text
        return self._new_message("sendDocument", params, rendered, extra, files)

    async def _m_sendPhoto(self, params: dict[str, Any], files: dict) -> dict[str, Any]:
        if "photo" not in files:
            raise bad_request("there is no photo in the request")
        rendered = self._text(params, "caption", MAX_CAPTION)
        content = files["photo"][1]
        width, height = struct.unpack(">II", content[16:24]) if content[:8] == b"\x89PNG\r\n\x1a\n" else (0, 0)
        info = self.add_file(files["photo"][0] or "photo.png", content, "image/png")
        sizes = [{"file_id": info["file_id"], "file_unique_id": info["file_unique_id"], "width": width,
                  "height": height, "file_size": len(content)}]
        extra: dict[str, Any] = {"photo": sizes}
        if rendered.text:
            extra["caption"] = rendered.text
        return self._new_message("sendPhoto", params, rendered, extra, files)

    def _editable(self, params: dict[str, Any]) -> dict[str, Any]:
        chat = self._chat(params)
        message = self.messages.get((str(chat["id"]), int(params.get("message_id") or 0)))
        if message is None or message["from"].get("id") != self.bot_id:
            raise bad_request("message to edit not found")
        return message

    async def _m_editMessageText(self, params: dict[str, Any], files: dict) -> dict[str, Any]:
        message = self._editable(params)
        if "text" not in message:
            raise bad_request("there is no text in the message to edit")
        rendered = self._text(params, "text", MAX_TEXT)
        markup = self._markup(params)
        if rendered.text == message["text"] and markup == message.get("reply_markup"):
            raise bad_request(NOT_MODIFIED)
        message["text"] = rendered.text
        message.pop("reply_markup", None)
        if markup:
            message["reply_markup"] = markup
        message["edit_date"] = int(time.time())
        chat_id = str(message["chat"]["id"])
        self.outbox.append(Outgoing("editMessageText", chat_id, message["message_id"], params["text"], rendered.text,
                                    rendered.bold, markup, message.get("message_thread_id")))
        return message

    async def _m_editMessageReplyMarkup(self, params: dict[str, Any], files: dict) -> dict[str, Any]:
        message = self._editable(params)
        markup = self._markup(params)
        if markup == message.get("reply_markup"):
            raise bad_request(NOT_MODIFIED)
        message.pop("reply_markup", None)
        if markup:
            message["reply_markup"] = markup
        chat_id = str(message["chat"]["id"])
        self.outbox.append(Outgoing("editMessageReplyMarkup", chat_id, message["message_id"], "",
                                    message.get("text", ""), [], markup, message.get("message_thread_id")))
        return message

    async def _m_getFile(self, params: dict[str, Any], files: dict) -> dict[str, Any]:
        file_id = params.get("file_id", "")
        if file_id not in self.files:
            raise bad_request("invalid file_id")
        path, content = self.files[file_id]
        if len(content) > 20 * 1024 * 1024:
            raise bad_request("file is too big")
        return {"file_id": file_id, "file_unique_id": "AgAD" + file_id[-8:], "file_size": len(content),
                "file_path": path}


def _messages_in(update: dict[str, Any]) -> list[dict[str, Any]]:
    found = [update[k] for k in ("message", "edited_message") if k in update]
    if "callback_query" in update and "message" in update["callback_query"]:
        found.append(update["callback_query"]["message"])
    if "my_chat_member" in update:
        found.append({"chat": update["my_chat_member"]["chat"], "message_id": 0})
    return [m for m in found if "chat" in m]


# --- as its own process (the Telegram benches) ------------------------------------------------------

def control_routes(api: TelegramStandIn, app: web.Application) -> None:
    """`/_control`: queue updates, read progress and what was sent, reset between runs (optionally
    with a `latency` in seconds added to every Bot API call)."""

    async def push(request: web.Request) -> web.Response:
        for update in await request.json():
            api.push(update)
        return web.json_response({"queued": len(api.queue)})

    async def stats(request: web.Request) -> web.Response:
        sends = [c for c in api.calls if c.method in SEND_METHODS and c.error is None]
        errors = [c.error.description for c in api.calls if c.error is not None]
        return web.json_response({
            "replies": len(sends), "first_offered": api.first_offered,
            "last_reply": sends[-1].at if sends else None, "errors": errors[:5], "error_count": len(errors),
            "now": time.monotonic(),
            # updates handed out by getUpdates, counted again each time one is handed out again
            "handed_out": sum(len(c.result) for c in api.calls if c.method == "getUpdates" and c.result),
        })

    async def sent(request: web.Request) -> web.Response:
        """Every message accepted, in order, as its chat shows it; `at` in Unix time."""
        offset = time.time() - time.monotonic()
        return web.json_response([
            {"chat_id": c.chat_id, "text": c.result.get("text") or c.result.get("caption") or "", "at": c.at + offset}
            for c in api.calls if c.method in SEND_METHODS and c.error is None and c.result is not None])

    async def reset(request: web.Request) -> web.Response:
        body = await request.json()
        api.token = body["token"]
        api.bot_id = int(api.token.split(":")[0])
        api.bot_user["id"] = api.bot_id
        api.calls.clear()
        api.outbox.clear()
        api.queue.clear()
        api.first_offered = None
        for chat in body.get("chats", []):
            api.remember_chat(chat)
        api.clear_rules()
        latency = float(body.get("latency", 0))
        if latency:  # every Bot API call answers that much later, as over the network to Telegram
            for method in (name.removeprefix("_m_") for name in dir(api) if name.startswith("_m_")):
                api.delay(method, latency)
        return web.json_response({"ok": True})

    app.router.add_post("/_control/push", push)
    app.router.add_get("/_control/stats", stats)
    app.router.add_get("/_control/sent", sent)
    app.router.add_post("/_control/reset", reset)


async def _serve(port: int) -> None:
    api = TelegramStandIn(port=port)
    app = api.application()
    control_routes(api, app)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
    await runner.setup()
    await web.TCPSite(runner, api.host, port).start()
    print(f"ready {runner.addresses[0][1]}", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(parser.parse_args().port))
