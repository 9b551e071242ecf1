"""The Slack adapter (slack-bolt's AsyncApp): /crm, mentions, direct messages, buttons, modals, the App Home.

- HTTP mode: POST /slack/events on the bot's shared server. The size,
  timestamp and signature are checked on the raw bytes before anything parses
  them (bot/slack/gate.py: forged or stale requests get 401, malformed ones 400,
  oversized ones 413); Bolt checks the signature again and answers
  url_verification. Socket Mode instead when SLACK_APP_TOKEN is set.
- Each listener acks and hands the work to a tracked task, so Slack hears back
  at once whatever the work costs (`drain` waits for that work; `stop` does
  first). A form submission is the exception: per-field errors can only ride on
  the ack, so the core runs before it (it answers in milliseconds).
- One token (SLACK_BOT_TOKEN), or installed through Slack's OAuth flow in any number of workspaces
  (bot/slack/install.py): each request is answered with its installation's token (`Origin.client`),
  each delivery with the token of its book's workspace (`client_for_book`); once the app is uninstalled
  there, deliveries to that book are skipped.
- A workspace is the Slack team (the first user is its admin). The team of
  whoever acts decides which: in a channel shared with another organisation
  (Slack Connect), a guest's command, button or form works on the guest's own
  team, never on the host's (`acting_team`). An event Slack delivers again
  carries the same event_id, and the core applies it once.
- A deactivated account (`user_change` with `deleted: true`) is suspended in its
  team's book at once (storage.offboarding); its admins are told.
- Text comes in Slack's markup (`&amp;`, `<@U1>`, `<mailto:…|…>`) and is read
  back to plain text; replies go out escaped (bot/slack/blocks.py).
- Slash commands can't carry files, so /crm import explains how to import:
  share the CSV in the direct message with the app, with `import` as its text.
"""
from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Awaitable, Callable, Iterable

import aiohttp
from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.app.async_app import AsyncApp
from slack_bolt.context.ack.async_ack import AsyncAck
from slack_bolt.context.async_context import AsyncBoltContext
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
)
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.webhook.async_client import AsyncWebhookClient

from bot.slack.blocks import (
    ACTION_PREFIX,
    FORM_CALLBACK,
    fallback,
    field_errors,
    has_content,
    home_view,
    message_blocks,
    message_of_parts,
    modal,
    spliced,
    submitted_values,
)
from bot import logs
from bot.slack import gate, install
from bot.web import WebServer
from handlers import metrics
from handlers.home import HOME_COMMAND
from handlers.i18n import normalize_locale, t
from handlers.messages import Attachment, Form, FormSubmission, Reply, Request
from handlers.registry import find_command
from handlers.transfer import MAX_BYTES
from reminders.delivery import DeliveryError, NotInstalled, RecipientBlocked, delivering_for, leaving, refused
from storage import blocking, offboarding

if TYPE_CHECKING:
    from bot.app import App

log = logging.getLogger(__name__)

PLATFORM = "slack"
EVENTS_PATH = "/slack/events"
#: How long users.info answers (name, language, time zone) are trusted.
PERSON_TTL = 3600.0
#: The manifest's global shortcuts → the command each one runs.
SHORTCUTS = {"crm_add": "/add", "crm_log": "/log"}
#: The bot can't post into that conversation (not a member, a DM between people …): answer elsewhere.
CANNOT_POST = frozenset({"channel_not_found", "not_in_channel", "is_archived", "restricted_action",
                         "cant_update_message", "message_not_found", "edit_window_closed", "user_not_in_channel"})
#: This person can't be sent a direct message at all: retrying won't help.
UNREACHABLE = frozenset({"user_not_found", "users_not_found", "cannot_dm_bot",
                         "not_allowed_token_type", "user_disabled", "channel_not_found", "is_archived",
                         "messages_tab_disabled"})
#: The token itself no longer works (the app was uninstalled before its event reached us, or the
#: workspace was deleted or disabled: Slack's `account_inactive` is "token is for a deleted user or
#: workspace", about the bot, not the person it writes to).
REVOKED = frozenset({"token_revoked", "account_inactive", "team_disabled"})
#: How long `stop` waits for work already acked.
STOP_GRACE = 20.0
#: A form submission waits this long for the core before acking anyway (Slack allows 3 seconds):
#: the outcome, errors included, then comes as a message.
FORM_BUDGET = 2.0
DOWNLOAD_CHUNK = 64 * 1024


def web_client(token: str | None, base_url: str | None, *, rate_limit_retries: int = 2) -> AsyncWebClient:
    """The Web API client: waits out `ratelimited` (Retry-After) and retries dropped connections."""
    return AsyncWebClient(
        token=token,
        base_url=(base_url.rstrip("/") + "/") if base_url else AsyncWebClient.BASE_URL,
        retry_handlers=[AsyncConnectionErrorRetryHandler(max_retry_count=2),
                        AsyncRateLimitErrorRetryHandler(max_retry_count=rate_limit_retries)],
    )


def with_token(client: AsyncWebClient, token: str) -> AsyncWebClient:
    """The same client (connection pool, base URL, retry handlers) with another installation's token."""
    return AsyncWebClient(token=token, base_url=client.base_url, timeout=client.timeout, session=client.session,
                          retry_handlers=list(client.retry_handlers))


#: Web API methods that post what a delivery sends: the requests it marks as on the wire.
POSTING_METHODS = frozenset({"chat.postMessage", "files.completeUploadExternal"})


def leaving_trace() -> aiohttp.TraceConfig:
    """Tells a delivery under way that its message is leaving (reminders.delivery.leaving): once the
    request that posts it has its connection, right before it is written. A 429 takes that back
    (reminders.delivery.refused) while the client waits out Retry-After; its retry leaves anew."""
    async def on_request_start(session: aiohttp.ClientSession, context: Any,
                               params: aiohttp.TraceRequestStartParams) -> None:
        context.posting = params.url.path.rsplit("/", 1)[-1] in POSTING_METHODS

    async def on_connection(session: aiohttp.ClientSession, context: Any, params: Any) -> None:
        if getattr(context, "posting", False):
            await leaving()

    async def on_request_end(session: aiohttp.ClientSession, context: Any,
                             params: aiohttp.TraceRequestEndParams) -> None:
        if params.response.status != 429:
            return
        metrics.rate_limited("slack", header_seconds(params.response.headers.get("Retry-After")))
        if getattr(context, "posting", False):
            await refused()

    trace = aiohttp.TraceConfig()
    trace.on_request_start.append(on_request_start)
    trace.on_connection_create_end.append(on_connection)
    trace.on_connection_reuseconn.append(on_connection)
    trace.on_request_end.append(on_request_end)
    return trace


def error_code(error: SlackApiError) -> str:
    """Slack's error code; "" when something in between answered with a page of its own instead of JSON."""
    data = error.response.data if error.response is not None else None
    return str(data.get("error", "")) if isinstance(data, dict) else ""


def retry_after(error: SlackApiError) -> float | None:
    headers = error.response.headers if error.response is not None else {}
    value = next((v for k, v in headers.items() if k.lower() == "retry-after"), None)
    return header_seconds(value[0] if isinstance(value, list) else value)


def header_seconds(value: str | None) -> float | None:
    """A Retry-After header's seconds; None when missing or not a number."""
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


async def dm_channel(client: AsyncWebClient, user: str) -> str:
    """The id of the direct message conversation between the app and `user` (files need one)."""
    if user[:1] == "D":
        return user
    opened = await client.conversations_open(users=user)
    return opened["channel"]["id"]


# --- Slack's markup in, plain text for the core ---------------------------------------------

_MARKUP = re.compile(r"<([^<>|]+)(?:\|([^<>]*))?>")
_USER = re.compile(r"<@([A-Z0-9]+)(?:\|[^<>]*)?>")
_BROADCASTS = {"here": "@here", "channel": "@channel", "everyone": "@everyone"}


def readable(text: str, names: dict[str, str] | None = None) -> str:
    """Message text as the person typed it: mentions as @name, links and e-mails as written."""
    names = names or {}

    def plain(match: re.Match[str]) -> str:
        target, label = match.group(1), match.group(2)
        if target.startswith("@"):
            return "@" + (label or names.get(target[1:]) or target[1:])
        if target.startswith("#"):
            return "#" + (label or target[1:])
        if target.startswith("!"):
            word = target[1:].split("^")[0]
            return label or _BROADCASTS.get(word, "@" + word)
        scheme, _, address = target.partition(":")
        return label or (address if scheme in ("mailto", "tel") else target)

    text = _MARKUP.sub(plain, text)
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


# --- who is asking ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Person:
    name: str = ""
    locale: str | None = None
    timezone: str | None = None


class People:
    """users.info per user (display name, `locale` like zh-CN, `tz`), cached for PERSON_TTL; asked with
    the token of the workspace the request came from."""

    def __init__(self, ttl: float = PERSON_TTL) -> None:
        self.ttl = ttl
        self._known: dict[str, tuple[float, Person]] = {}

    async def get(self, client: AsyncWebClient, user_id: str) -> Person:
        known = self._known.get(user_id)
        if known is not None and known[0] > time.monotonic():
            return known[1]
        try:
            answer = await client.users_info(user=user_id, include_locale=True)
        except (SlackClientError, aiohttp.ClientError, asyncio.TimeoutError) as problem:
            log.warning("users.info for %s failed: %s", user_id, problem)
            return Person()
        user = answer.get("user") or {}
        profile = user.get("profile") or {}
        name = profile.get("display_name") or profile.get("real_name") or user.get("real_name") or user.get("name")
        person = Person(name=name or "", locale=user.get("locale"), timezone=user.get("tz"))
        self._known[user_id] = (time.monotonic() + self.ttl, person)
        return person


class Teams:
    """team.info names per workspace, for naming a new customer book when the request carries none
    (events and the Home tab do; slash commands and interactions carry the team's domain)."""

    def __init__(self) -> None:
        self._names: dict[str, str] = {}

    async def name(self, client: AsyncWebClient, team_id: str) -> str:
        if team_id not in self._names:
            try:
                answer = await client.team_info(team=team_id)
                self._names[team_id] = str((answer.get("team") or {}).get("name") or "")
            except (SlackClientError, aiohttp.ClientError, asyncio.TimeoutError) as problem:
                log.warning("team.info for %s failed: %s", team_id, problem)
                self._names[team_id] = ""
        return self._names[team_id]


@dataclass(frozen=True)
class Origin:
    """Where a request came from, so its replies go back there."""

    team: str
    user: str
    #: The Web API client with the bot token of the installation the request came through.
    client: AsyncWebClient = field(compare=False, repr=False)
    #: The conversation; None for a shortcut or the Home tab (replies go to the user's DM with the app).
    channel: str | None = None
    dm: bool = False
    team_name: str = ""
    user_name: str = ""
    thread_ts: str | None = None
    response_url: str | None = None
    trigger_id: str | None = None
    #: The message whose button was pressed, and whether only the presser sees it.
    message_ts: str | None = None
    ephemeral: bool = False
    #: That message's blocks as Slack sent them back, and the block of the button pressed.
    message_blocks: list[dict[str, Any]] | None = None
    pressed_block: str | None = None
    home: bool = False

    @property
    def chat_id(self) -> str:
        """The chat a guided flow belongs to (the Home tab is a chat of its own)."""
        return f"home:{self.user}" if self.home else self.channel or self.user

    def metadata(self) -> dict[str, Any]:
        """What a modal carries in private_metadata to answer in the same place once submitted."""
        where = {"channel": self.channel, "dm": self.dm, "thread": self.thread_ts, "home": self.home}
        return {key: value for key, value in where.items() if value}


def app_users(context: AsyncBoltContext, body: dict[str, Any]) -> set[str]:
    """The app's own user ids for this request: auth.test's, and the installation's in `authorizations`
    (another workspace of an org-wide install has another bot user)."""
    found = {a.get("user_id") for a in body.get("authorizations") or [] if a.get("is_bot")}
    return {user for user in found | {context.bot_user_id} if user}


def team_of(context: AsyncBoltContext, body: dict[str, Any]) -> str:
    return (context.team_id or context.enterprise_id or body.get("team_id")
            or (body.get("team") or {}).get("id") or "")


#: Payloads that carry the acting user with their own team (`user.team_id`).
INTERACTIONS = frozenset({"block_actions", "view_submission", "shortcut"})


def acting_team(context: AsyncBoltContext, body: dict[str, Any]) -> str | None:
    """The workspace of whoever acts (None: Slack doesn't say which, and nothing is done).

    In a channel shared with another organisation, events and interactions carry the installing
    workspace (a modal opened there names it in `view.app_installed_team_id`); a guest from the other
    side acts in their own. Interactions name the presser's team in `user.team_id`, events in
    `event.user_team` (Bolt's `actor_team_id`); a slash command runs in its invoker's workspace."""
    if body.get("type") in INTERACTIONS:
        user = body.get("user")
        return (user.get("team_id") or None) if isinstance(user, dict) else None
    if body.get("is_ext_shared_channel"):
        return context.actor_team_id
    return team_of(context, body) or None


def acting_user(body: dict[str, Any]) -> dict[str, Any] | None:
    """The user of an interaction; None when the payload names nobody (nothing to do then)."""
    user = body.get("user")
    return user if isinstance(user, dict) and isinstance(user.get("id"), str) and user["id"] else None


# --- replies out -------------------------------------------------------------------------------------

class Outbox:
    """The replies to one request, sent where it came from; where the bot can't post, the response URL or the DM."""

    def __init__(self, origin: Origin, locale: str) -> None:
        self.client, self.origin, self.locale = origin.client, origin, locale
        self._progress: tuple[str, str] | None = None  # (channel, ts) of the progress message

    @property
    def channel(self) -> str:
        return self.origin.channel or self.origin.user

    def _render(self, reply: Reply) -> tuple[list[dict[str, Any]], str]:
        return message_blocks(reply, self.locale), fallback(reply)

    async def post(self, reply: Reply) -> None:
        blocks, text = self._render(reply)
        await self._post(blocks, text, private=reply.private)

    async def post_parts(self, replies: list[Reply]) -> None:
        """Replies that answer one request together, as one message."""
        if len(replies) == 1:
            await self.post(replies[0])
            return
        text = fallback(Reply(text="\n".join(reply.plain_text() for reply in replies)))
        await self._post(message_of_parts(replies, self.locale), text, private=replies[0].private)

    async def _post(self, blocks: list[dict[str, Any]], text: str, *, private: bool) -> None:
        try:
            if private and not self.origin.dm:
                await self.client.chat_postEphemeral(channel=self.channel, user=self.origin.user, blocks=blocks,
                                                     text=text, thread_ts=self.origin.thread_ts)
            else:
                await self.client.chat_postMessage(channel=self.channel, blocks=blocks, text=text,
                                                   thread_ts=self.origin.thread_ts)
        except SlackApiError as problem:
            if error_code(problem) not in CANNOT_POST:
                raise
            await self._elsewhere(blocks, text, private=private)

    async def edit(self, reply: Reply) -> None:
        """Replace the message whose button was pressed (an ephemeral one through its response URL); in a
        message of several parts, only the part whose button it was."""
        blocks, text = self._render(reply)
        if not self.origin.ephemeral and self.origin.channel and self.origin.message_ts:
            blocks = spliced(self.origin.message_blocks or [], self.origin.pressed_block, reply, self.locale) or blocks
            try:
                await self.client.chat_update(channel=self.origin.channel, ts=self.origin.message_ts,
                                              blocks=blocks, text=text)
                return
            except SlackApiError as problem:
                if error_code(problem) not in CANNOT_POST:
                    raise
        await self._elsewhere(blocks, text, private=reply.private, replace=True)

    async def _elsewhere(self, blocks: list[dict[str, Any]], text: str, *, private: bool,
                         replace: bool = False) -> None:
        if self.origin.response_url:
            answer = await AsyncWebhookClient(self.origin.response_url).send(
                text=text, blocks=blocks, response_type="ephemeral" if private else "in_channel",
                replace_original=replace)
            if answer.status_code == 200:
                return
            log.warning("response_url refused the reply: %s %s", answer.status_code, answer.body)
        await self.client.chat_postMessage(channel=self.origin.user, blocks=blocks, text=text)

    def file_conversation(self, *, private: bool) -> str | None:
        """Where a file goes: this conversation, or None for the DM (Slack has no files only one person sees)."""
        return self.origin.channel if self.origin.channel and (self.origin.dm or not private) else None

    async def upload(self, attachment: Attachment, *, private: bool) -> None:
        """files.upload v2 into the conversation; a private file, or one the bot can't post there, into the DM."""
        here = self.file_conversation(private=private)
        channel = here or await dm_channel(self.client, self.origin.user)
        try:
            await self._upload(channel, attachment, self.origin.thread_ts if here else None)
        except SlackApiError as problem:
            if here is None or error_code(problem) not in CANNOT_POST:
                raise
            await self._upload(await dm_channel(self.client, self.origin.user), attachment, None)

    async def _upload(self, channel: str, attachment: Attachment, thread_ts: str | None) -> None:
        await self.client.files_upload_v2(channel=channel, file=attachment.content, filename=attachment.name,
                                          title=attachment.name, thread_ts=thread_ts)

    async def progress(self, reply: Reply) -> None:
        """Progress of a long import: one message, edited as it goes; a failure here never stops the import."""
        blocks, text = self._render(reply)
        try:
            if reply.edit and self._progress is not None:
                channel, ts = self._progress
                await self.client.chat_update(channel=channel, ts=ts, blocks=blocks, text=text)
                return
            posted = await self.client.chat_postMessage(channel=self.channel, blocks=blocks, text=text,
                                                        thread_ts=self.origin.thread_ts)
            self._progress = (posted["channel"], posted["ts"])
        except SlackApiError as problem:
            log.warning("progress message failed: %s", error_code(problem))

    async def open_form(self, form: Form) -> None:
        if not self.origin.trigger_id:
            log.warning("form %s asked for without a trigger_id", form.name)
            return
        view = modal(form, self.origin.metadata(), t(self.locale, "common.cancel"))
        try:
            await self.client.views_open(trigger_id=self.origin.trigger_id, view=view)
        except SlackApiError as problem:
            log.warning("views.open for form %s failed: %s", form.name, error_code(problem))
            await self.post(Reply(text=t(self.locale, "slack.form_failed"), private=True))


# --- the platform ---------------------------------------------------------------------------------------

class SlackPlatform:
    """bot.app.Platform for Slack."""

    name = PLATFORM

    def __init__(self, app: App, *, rate_limit_retries: int = 2, form_budget: float = FORM_BUDGET) -> None:
        settings = app.settings
        if settings.slack_bot_token and settings.slack_oauth:
            raise ValueError("set SLACK_BOT_TOKEN (one workspace) or SLACK_CLIENT_ID and SLACK_CLIENT_SECRET "
                             "(installed through Slack's OAuth flow), not both")
        if not settings.has_slack:
            raise ValueError("SLACK_BOT_TOKEN is not set (or SLACK_CLIENT_ID and SLACK_CLIENT_SECRET)")
        self.socket_token = settings.slack_app_token or None
        if not self.socket_token and not settings.slack_signing_secret:
            raise ValueError("SLACK_SIGNING_SECRET is needed to check Slack's requests "
                             "(or set SLACK_APP_TOKEN for Socket Mode)")
        logs.protect(settings.slack_bot_token, settings.slack_signing_secret, settings.slack_app_token,
                     settings.slack_client_secret)
        self.app = app
        self.core = app.core
        self.default_locale = settings.default_locale
        self.form_budget = form_budget
        # With OAuth this client has no token: each request comes with its installation's (context.client).
        self.client = web_client(settings.slack_bot_token, settings.slack_api_url,
                                 rate_limit_retries=rate_limit_retries)
        self.people = People()
        self.teams = Teams()
        self.signing_secret = settings.slack_signing_secret or ""
        self.sender = SlackSender(self.client_for_book, self.note_blocked, self.default_locale)
        self.installations = install.Installations(settings, app.db) if settings.slack_oauth else None
        self.bolt = AsyncApp(
            client=self.client,
            signing_secret=settings.slack_signing_secret or "",
            request_verification_enabled=self.socket_token is None,
            # Listeners ack, start their work as a tracked task and return: the ack still goes out at once.
            process_before_response=True,
            oauth_settings=self.installations.oauth if self.installations else None,
            user_facing_authorize_error_message=install.not_installed_text(self.default_locale),
        )
        self._register()
        self._socket: AsyncSocketModeHandler | None = None
        self._work: set[asyncio.Task[None]] = set()

    # --- lifecycle ----------------------------------------------------------------------------------
    def attach(self, web_server: WebServer) -> None:
        if self.socket_token is None:
            web_server.add_route("POST", EVENTS_PATH, self._on_http)
        if self.installations is not None:
            web_server.add_route("GET", install.INSTALL_PATH, self._on_install)
            web_server.add_route("GET", install.REDIRECT_PATH, self._on_oauth_redirect)

    async def start(self) -> None:
        # one connection pool for every Web API call
        self.client.session = aiohttp.ClientSession(trace_configs=[leaving_trace()])
        if self.socket_token is not None:
            self._socket = AsyncSocketModeHandler(self.bolt, self.socket_token, web_client=self.client)
            await self._socket.connect_async()
        log.info("Slack ready (%s%s)", "Socket Mode" if self._socket else f"HTTP {EVENTS_PATH}",
                 f"; any workspace installs at {install.INSTALL_PATH}" if self.installations else "")

    async def stop(self) -> None:
        if self._socket is not None:
            await self._socket.close_async()
            self._socket = None
        try:
            await asyncio.wait_for(self.drain(), STOP_GRACE)
        except asyncio.TimeoutError:
            log.warning("stopping with %d Slack requests unfinished", len(self._work))
        if self.client.session is not None:
            await self.client.session.close()
            self.client.session = None

    async def drain(self) -> None:
        """Wait until the work behind every request acked so far is done."""
        while self._work:
            await asyncio.gather(*self._work, return_exceptions=True)
        if self.installations is not None:
            await self.installations.drain()

    def _spawn(self, work: Awaitable[None], what: str, origin: Origin) -> None:
        task = asyncio.create_task(self._guarded(work, what, origin))
        self._work.add(task)
        task.add_done_callback(self._work.discard)

    async def _guarded(self, work: Awaitable[None], what: str, origin: Origin) -> None:
        """Run the work behind a request; a failure is logged and the person gets a short apology."""
        try:
            await work
        except Exception:  # noqa: BLE001 - a failed request must not take the adapter down
            log.exception("Slack %s from %s in %s failed", what, origin.user, origin.channel or "the DM")
            try:
                locale = normalize_locale((await self.people.get(origin.client, origin.user)).locale,
                                          self.default_locale)
                await Outbox(origin, locale).post(Reply(text=t(locale, "error.internal"), private=True))
            except (SlackClientError, aiohttp.ClientError, asyncio.TimeoutError):
                log.warning("could not apologise to %s", origin.user)

    async def _on_http(self, request: web.Request) -> web.Response:
        try:
            body = await gate.checked_body(request, self.signing_secret)
        except gate.Refused as refused:
            return refused.response()
        answer = await self.bolt.async_dispatch(AsyncBoltRequest(body=body, query=request.query_string,
                                                                 headers=request.headers))  # type: ignore[arg-type]
        return await to_aiohttp_response(answer)

    async def _on_install(self, request: web.Request) -> web.Response:
        """The "Add to Slack" link: the state cookie, and off to Slack's authorize page."""
        assert self.bolt.oauth_flow is not None
        return await to_aiohttp_response(await self.bolt.oauth_flow.handle_installation(await to_bolt_request(request)))

    async def _on_oauth_redirect(self, request: web.Request) -> web.Response:
        """Slack sends the installer back here with a code: the installation is stored (bot.slack.install)."""
        assert self.bolt.oauth_flow is not None
        return await to_aiohttp_response(await self.bolt.oauth_flow.handle_callback(await to_bolt_request(request)))

    async def client_for_book(self, workspace_id: int | None) -> AsyncWebClient | None:
        """The client a delivery to this customer book goes out with: the one token, or with OAuth the
        token of the book's workspace (None: the app is not installed there, or not any more)."""
        if self.installations is None:
            return self.client
        if workspace_id is None:
            return None
        token = await self.installations.token_for_book(workspace_id)
        if token is None:
            return None
        logs.protect(token)
        return with_token(self.client, token)

    async def _on_uninstalled(self, context: AsyncBoltContext) -> None:
        """With one token there is no installation to delete: the token stops working, and a delivery
        Slack refuses as `token_revoked` is skipped, not retried (REVOKED)."""
        log.warning("Slack app uninstalled from %s (or its tokens revoked): SLACK_BOT_TOKEN no longer works",
                    context.team_id or context.enterprise_id)

    def _register(self) -> None:
        bolt = self.bolt
        if self.installations is not None:
            bolt.use(self.installations.note_org)
            bolt.event("app_uninstalled")(self.installations.uninstalled)
            bolt.event("tokens_revoked")(self.installations.tokens_revoked)
        else:
            bolt.event("app_uninstalled")(self._on_uninstalled)
            bolt.event("tokens_revoked")(self._on_uninstalled)
        bolt.command(re.compile(r"^/"))(self._on_command)
        bolt.event("app_mention")(self._on_mention)
        bolt.event("message")(self._on_message)
        bolt.event("app_home_opened")(self._on_home_opened)
        bolt.event("user_change")(self._on_user_change)
        bolt.action(re.compile(f"^{re.escape(ACTION_PREFIX)}"))(self._on_button)
        bolt.view_submission(FORM_CALLBACK)(self._on_submission)
        bolt.shortcut(re.compile(r"^crm_"))(self._on_shortcut)

    # --- listeners: ack, then work -------------------------------------------------------------------
    async def _on_command(self, ack: AsyncAck, body: dict[str, Any], context: AsyncBoltContext) -> None:
        await ack()
        channel, team = body.get("channel_id") or "", acting_team(context, body)
        if not team or not body.get("user_id"):
            return
        origin = Origin(
            team=team, client=context.client, user=body["user_id"], channel=channel or None, dm=channel.startswith("D"),
            team_name=body.get("team_domain", ""), user_name=body.get("user_name", ""),
            response_url=body.get("response_url"), trigger_id=body.get("trigger_id"),
        )
        self._spawn(self._text(origin, body.get("text") or "", command=True,
                               key=_key(body.get("trigger_id"))), "command", origin)

    async def _on_mention(self, body: dict[str, Any], event: dict[str, Any], context: AsyncBoltContext) -> None:
        channel = event.get("channel") or ""
        if channel.startswith("D") or not event.get("user"):
            return  # a mention in a direct message arrives as message.im too
        team = acting_team(context, body)
        if not team:
            log.info("mention by %s in shared channel %s from an unknown workspace: ignored", event["user"], channel)
            return
        origin = Origin(team=team, client=context.client, user=event["user"], channel=channel,
                        thread_ts=event.get("thread_ts"))
        self._spawn(self._text(origin, event.get("text") or "", command=True, files=event.get("files"),
                               bot_users=app_users(context, body), key=_key(body.get("event_id"))), "mention", origin)

    async def _on_message(self, body: dict[str, Any], event: dict[str, Any], context: AsyncBoltContext) -> None:
        """Direct messages only; not bots, not edits or deletions (file shares, yes: that's /import)."""
        if event.get("channel_type") != "im" or event.get("bot_id") or not event.get("user"):
            return
        team = acting_team(context, body)
        if event.get("subtype") not in (None, "file_share") or not team:
            return
        origin = Origin(team=team, client=context.client, user=event["user"], channel=event.get("channel"), dm=True,
                        thread_ts=event.get("thread_ts"))
        self._spawn(self._text(origin, event.get("text") or "", command=False, files=event.get("files"),
                               bot_users=app_users(context, body), key=_key(body.get("event_id"))), "message", origin)

    async def _on_user_change(self, body: dict[str, Any], event: dict[str, Any], context: AsyncBoltContext) -> None:
        """A deactivated account loses access to its team's book at once (reactivating it does not restore it)."""
        user = event.get("user")
        if not isinstance(user, dict) or user.get("deleted") is not True or not isinstance(user.get("id"), str):
            return
        team = user.get("team_id") or team_of(context, body)
        async with self.app.db.transaction() as session:
            gone = await offboarding.suspend_account(session, PLATFORM, user["id"], how=offboarding.DEACTIVATED,
                                                     now=self.app.services.clock(), space=str(team))
        if gone:
            log.info("Slack account %s deactivated: member %s suspended", user["id"], gone[0].id)

    async def _on_home_opened(self, body: dict[str, Any], event: dict[str, Any], context: AsyncBoltContext) -> None:
        team = acting_team(context, body)
        if event.get("tab") != "home" or not event.get("user") or not team:
            return
        origin = Origin(team=team, client=context.client, user=event["user"], dm=True, home=True)
        self._spawn(self.publish_home(origin), "home", origin)

    async def _on_button(self, ack: AsyncAck, body: dict[str, Any], context: AsyncBoltContext) -> None:
        await ack()
        container = body.get("container") or {}
        home = container.get("type") == "view"
        if home and (body.get("view") or {}).get("type") != "home":
            return  # our modals have no buttons
        channel = container.get("channel_id") or (body.get("channel") or {}).get("id")
        user, team = acting_user(body), acting_team(context, body)
        actions = body.get("actions")
        pressed = actions[0] if isinstance(actions, list) and actions and isinstance(actions[0], dict) else None
        if user is None or not team or pressed is None:
            return  # a press by nobody, of nothing, or from a workspace Slack doesn't name
        origin = Origin(
            team=team, client=context.client, user=user["id"], channel=None if home else channel,
            dm=home or (channel or "").startswith("D"), team_name=(body.get("team") or {}).get("domain", ""),
            user_name=user.get("username") or user.get("name") or "",
            thread_ts=(body.get("message") or {}).get("thread_ts"), response_url=body.get("response_url"),
            trigger_id=body.get("trigger_id"), message_ts=container.get("message_ts"),
            ephemeral=bool(container.get("is_ephemeral")), home=home,
            message_blocks=(body.get("message") or {}).get("blocks"), pressed_block=pressed.get("block_id"),
        )
        value = pressed.get("value")
        value = value if isinstance(value, str) else ""
        self._spawn(self._press(origin, value, _key(body.get("trigger_id"))), "button", origin)

    async def _on_submission(self, ack: AsyncAck, body: dict[str, Any], view: dict[str, Any],
                             context: AsyncBoltContext) -> None:
        """Validate before the ack (errors go back on it); deliver the outcome after."""
        try:
            where = json.loads(view.get("private_metadata") or "{}")
        except ValueError:
            where = {}
        user, team = acting_user(body), acting_team(context, body)
        if user is None or not team or not isinstance(where, dict):
            await ack()
            return
        origin = Origin(
            team=team, client=context.client, user=user["id"], channel=where.get("channel"), dm=bool(where.get("dm")),
            team_name=(body.get("team") or {}).get("domain", ""), user_name=user.get("username") or "",
            thread_ts=where.get("thread"), trigger_id=body.get("trigger_id"), home=bool(where.get("home")),
        )
        context_values = where.get("context") if isinstance(where.get("context"), dict) else {}
        submission = FormSubmission(str(where.get("form", "")), submitted_values(view),
                                    {str(k): str(v) for k, v in context_values.items()})
        started = time.perf_counter()
        work = asyncio.ensure_future(
            self._handle(origin, submission=submission, update_key=_key(body.get("trigger_id"))))
        await asyncio.wait({work}, timeout=self.form_budget)
        if not work.done():  # e.g. waiting for the database behind a long import: close the modal, answer later
            await ack()
            log.warning("form %s not answered within %.1f s; its outcome follows as a message", submission.name,
                        self.form_budget)
            self._spawn(self._late_form(work), "form", origin)
            return
        outbox, replies = work.result()  # a failure answers Slack with an error: the modal stays open
        errors = next((r.form_errors for r in replies if r.form_errors), None)
        follow_up = next((r.form for r in replies if r.form is not None), None)
        if errors:
            await ack(response_action="errors", errors=field_errors(errors, view))
        elif follow_up is not None:
            await ack(response_action="update",
                      view=modal(follow_up, origin.metadata(), t(outbox.locale, "common.cancel")))
        else:
            await ack()
        log.debug("form %s answered in %.0f ms", submission.name, (time.perf_counter() - started) * 1000)
        if not errors:
            self._spawn(self._after_form(outbox, [r for r in replies if r.form is None]), "form", origin)

    async def _on_shortcut(self, ack: AsyncAck, body: dict[str, Any], context: AsyncBoltContext) -> None:
        await ack()
        text = SHORTCUTS.get(body.get("callback_id", ""))
        user, team = acting_user(body), acting_team(context, body)
        if text is None or body.get("type") != "shortcut" or user is None or not team:
            return
        origin = Origin(team=team, client=context.client, user=user["id"], dm=True,
                        team_name=(body.get("team") or {}).get("domain", ""), user_name=user.get("username") or "",
                        trigger_id=body.get("trigger_id"))
        self._spawn(self._text(origin, text, command=True, key=_key(body.get("trigger_id"))), "shortcut", origin)

    # --- the work ---------------------------------------------------------------------------------------
    async def _handle(self, origin: Origin, **fields: Any) -> tuple[Outbox, list[Reply]]:
        person = await self.people.get(origin.client, origin.user)
        outbox = Outbox(origin, normalize_locale(person.locale, self.default_locale))
        request = Request(
            platform=PLATFORM, user_id=origin.user, chat_id=origin.chat_id,
            user_name=person.name or origin.user_name or origin.user, space=origin.team,
            space_name=origin.team_name or await self.teams.name(origin.client, origin.team) or origin.team,
            space_autocreate=True, is_private=origin.dm,
            language=person.locale, timezone=person.timezone, supports_forms=origin.trigger_id is not None,
            answers_privately=True, takes_answers=origin.dm, progress=outbox.progress, dm_chat_id=origin.user,
            **fields,
        )
        return outbox, await self.core.handle(request)

    async def _text(self, origin: Origin, raw: str, *, command: bool, key: str | None,
                    files: list[dict[str, Any]] | None = None, bot_users: Iterable[str] = ()) -> None:
        """A command from /crm, a mention or a DM; a shared CSV file comes along when the command is import."""
        text = await self._readable(origin.client, raw, bot_users)
        if files and not text:
            text = "import"
        words = text.split()
        entry = find_command(words[0].lstrip("/")) if words else None
        upload = None
        if entry is not None and entry.name == "import":
            upload = await self._download(origin.client, files[0]) if files else None
            if upload is None:
                person = await self.people.get(origin.client, origin.user)
                locale = normalize_locale(person.locale, self.default_locale)
                await Outbox(origin, locale).post(Reply(text=t(locale, "slack.import_how"), private=True))
                return
        if command:
            text = f"/{text.lstrip('/')}" if text else "/help"
        outbox, replies = await self._handle(origin, text=text, file=upload, update_key=key)
        await self._deliver(outbox, replies)

    async def _press(self, origin: Origin, value: str, key: str | None) -> None:
        outbox, replies = await self._handle(origin, action=value, update_key=key)
        status = await self._deliver(outbox, replies)
        if origin.home:
            await self.publish_home(origin, status)

    async def _late_form(self, work: asyncio.Future[tuple[Outbox, list[Reply]]]) -> None:
        """The outcome of a submission acked before the core answered; field errors become a message."""
        outbox, replies = await work
        shown = [Reply(text=r.plain_text(), private=True) if r.form_errors else r for r in replies if r.form is None]
        await self._after_form(outbox, shown)

    async def _after_form(self, outbox: Outbox, replies: list[Reply]) -> None:
        status = await self._deliver(outbox, replies)
        if outbox.origin.home:
            await self.publish_home(outbox.origin, status)

    async def publish_home(self, origin: Origin, status: list[str] | None = None) -> None:
        """The Home tab: "my day" (handlers/home.py), with what the last button did on top."""
        outbox, replies = await self._handle(origin, text=f"/{HOME_COMMAND}")
        view = home_view(replies, outbox.locale, " · ".join(status or []))
        await origin.client.views_publish(user_id=origin.user, view=view)

    async def _deliver(self, outbox: Outbox, replies: list[Reply]) -> list[str]:
        """Send each reply; consecutive ones that are only posted go out as one message. On the Home tab
        what would edit the pressed message, and a bare sentence (an error), become a status line on top;
        what goes to the DM instead is named there, so a press is never answered out of sight."""
        status: list[str] = []
        edited = False
        together: list[Reply] = []

        async def post_together() -> None:
            if together:
                await outbox.post_parts(together)
                if outbox.origin.home:
                    status.append(t(outbox.locale, "slack.home_posted",
                                    what=together[0].plain_text().partition("\n")[0]))
                together.clear()

        for reply in replies:
            if reply.form is not None:
                await post_together()
                await outbox.open_form(reply.form)
                continue
            if outbox.origin.home and (reply.edit or reply.notice):
                status.append(reply.notice or reply.plain_text().partition("\n")[0])
            elif outbox.origin.home and _sentence(reply):
                status.append(reply.text.replace("\n", " "))
            elif reply.edit and outbox.origin.message_ts and not edited:
                await outbox.edit(reply)
                edited = True
            elif has_content(reply):
                if together and together[0].private != reply.private:
                    await post_together()
                if (reply.file or reply.image) and outbox.file_conversation(private=reply.private) != outbox.origin.channel:
                    reply = replace(reply, text="\n".join(filter(None, [reply.text, t(outbox.locale,
                                                                                         "slack.file_in_dm")])))
                together.append(reply)
            elif reply.notice:
                await post_together()
                await outbox.post(Reply(text=reply.notice, private=True))
            attachments = [a for a in (reply.file, reply.image) if a is not None]
            if attachments:
                await post_together()
            for attachment in attachments:
                await outbox.upload(attachment, private=reply.private)
        await post_together()
        return status

    async def _readable(self, client: AsyncWebClient, text: str, bot_users: Iterable[str]) -> str:
        for bot_user in bot_users:
            text = re.sub(rf"<@{re.escape(bot_user)}(?:\|[^<>]*)?>", " ", text)
        names = {user: (await self.people.get(client, user)).name for user in set(_USER.findall(text))}
        return readable(text, names).strip()

    async def _download(self, client: AsyncWebClient, file: dict[str, Any]) -> Attachment | None:
        """A shared file's content, read with the bot token (up to just over the import limit). The event's
        file carries its links, unless Slack says to ask files.info (`file_access: check_file_info`)."""
        try:
            url = file.get("url_private_download") or file.get("url_private")
            if not url:
                file = (await client.files_info(file=file["id"]))["file"]
                url = file.get("url_private_download") or file.get("url_private")
            content = bytearray()
            async with aiohttp.ClientSession() as session, session.get(
                    url, headers={"Authorization": f"Bearer {client.token}"}) as answer:
                answer.raise_for_status()
                async for chunk in answer.content.iter_chunked(DOWNLOAD_CHUNK):
                    content += chunk
                    if len(content) > MAX_BYTES:
                        break
        except (SlackClientError, aiohttp.ClientError, KeyError, asyncio.TimeoutError) as problem:
            log.warning("could not download file %s: %s", file.get("id"), problem)
            return None
        return Attachment(file.get("name") or "import.csv", bytes(content), file.get("mimetype") or "text/csv")

    async def note_blocked(self, user: str) -> None:
        """Record that this Slack account can't be sent direct messages (deliveries skip it)."""
        async with self.app.db.transaction() as session:
            await blocking.record_blocked(session, PLATFORM, now=self.app.services.clock(),
                                          external_id=user, dm_chat_id=user)


def _sentence(reply: Reply) -> bool:
    """Text alone: no title, fields, list, buttons or file (how errors and confirmations answer)."""
    return bool(reply.text) and not (reply.title or reply.fields or reply.items or reply.buttons
                                     or reply.file or reply.image)


def _key(unique: str | None) -> str | None:
    """The redelivery key of a request: Slack's event_id, or an interaction's trigger_id."""
    return f"{PLATFORM}:{unique}"[:128] if unique else None


class SlackSender:
    """reminders.delivery.Sender: a reply into someone's direct messages with the app, with the token
    of the installation in the workspace of the book it is for."""

    platform = PLATFORM

    def __init__(self, client_for: Callable[[int | None], Awaitable[AsyncWebClient | None]],
                 note_blocked: Callable[[str], Awaitable[None]], locale: str) -> None:
        self._client_for, self._note_blocked, self.locale = client_for, note_blocked, locale

    async def send(self, chat_id: str, reply: Reply) -> None:
        client = await self._client_for(delivering_for())
        if client is None:
            raise NotInstalled("the app is not installed in that Slack workspace")
        try:
            if has_content(reply):
                await client.chat_postMessage(channel=chat_id, blocks=message_blocks(reply, self.locale),
                                                   text=fallback(reply))
            attachments = [a for a in (reply.file, reply.image) if a is not None]
            if attachments:
                channel = await dm_channel(client, chat_id)
                for attachment in attachments:
                    await client.files_upload_v2(channel=channel, file=attachment.content,
                                                      filename=attachment.name, title=attachment.name)
        except SlackApiError as problem:
            code = error_code(problem)
            if code in REVOKED:
                raise NotInstalled(code) from problem
            if code in UNREACHABLE:
                await self._note_blocked(chat_id)
                raise RecipientBlocked(code) from problem
            raise DeliveryError(code or str(problem), retry_after=retry_after(problem)) from problem
        except (SlackClientError, aiohttp.ClientError, asyncio.TimeoutError) as problem:
            raise DeliveryError(str(problem) or type(problem).__name__) from problem
