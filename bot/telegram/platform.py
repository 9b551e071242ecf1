"""The Telegram adapter (python-telegram-bot): updates in as `Request`s, `Reply`s out as HTML.

- One `Application`, long polling by default, or a webhook on the bot's own HTTP
  server when `TELEGRAM_WEBHOOK_URL` is set (the secret-token header is checked).
  On PostgreSQL several processes may serve one bot: one of them polls, holding
  a lease (storage.leases); in webhook mode each answers what reaches it.
- Updates of different chats are handled concurrently, each chat's in order
  (bot.telegram.transport.ChatOrderedProcessor); every send goes through PTB's
  AIORateLimiter (`ChatRateLimiter`), which keeps Telegram's flood limits and
  waits out a 429's `retry_after` in that chat only.
- A polled batch is kept in the database before Telegram hears it arrived
  (`ConfirmingPoller`, storage.inbox), and a webhook request is answered after
  its update, so a process killed in the middle of a burst loses none: the
  restart handles the rest from the database, or Telegram posts it again.
- Reminders and digests: `TelegramSender`, whose HTTP client marks a delivery's
  message as leaving just before the request is written (reminders.delivery).
- An update Telegram delivers twice carries the same `update_key`, and the core
  applies it once; replies are reported as they leave (`Core.answered`), so an
  update applied by a process killed before it answered is answered after the
  restart. A user who blocked the bot is recorded on their identity and the bot
  serves everyone else; any other failure answers with a short apology in the
  user's language and is logged with the update.
- The command menu is registered in English and Chinese from /help's list.
- A member who leaves the team's group, or is removed from it, is suspended in
  its book (storage.offboarding): `chat_member` updates (which Telegram sends
  where the bot is an administrator, and only when asked for) and the
  `left_chat_member` service message (which it always sends) both say so.
"""
from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import logging
import re
import secrets
from dataclasses import dataclass, replace
from typing import Any, AsyncIterator, Awaitable, Callable
from urllib.parse import urlsplit

from aiohttp import web
from sqlalchemy.exc import IntegrityError
from telegram import (
    BotCommand,
    Contact,
    Document,
    InaccessibleMessage,
    LinkPreviewOptions,
    Message,
    ReplyParameters,
    Update,
)
from telegram.constants import ChatAction, ChatMemberStatus, ChatType, ParseMode
from telegram.error import BadRequest, Forbidden, NetworkError, RetryAfter, TelegramError
from telegram.ext import Application, ApplicationBuilder, ContextTypes, Defaults, TypeHandler
from telegram.request import HTTPXRequest

from bot import logs
from bot.telegram import render
from bot.telegram.transport import (
    LEAVING_HOOKS,
    ChatOrderedProcessor,
    ChatRateLimiter,
    ConfirmingPoller,
    retry_seconds,
)
from bot.web import WebServer
from handlers.help import command_menu
from handlers.i18n import normalize_locale, t
from handlers.messages import Attachment, ProgressSink, Reply, Request
from handlers.registry import find_command
from handlers.transfer import MAX_BYTES
from reminders.delivery import DeliveryError, RecipientBlocked, SentElsewhere, leaving, sending
from storage import blocking, offboarding, workspaces
from storage.inbox import Inbox
from storage.leases import Lease
from storage.transfer.values import join_name

log = logging.getLogger(__name__)

PLATFORM = "telegram"
ALLOWED_UPDATES = ["message", "callback_query", "my_chat_member", "chat_member"]
#: A member's status that means they are no longer in the group.
GONE = (ChatMemberStatus.LEFT, ChatMemberStatus.BANNED)
MENU_LOCALES = ("en", "zh")  # English is also the default menu
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
NOT_MODIFIED = "message is not modified"
#: A leading /command, its @botname if any, and what follows the white space after it.
COMMAND = re.compile(r"(/[^\s@]*)(?:@(\S*))?\s*(.*)", re.DOTALL)
#: Tries to reach Telegram at start, 1, 2, 4 … seconds apart (about a minute in all).
START_ATTEMPTS = 7
#: How long a webhook request waits for its update to be handled before answering anyway.
WEBHOOK_WAIT = 50.0


def api_urls(base: str | None) -> tuple[str, str] | None:
    """(base_url, base_file_url) for a Bot API server given as its root or as `…/bot`."""
    if not base:
        return None
    root = base.rstrip("/")
    root = root.removesuffix("/bot")
    return f"{root}/bot", f"{root}/file/bot"


def derived_secret(token: str) -> str:
    """The webhook secret when none is set: made from the bot token, so every process serving the bot
    behind one load balancer checks the one Telegram was given (a random one per start would have
    each start lock the others out). Whoever knows the token controls the bot anyway."""
    digest = hmac.new(token.encode(), b"crm-bot telegram webhook secret", hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def language_of(user: Any) -> str | None:
    """The user's Telegram language for the core: a language we speak as it is, any other as English
    (DEFAULT_LOCALE is for a user Telegram says nothing about)."""
    code = getattr(user, "language_code", None)
    if not code:
        return None
    return code if normalize_locale(code, "") else "en"


@dataclass(frozen=True)
class Where:
    """Where replies go: the chat, its forum topic, and the message answered (groups)."""

    chat_id: int
    thread_id: int | None = None
    reply_to: int | None = None
    private: bool = True


class TelegramPlatform:
    """bot.app.Platform for Telegram."""

    name = PLATFORM

    def __init__(
        self,
        app: Any,
        *,
        max_retries: int = 3,
        overall_max_rate: float = 30,
        group_max_rate: float = 20,
        workers: int = 16,
        poll_timeout: int = 10,
    ) -> None:
        settings = app.settings
        if not settings.telegram_bot_token:
            raise ValueError("TELEGRAM_BOT_TOKEN is not set")
        # httpx logs every request URL at INFO, and Bot API URLs carry the token
        logging.getLogger("httpx").setLevel(max(logging.WARNING, logging.getLogger("httpx").level))
        self.app = app
        self.core = app.core
        self.default_locale = settings.default_locale
        self.webhook_url: str | None = settings.telegram_webhook_url or None
        self.webhook_secret = settings.telegram_webhook_secret or derived_secret(settings.telegram_bot_token)
        logs.protect(settings.telegram_bot_token, self.webhook_secret)
        self.sender = TelegramSender(self)
        builder = (
            ApplicationBuilder()
            .token(settings.telegram_bot_token)
            .rate_limiter(ChatRateLimiter(overall_max_rate=overall_max_rate, group_max_rate=group_max_rate,
                                          max_retries=max_retries))
            .concurrent_updates(ChatOrderedProcessor(workers, on_handled=self._handled))
            .request(HTTPXRequest(connection_pool_size=256, media_write_timeout=60, httpx_kwargs=LEAVING_HOOKS))
            .updater(None)  # ConfirmingPoller or the webhook instead
            # no link previews: a website or address in a customer's card must not be fetched and shown
            .defaults(Defaults(link_preview_options=LinkPreviewOptions(is_disabled=True)))
        )
        urls = api_urls(settings.telegram_api_base_url)
        if urls:
            builder = builder.base_url(urls[0]).base_file_url(urls[1])
        self.application: Application = builder.build()
        #: The bot's id, as its token starts (what getMe says): it names its updates' redelivery keys.
        self.bot_id = bot_id = settings.telegram_bot_token.split(":")[0]
        self.poller = None if self.webhook_url else ConfirmingPoller(
            self.bot, self.application.update_queue, Inbox(app.db, f"{PLATFORM}:{bot_id}"), self.update_key,
            timeout=poll_timeout, allowed_updates=ALLOWED_UPDATES, clock=app.services.clock)
        #: On PostgreSQL several processes may run: one of them polls, holding this lease.
        self.lease = None if self.poller is None or app.db.is_sqlite else Lease(
            app.db.url, f"telegram polling {bot_id}", on_gained=self._start_polling, on_lost=self._stop_polling)
        #: Webhook requests waiting for their update to be handled, by update_id.
        self._webhook_waiting: dict[int, asyncio.Future[None]] = {}
        self.application.add_handler(TypeHandler(Update, self._on_update))
        self.application.add_error_handler(self._on_error)

    @property
    def bot(self):  # type: ignore[no-untyped-def]
        return self.application.bot

    # --- lifecycle ------------------------------------------------------------------------------
    def attach(self, web_server: WebServer) -> None:
        if self.webhook_url:
            web_server.add_route("POST", urlsplit(self.webhook_url).path or "/", self._webhook)

    async def start(self) -> None:
        await self._reach_telegram()
        await self._register_menu()
        if self.webhook_url:
            await self.bot.set_webhook(self.webhook_url, secret_token=self.webhook_secret,
                                       allowed_updates=ALLOWED_UPDATES)
        await self.application.start()
        if self.poller is not None:
            await self.bot.delete_webhook()  # Telegram refuses getUpdates while a webhook is set
        if self.lease is not None:
            self.lease.start()
        elif self.poller is not None:
            self.poller.start()
        log.info("Telegram bot @%s serving (%s)", self.bot.username,
                 "webhook" if self.webhook_url else "polling, one process at a time" if self.lease else "polling")

    async def _start_polling(self) -> None:
        assert self.poller is not None
        self.poller.start()

    async def _stop_polling(self) -> None:
        """The lease is gone: another process may poll now, so stop at once (what was fetched is still
        handled; the next poller replays what is still in the inbox, and the redelivery key applies
        each update once)."""
        assert self.poller is not None
        await self.poller.stop()

    async def _reach_telegram(self) -> None:
        """getMe, tried again for a while if the network is not up yet (a server booting); a wrong token fails
        at once."""
        for attempt in range(START_ATTEMPTS):
            try:
                await self.application.initialize()
                return
            except NetworkError as problem:
                if attempt == START_ATTEMPTS - 1:
                    raise
                pause = 2 ** attempt
                log.warning("Telegram is not reachable (%s); trying again in %d s", problem, pause)
                await asyncio.sleep(pause)

    async def stop(self) -> None:
        if self.lease is not None:
            await self.lease.stop()  # still held: nobody else polls before this process has confirmed
        if self.poller is not None:
            await self.poller.stop()
        if self.application.running:
            await self.application.stop()  # handles what was already fetched
        if self.poller is not None and (self.lease is None or self.lease.holding):
            await self.poller.confirm()
        await self.application.shutdown()
        if self.poller is not None:
            await self.poller.finished()
        if self.lease is not None:
            await self.lease.release()

    def update_key(self, update_id: int) -> str:
        """The redelivery key of an update: the same however often and by whichever process it arrives."""
        return f"{PLATFORM}:{self.bot_id}:{update_id}"

    def _handled(self, update_id: int) -> None:
        if self.poller is not None:
            self.poller.handled(update_id)
        waiting = self._webhook_waiting.pop(update_id, None)
        if waiting is not None and not waiting.done():
            waiting.set_result(None)

    async def _register_menu(self) -> None:
        for locale in MENU_LOCALES:
            commands = [BotCommand(name, description) for name, description in command_menu(locale)]
            try:
                await self.bot.set_my_commands(commands, language_code=None if locale == "en" else locale)
            except TelegramError:
                log.exception("could not register the %s command menu", locale)

    async def _webhook(self, request: web.Request) -> web.Response:
        if not secrets.compare_digest(request.headers.get(SECRET_HEADER, ""), self.webhook_secret):
            return web.Response(status=403, text="forbidden")
        if not self.application.running:
            return web.Response(status=503, text="starting")  # Telegram retries later
        try:
            data = await request.json()
            if not isinstance(data, dict) or type(data.get("update_id")) is not int:
                raise ValueError("not an update object")
            update = Update.de_json(data, self.bot)
        except (ValueError, TypeError, KeyError, AttributeError):  # a JSON error is a ValueError
            log.debug("webhook: a body that is not an update was refused")
            return web.Response(status=400, text="not an update")
        # answered once handled: a process that dies first leaves the update for Telegram to send again
        handled = self._webhook_waiting.setdefault(update.update_id, asyncio.get_running_loop().create_future())
        await self.application.update_queue.put(update)
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(asyncio.shield(handled), WEBHOOK_WAIT)
        return web.Response(text="ok")

    # --- updates in ---------------------------------------------------------------------------------
    async def _on_update(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        if update.my_chat_member is not None:
            await self._membership_changed(update)
        elif update.chat_member is not None:
            change = update.chat_member
            if change.chat.type != ChatType.PRIVATE and _gone(change.new_chat_member) \
                    and not _gone(change.old_chat_member):
                await self._left_group(change.chat.id, change.new_chat_member.user)
        elif update.callback_query is not None:
            await self._on_button(update)
        elif update.message is not None:
            await self._on_message(update, update.message)
        # edited messages, channel posts and the rest are not commands: nothing to do

    async def _on_message(self, update: Update, message: Message) -> None:
        user = message.from_user
        if message.migrate_to_chat_id or message.migrate_from_chat_id:
            await self._group_upgraded(message)
            return
        if message.left_chat_member is not None:
            await self._left_group(message.chat.id, message.left_chat_member)
            return
        if user is None or user.is_bot:
            return
        addressed = self._addressing(message)
        if addressed is None:
            return  # a command for another bot
        text, is_addressed = addressed
        where = self._where(message)
        file: Attachment | None = None
        if message.contact is not None and not text and is_addressed:
            text, file = "/import", contact_card(message.contact)  # a shared contact adds or updates a customer
        command = self._command(text)
        if command == "start" and message.chat.type == ChatType.PRIVATE:
            # pressing START opens the private chat; Telegram sends no my_chat_member for a first start,
            # so a block recorded while the bot "can't initiate conversation" is lifted here
            await self.note_reachable(str(user.id))
        if command == "import" and file is None:
            replied = message.reply_to_message
            document = message.document or (replied.document if replied is not None else None)
            if document is not None:
                file = await self._download(document, where, language_of(user))
                if file is None:
                    return
        elif not text:
            return  # a photo, a sticker, a document without a command: nothing to answer
        request = self._request(update, text=text, addressed=is_addressed, file=file,
                                progress=self._progress_sink(where))
        replies = await self._handle(request)
        async with self._answering(request, replies):
            await self._answer(where, replies)

    async def _download(self, document: Document, where: Where, language: str | None) -> Attachment | None:
        """The file sent with /import, through getFile; None (and the user told) when it is too big."""
        if (document.file_size or 0) > MAX_BYTES:
            too_big = t(normalize_locale(language, self.default_locale), "import.error.too_big",
                        size=f"{document.file_size / 2**20:.1f}", limit=MAX_BYTES // 2**20)
            await self._send(where, Reply(text=too_big))
            return None
        await self.bot.send_chat_action(where.chat_id, ChatAction.TYPING, message_thread_id=where.thread_id)
        content = await (await self.bot.get_file(document.file_id)).download_as_bytearray()
        return Attachment(document.file_name or "upload.csv", bytes(content),
                          document.mime_type or "application/octet-stream")

    def _addressing(self, message: Message) -> tuple[str, bool] | None:
        """(text for the core, addressed?) — or None for a command meant for another bot."""
        text = (message.text or message.caption or "").strip()
        me = (self.bot.username or "").casefold()
        if text.startswith("/"):
            # the command ends at any white space (a newline or tab too); the core splits on one space
            command, target, rest = COMMAND.match(text).groups()  # type: ignore[union-attr]
            if target is not None and target.casefold() != me:
                return None
            return f"{command} {rest}" if rest else command, True
        if message.chat.type == ChatType.PRIVATE:
            return text, True
        mention = re.match(rf"@{re.escape(me)}(?![A-Za-z0-9_])[\s,:：，]*", text, re.IGNORECASE) if me else None
        if mention:
            return text[mention.end():], True
        replied = message.reply_to_message
        to_me = (replied is not None and replied.from_user is not None and replied.from_user.id == self.bot.id
                 and replied.forum_topic_created is None)
        return text, to_me

    @staticmethod
    def _command(text: str) -> str | None:
        """The registered name of the /command the text starts with, if any."""
        word = text.split(maxsplit=1)[0] if text else ""
        entry = find_command(word.lstrip("/")) if word.startswith("/") else None
        return entry.name if entry is not None else None

    async def _on_button(self, update: Update) -> None:
        query = update.callback_query
        assert query is not None
        message = query.message
        if not query.data or message is None:
            await query.answer()
            return
        where = replace(self._where(message), reply_to=None)  # the answer belongs under the buttons' message
        request = self._request(update, action=query.data, chat=message.chat)
        try:
            replies = await self._handle(request)
        except Exception:
            await _quietly(query.answer())
            raise
        alert = None if message.chat.type == ChatType.PRIVATE else render.alert(replies)
        # a refusal in a group is for the one who pressed, not the whole group; a press answered too late
        # (a busy chat: Telegram waits about 15 s) shows no toast, so its words go into the chat after all
        async with self._answering(request, replies):
            if alert is not None and await _quietly(query.answer(alert, show_alert=True)):
                return
            notice = next((reply.notice for reply in replies if reply.notice), "")
            toasted = await _quietly(query.answer(notice[:200] or None)) and bool(notice)
            editable = message if isinstance(message, Message) and not isinstance(message, InaccessibleMessage) \
                else None
            await self._answer(where, replies, editable=editable, toasted=toasted)

    async def _group_upgraded(self, message: Message) -> None:
        """A group became a supergroup (topics on, made public…): its customer book follows the new chat id.

        Telegram says so twice, in the old group (`migrate_to_chat_id`) and in the new one
        (`migrate_from_chat_id`); either binds the new chat to the old chat's workspace.
        """
        old, new = ((message.chat.id, message.migrate_to_chat_id) if message.migrate_to_chat_id
                    else (message.migrate_from_chat_id, message.chat.id))
        try:
            async with self.app.db.transaction() as session:
                book = await workspaces.workspace_for_space(session, PLATFORM, str(old))
                if book is not None and await workspaces.workspace_for_space(session, PLATFORM, str(new)) is None:
                    await workspaces.bind_space(session, book, PLATFORM, str(new))
                    log.info("group %s is now supergroup %s: workspace %s follows it", old, new, book.id)
        except IntegrityError:  # the other of the two messages bound it at the same moment
            log.info("supergroup %s was bound by the other upgrade message", new)

    async def _left_group(self, chat_id: int, user: Any) -> None:
        """Someone left the group (or was removed): suspended in its book, the admins told."""
        if user.is_bot:
            return
        async with self.app.db.transaction() as session:
            gone = await offboarding.suspend_account(session, PLATFORM, str(user.id), how=offboarding.LEFT,
                                                     now=self.app.services.clock(), space=str(chat_id))
        if gone:
            log.info("member %s left group %s: suspended in its customer book", gone[0].id, chat_id)

    async def _membership_changed(self, update: Update) -> None:
        """In a private chat, the user blocked (kicked) or allowed the bot again."""
        change = update.my_chat_member
        assert change is not None
        if change.chat.type != ChatType.PRIVATE:
            return
        status = change.new_chat_member.status
        if status in (ChatMemberStatus.BANNED, ChatMemberStatus.LEFT):
            await self.note_blocked(external_id=str(change.from_user.id))
        elif status == ChatMemberStatus.MEMBER:
            await self.note_reachable(str(change.from_user.id))

    def _request(self, update: Update, *, chat: Any = None, **fields: Any) -> Request:
        user = update.effective_user
        chat = chat or update.effective_chat
        assert user is not None and chat is not None
        private = chat.type == ChatType.PRIVATE
        return Request(
            platform=PLATFORM, user_id=str(user.id), chat_id=str(chat.id), user_name=user.full_name,
            space=None if private else str(chat.id), space_name="" if private else (chat.title or ""),
            space_autocreate=False, is_private=private, language=language_of(user),
            update_key=self.update_key(update.update_id), reports_answers=True, supports_forms=False,
            dm_chat_id=str(user.id), **fields,
        )

    async def _handle(self, request: Request) -> list[Reply]:
        return await self.core.handle(request)  # SQLite's one writer: storage.db queues the transactions

    @contextlib.asynccontextmanager
    async def _answering(self, request: Request, replies: list[Reply]) -> AsyncIterator[None]:
        """Around answering an update: the core keeps the replies until the first request that posts
        them leaves (or, for an answer that only edits or toasts, until it is done), so a process
        killed before that answers again after the restart (handlers.kept_replies)."""
        if not replies or request.update_key is None:
            yield
            return
        async with sending(_KeptAnswer(self._keep_answer, request.update_key, replies)):
            yield
            await leaving()  # an answer that only edited or toasted posted nothing: it is out now

    async def _keep_answer(self, update_key: str, replies: list[Reply] | None) -> bool:
        return await self.core.answered(update_key, replies)

    @staticmethod
    def _where(message: Any) -> Where:
        chat = message.chat
        private = chat.type == ChatType.PRIVATE
        thread = message.message_thread_id if getattr(message, "is_topic_message", False) else None
        reply_to = None if private or isinstance(message, InaccessibleMessage) else message.message_id
        return Where(chat.id, thread, reply_to, private)

    def _progress_sink(self, where: Where) -> ProgressSink:
        """Send the first progress reply, then edit that same message."""
        shown: list[Message] = []

        async def show(reply: Reply) -> None:
            try:
                sent = await self._send(where, replace(reply, edit=bool(shown)), editable=shown[0] if shown else None)
            except TelegramError:
                log.warning("progress message failed in chat %s", where.chat_id, exc_info=True)
                return
            if sent is not None and not shown:
                shown.append(sent)

        return show

    # --- replies out ----------------------------------------------------------------------------------
    async def _answer(self, where: Where, replies: list[Reply], *, editable: Message | None = None,
                      toasted: bool = False) -> None:
        """Send a response (a notice not already shown as a toast becomes text); a block by the user
        is recorded, not raised."""
        try:
            for reply in replies:
                await self._send(where, reply, editable=editable if reply.edit else None, notice_text=not toasted)
                if reply.edit:
                    editable = None  # one message is edited; later replies are new messages
                where = replace(where, reply_to=None)
        except Forbidden as blocked:
            log.info("chat %s refused a reply: %s", where.chat_id, blocked.message)
            if where.private:
                await self.note_blocked(dm_chat_id=str(where.chat_id))
        except TelegramError as failed:
            raise AnswerNotShown(str(failed)) from failed

    async def _send(self, where: Where, reply: Reply, *, editable: Message | None = None,
                    notice_text: bool = True) -> Message | None:
        """Render one reply into the chat (editing `editable` if given); the last message sent."""
        attachment = reply.file or reply.image
        texts = render.parts(reply, with_notice=notice_text)
        markup = render.keyboard(reply)
        caption = None
        if attachment is not None and len(texts) == 1 and render.shown_size(texts[0]) <= render.MAX_CAPTION:
            caption = texts.pop()
        last: Message | None = None
        for index, text in enumerate(texts):
            keys = markup if index == len(texts) - 1 and attachment is None else None
            if index == 0 and editable is not None:
                edited = await self._edit(editable, text, keys)
                if edited is not False:
                    last = edited or editable
                    continue
            last = await self.bot.send_message(
                where.chat_id, text, parse_mode=ParseMode.HTML, reply_markup=keys,
                message_thread_id=where.thread_id, reply_parameters=self._reply_to(where, index),
            )
        if attachment is not None:
            send = self.bot.send_photo if reply.file is None else self.bot.send_document
            kind = "photo" if reply.file is None else "document"
            last = await send(
                where.chat_id, **{kind: attachment.content}, filename=attachment.name, caption=caption,
                parse_mode=ParseMode.HTML, reply_markup=markup, message_thread_id=where.thread_id,
                reply_parameters=self._reply_to(where, len(texts)),
            )
        return last

    @staticmethod
    def _reply_to(where: Where, index: int) -> ReplyParameters | None:
        if where.reply_to is None or index:
            return None
        return ReplyParameters(where.reply_to, allow_sending_without_reply=True)

    async def _edit(self, message: Message, text: str, markup: Any) -> Message | None | bool:
        """Edit the message in place: the edited message, None if unchanged, False if it can't be edited."""
        try:
            edited = await self.bot.edit_message_text(text, message.chat.id, message.message_id,
                                                      parse_mode=ParseMode.HTML, reply_markup=markup)
        except BadRequest as problem:
            if NOT_MODIFIED in problem.message.casefold():
                return None
            log.info("cannot edit message %s in chat %s (%s); sending a new one",
                     message.message_id, message.chat.id, problem.message)
            return False
        return edited if isinstance(edited, Message) else None

    # --- failures ---------------------------------------------------------------------------------------
    async def note_reachable(self, external_id: str) -> None:
        async with self.app.db.transaction() as session:
            await blocking.clear_blocked(session, PLATFORM, external_id=external_id)

    async def note_blocked(self, *, external_id: str | None = None, dm_chat_id: str | None = None) -> None:
        async with self.app.db.transaction() as session:
            await blocking.record_blocked(session, PLATFORM, now=self.app.services.clock(),
                                          external_id=external_id, dm_chat_id=dm_chat_id)

    async def _on_error(self, update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
        """Log the failure with its update and apologise to the user; the bot keeps serving."""
        if isinstance(update, Update):  # which update, not what it said: that is logged at DEBUG only
            kind = next((key for key in update.to_dict() if key != "update_id"), "?")
            log.error("Telegram update %s (%s) failed", update.update_id, kind, exc_info=context.error)
            log.debug("the failed update: %s", update.to_dict())
        else:
            log.error("Telegram error: %s", type(update).__name__, exc_info=context.error)
        if not isinstance(update, Update) or update.effective_chat is None or isinstance(context.error, Forbidden):
            return
        user = update.effective_user
        language = normalize_locale(language_of(user), self.default_locale)
        message = update.effective_message
        where = self._where(message) if message is not None else Where(update.effective_chat.id)
        apology = "error.answer_not_shown" if isinstance(context.error, AnswerNotShown) else "error.internal"
        try:
            await self._send(where, Reply(text=t(language, apology)))
        except TelegramError:
            log.warning("could not send the apology to chat %s", update.effective_chat.id, exc_info=True)


def contact_card(contact: Contact) -> Attachment:
    """A contact shared into the chat, as the one-card vCard file /import reads: the card Telegram
    carries when the sender's phone book gave one, else a card of its name and number (a Telegram
    user's own number comes in international form without its `+`)."""
    if contact.vcard and "BEGIN:VCARD" in contact.vcard.upper():
        return Attachment("contact.vcf", contact.vcard.encode("utf-8"), "text/vcard")
    phone = contact.phone_number or ""
    if contact.user_id and phone.isdigit():
        phone = f"+{phone}"

    def escaped(text: str | None) -> str:
        return re.sub(r"([\\;,])", r"\\\1", text or "").replace("\n", " ")

    first, last = escaped(contact.first_name), escaped(contact.last_name)
    card = (f"BEGIN:VCARD\r\nVERSION:3.0\r\nN:{last};{first};;;\r\nFN:{join_name(first, '', last)}\r\n"
            f"TEL;TYPE=CELL:{escaped(phone)}\r\nEND:VCARD\r\n")
    return Attachment("contact.vcf", card.encode("utf-8"), "text/vcard")


class AnswerNotShown(Exception):
    """Telegram refused the answer to a command the core had already applied."""


@dataclass(frozen=True)
class _KeptAnswer:
    """reminders.delivery.WireMarks for the answer to one update: leaving, it is claimed (no longer
    kept), unless another delivery of the update claimed it first; a try that failed keeps it again
    (`sending()` calls each only in turn)."""

    keep: Callable[[str, list[Reply] | None], Awaitable[bool]]
    update_key: str
    replies: list[Reply]

    async def on_wire(self) -> None:
        if not await self.keep(self.update_key, None):
            raise SentElsewhere(self.update_key)

    async def not_on_wire(self) -> None:
        await self.keep(self.update_key, self.replies)


class TelegramSender:
    """reminders.delivery.Sender: a reply into a chat, rendered like any response."""

    platform = PLATFORM

    def __init__(self, platform: TelegramPlatform) -> None:
        self._platform = platform

    async def send(self, chat_id: str, reply: Reply) -> None:
        try:
            await self._platform._send(Where(int(chat_id)), reply)
        except Forbidden as blocked:
            await self._platform.note_blocked(dm_chat_id=chat_id)
            raise RecipientBlocked(blocked.message) from blocked
        except RetryAfter as flood:
            raise DeliveryError(flood.message, retry_after=retry_seconds(flood)) from flood
        except BadRequest as problem:
            if "chat not found" in problem.message.casefold():
                raise RecipientBlocked(problem.message) from problem
            raise DeliveryError(problem.message) from problem
        except NetworkError as problem:  # includes TimedOut
            raise DeliveryError(problem.message) from problem


async def _quietly(answer: Awaitable[Any]) -> bool:
    """Answering a button press is a courtesy (it stops the spinner); it must not fail the update.
    Whether Telegram took the answer."""
    try:
        await answer
    except TelegramError:
        log.debug("callback answer failed", exc_info=True)
        return False
    return True


def _gone(member: Any) -> bool:
    """A chat member's state that is outside the group: left, banned, or restricted while not in it."""
    return member.status in GONE or (member.status == ChatMemberStatus.RESTRICTED
                                     and not getattr(member, "is_member", True))
