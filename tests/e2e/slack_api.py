"""A local stand-in of the Slack Web API, served over real HTTP on 127.0.0.1.

The bot under test talks to it exactly as to slack.com (`SLACK_API_URL`):
`/api/<method>` with query, form or JSON parameters and the token as a Bearer
header, answers shaped like Slack's (`{"ok": true, …}`, `{"ok": false, "error":
"…"}`, HTTP 429 with `Retry-After` for `ratelimited`). Beside the methods, it
serves what Slack serves elsewhere: the upload URLs of files.upload v2, file
downloads (`url_private_download`, bot token required) and response URLs.

It checks what Slack checks and a careless bot gets wrong: Block Kit limits
(50 blocks per message, 100 per view, header 150 characters, section 3000,
10 fields, 25 buttons per actions block, button text 75, unique action_ids),
modal limits (title 24 characters, private_metadata 3000), and trigger_ids
that are unknown or more than 3 seconds old (`expired_trigger_id`).

Tokens are per installation: SLACK_BOT_TOKEN's in T1, and one per code exchanged through
oauth.v2.access (the app's client id and secret as HTTP basic auth, as slack-sdk sends them);
auth.test answers for the token's workspace or Enterprise Grid org, and every call records the token
it came with. A token that doesn't work (unknown, or `revoke`d) is `invalid_auth`.

The test side: `grant` (the code Slack's authorize page gives for a workspace or an org),
`token_of`, `revoke`, `add_user` (with a locale and time zone for users.info),
`trigger` (a fresh trigger_id), `response_url`, `host_file`, `fail_next` to
inject errors, and every call recorded in `calls` with its parameters.

The other direction is here too: `SlackWire` sends what Slack sends the app in
HTTP mode — slash commands as form bodies, events as JSON, interactions as a
form-encoded `payload` — built from the recorded payloads in
`payloads/slack/`, signed with the signing secret (v0 HMAC-SHA256) and timed;
`SlackPerson` is someone in a workspace using /crm, mentions, the DM, buttons,
modals and the Home tab through it.
"""
from __future__ import annotations

import asyncio
import base64
import copy
import hashlib
import hmac
import itertools
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Awaitable, Callable
from urllib.parse import urlencode

import aiohttp
from aiohttp import web

BOT_TOKEN = "xoxb-1000000001-2000000002-StandInBotToken0123"
APP_TOKEN = "xapp-1-ACRM00001-3000000003-stand-in-app-token"
SIGNING_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
CLIENT_ID = "1000000001.4000000004"
CLIENT_SECRET = "c1e2n3t4s5e6c7r8e9t0standin0001"
BOT_USER = "UCRMBOT01"
BOT_ID = "BCRM00001"
APP_ID = "ACRM00001"
TRIGGER_SECONDS = 3.0
JSON_PARAMS = ("blocks", "view", "files", "attachments")
PAYLOADS = Path(__file__).with_name("payloads") / "slack"
KNOWN_BLOCKS = {"header", "section", "actions", "context", "divider", "input", "image", "rich_text"}


@dataclass
class Call:
    method: str
    params: dict[str, Any]
    at: float
    status: int = 200
    token: str = ""
    error: str | None = None
    problems: list[str] = field(default_factory=list)


@dataclass
class Grant:
    """An installation of the app: in a workspace, or (team None) across an Enterprise Grid org."""

    team: str | None
    enterprise: str | None = None
    installer: str = "U0INSTALL"
    bot_user: str = BOT_USER
    bot_id: str = BOT_ID
    scopes: str = ""


@dataclass
class StoredFile:
    id: str
    name: str
    content: bytes
    mimetype: str = "text/csv"
    channel: str | None = None
    title: str = ""


class ApiError(Exception):
    def __init__(self, error: str, *, status: int = 200, retry_after: int | None = None,
                 problems: list[str] | None = None, page: str | None = None) -> None:
        super().__init__(error)
        self.error, self.status, self.retry_after = error, status, retry_after
        self.problems = problems or []
        self.page = page  # a plain error page instead of Slack's JSON (a proxy or load balancer answering)


def _truthy(value: Any) -> bool:
    return value in (True, 1, "1", "true", "True")


def _text_len(text: Any) -> int:
    return len(text.get("text", "")) if isinstance(text, dict) else 0


def block_problems(blocks: list[dict[str, Any]], limit: int) -> list[str]:
    """What Slack would refuse in these blocks (its documented limits)."""
    problems: list[str] = []
    if len(blocks) > limit:
        problems.append(f"{len(blocks)} blocks, over {limit}")
    action_ids: list[str] = []
    for i, block in enumerate(blocks):
        kind = block.get("type")
        if kind not in KNOWN_BLOCKS:
            problems.append(f"block {i}: unknown type {kind!r}")
        if kind == "header" and (block["text"].get("type") != "plain_text" or not 0 < _text_len(block["text"]) <= 150):
            problems.append(f"block {i}: header text must be plain_text of 1-150 characters")
        if kind == "section":
            if "text" in block and not 0 < len(block["text"]["text"].strip()) <= 3000:
                problems.append(f"block {i}: section text must be 1-3000 characters")
            fields = block.get("fields", [])
            if len(fields) > 10 or any(not 0 < _text_len(f) <= 2000 for f in fields):
                problems.append(f"block {i}: at most 10 fields of 1-2000 characters")
            if "text" not in block and not fields:
                problems.append(f"block {i}: section without text or fields")
        if kind == "actions":
            elements = block.get("elements", [])
            if not 0 < len(elements) <= 25:
                problems.append(f"block {i}: actions need 1-25 elements, got {len(elements)}")
            for element in elements:
                if element.get("type") == "button" and not 0 < _text_len(element.get("text")) <= 75:
                    problems.append(f"block {i}: button text must be 1-75 characters")
                if len(element.get("value", "")) > 2000:
                    problems.append(f"block {i}: button value over 2000 characters")
                action_ids.append(element.get("action_id", ""))
        if kind == "context" and not 0 < len(block.get("elements", [])) <= 10:
            problems.append(f"block {i}: context needs 1-10 elements")
        if kind == "input":
            if not 0 < _text_len(block.get("label")) <= 2000:
                problems.append(f"block {i}: input label must be 1-2000 characters")
            action_ids.append(block.get("element", {}).get("action_id", "") + "@" + block.get("block_id", ""))
    duplicates = {a for a in action_ids if action_ids.count(a) > 1}
    if duplicates:
        problems.append(f"duplicate action_ids {sorted(duplicates)}")
    block_ids = [b["block_id"] for b in blocks if "block_id" in b]
    if len(block_ids) != len(set(block_ids)):
        problems.append("duplicate block_ids")
    return problems


def view_problems(view: dict[str, Any]) -> list[str]:
    problems = block_problems(view.get("blocks", []), 100)
    if view.get("type") == "modal":
        for part in ("title", "submit", "close"):
            if part in view and not 0 < _text_len(view[part]) <= 24:
                problems.append(f"modal {part} must be 1-24 characters")
        if len(view.get("private_metadata", "")) > 3000:
            problems.append("private_metadata over 3000 characters")
    return problems


class SlackApiStandIn:
    def __init__(self) -> None:
        self.calls: list[Call] = []
        self.users: dict[str, dict[str, Any]] = {}
        self.messages: dict[tuple[str, str], dict[str, Any]] = {}  # (channel, ts) → as last posted/updated
        self.ephemeral: dict[str, dict[str, Any]] = {}  # message_ts → ephemeral message
        self.views: dict[str, dict[str, Any]] = {}  # view id → opened modal or published home
        self.homes: dict[str, str] = {}  # user → view id of their Home tab
        self.files: dict[str, StoredFile] = {}
        self.responses: dict[str, dict[str, Any]] = {}  # response URL token → what it answers
        self.triggers: dict[str, float] = {}
        self.unreachable: dict[str, str] = {}  # channel or user → the error posting there gives
        self.teams: dict[str, str] = {}  # team id → its name, for team.info
        #: Bot tokens that work → the installation they belong to (the first: SLACK_BOT_TOKEN's, in T1).
        self.tokens: dict[str, Grant] = {BOT_TOKEN: Grant("T1", bot_user=BOT_USER, bot_id=BOT_ID)}
        self.codes: dict[str, Grant] = {}  # OAuth codes not yet exchanged (oauth.v2.access)
        self.socket_url = ""
        self._failures: dict[str, list[ApiError]] = {}
        self._numbers = itertools.count(1)
        self._runner: web.AppRunner | None = None
        self.root = ""

    # --- lifecycle -----------------------------------------------------------------------------
    async def start(self) -> SlackApiStandIn:
        app = web.Application(client_max_size=32 * 1024 * 1024)
        app.router.add_route("*", "/api/{method}", self._api)
        app.router.add_post("/upload/{file_id}", self._upload)
        app.router.add_get("/files-pri/{team_file}/download/{name}", self._download)
        app.router.add_get("/files-pri/{team_file}/{name}", self._download)
        app.router.add_post("/response/{token}", self._response)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.root = f"http://127.0.0.1:{port}"
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def base_url(self) -> str:
        return f"{self.root}/api/"

    # --- the test side ----------------------------------------------------------------------------
    def add_user(self, user_id: str, name: str, *, team: str = "T1", locale: str = "en-US",
                 tz: str = "Asia/Shanghai") -> None:
        self.users[user_id] = {
            "id": user_id, "team_id": team, "name": name.lower().replace(" ", "."), "deleted": False,
            "real_name": name, "tz": tz, "tz_label": tz, "tz_offset": 28800, "locale": locale,
            "profile": {"real_name": name, "display_name": name, "team": team},
            "is_admin": False, "is_bot": False, "is_app_user": False, "updated": 1763400000,
        }

    def grant(self, team: str, scopes: str, *, enterprise: str | None = None, org_wide: bool = False,
              installer: str = "U0INSTALL") -> str:
        """Someone approves the app on Slack's authorize page for `team` (or, `org_wide`, for the whole
        Enterprise Grid org `enterprise`) with the `scopes` the page asked for: the code Slack puts on
        the redirect URL."""
        code = f"code-{next(self._numbers):06d}"
        number = next(self._numbers)
        self.codes[code] = Grant(None if org_wide else team, enterprise=enterprise, installer=installer,
                                 bot_user=f"UBOT{number:05d}", bot_id=f"BBOT{number:05d}", scopes=scopes)
        return code

    def token_of(self, team: str) -> str:
        """The bot token of the live installation in `team`, or the org-wide one of the org `team` names."""
        found = [token for token, grant in self.tokens.items()
                 if grant.team == team or (grant.team is None and grant.enterprise == team)]
        assert len(found) == 1, f"{len(found)} installations in {team}"
        return found[0]

    def revoke(self, *, team: str | None = None, enterprise: str | None = None) -> None:
        """The app is uninstalled there: its tokens stop working (invalid_auth, as Slack answers)."""
        for token, grant in list(self.tokens.items()):
            if (team is not None and grant.team == team) or (enterprise is not None and grant.enterprise == enterprise):
                del self.tokens[token]

    def trigger(self) -> str:
        trigger = f"{next(self._numbers)}.4812837420.{int(time.time() * 1000):x}"
        self.triggers[trigger] = time.monotonic()
        return trigger

    def response_url(self, channel: str, user: str, ephemeral_ts: str | None = None) -> str:
        token = f"R{next(self._numbers):06d}"
        self.responses[token] = {"channel": channel, "user": user, "ephemeral_ts": ephemeral_ts}
        return f"{self.root}/response/{token}"

    def host_file(self, name: str, content: bytes, *, team: str = "T1", mimetype: str = "text/csv") -> dict[str, Any]:
        """A file someone shared: the `files` entry of a file_share message event."""
        file_id = f"F{next(self._numbers):09d}"
        self.files[file_id] = StoredFile(file_id, name, content, mimetype)
        return self._file_object(self.files[file_id], team)

    def _file_object(self, stored: StoredFile, team: str = "T1") -> dict[str, Any]:
        return {
            "id": stored.id, "name": stored.name, "title": stored.title or stored.name, "mimetype": stored.mimetype,
            "filetype": stored.name.rsplit(".", 1)[-1], "size": len(stored.content), "user": "",
            "url_private": f"{self.root}/files-pri/{team}-{stored.id}/{stored.name}",
            "url_private_download": f"{self.root}/files-pri/{team}-{stored.id}/download/{stored.name}",
            "is_public": False, "mode": "hosted",
        }

    def fail_next(self, method: str, error: str, *, times: int = 1, retry_after: int | None = None,
                  status: int | None = None) -> None:
        """The next `times` calls of `method` fail (`ratelimited`: HTTP 429 with Retry-After). With a
        `status` of 500 or more, the answer is a plain text page, as a proxy in front of Slack gives."""
        status = status or (429 if error == "ratelimited" else 200)
        page = f"upstream connect error: {status} {error}" if status >= 500 else None
        self._failures.setdefault(method, []).extend(
            ApiError(error, status=status, retry_after=retry_after, page=page) for _ in range(times))

    def calls_to(self, *methods: str) -> list[Call]:
        return [c for c in self.calls if c.method in methods]

    def ok_calls(self, *methods: str) -> list[Call]:
        return [c for c in self.calls_to(*methods) if c.error is None]

    async def wait_for(self, method: str, count: int = 1, timeout: float = 5.0) -> list[Call]:
        """Until at least `count` successful calls of `method` were made (for work that outlives a request)."""
        deadline = time.monotonic() + timeout
        while len(self.ok_calls(method)) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"{count} × {method} expected; calls: {[c.method for c in self.calls]}")
            await asyncio.sleep(0.01)
        return self.ok_calls(method)

    def home_of(self, user: str) -> dict[str, Any]:
        return self.views[self.homes[user]]

    # --- HTTP ------------------------------------------------------------------------------------------
    async def _api(self, request: web.Request) -> web.StreamResponse:
        method = request.match_info["method"]
        params: dict[str, Any] = dict(request.query)
        if request.method == "POST":
            if request.content_type == "application/json":
                params.update(await request.json())
            else:
                params.update(dict(await request.post()))
        token = request.headers.get("Authorization", "").removeprefix("Bearer ").strip() or params.pop("token", "")
        for key in JSON_PARAMS:
            if isinstance(params.get(key), str):
                params[key] = json.loads(params[key])
        call = Call(method, params, time.monotonic(), token=token)
        self.calls.append(call)
        try:
            if method == "oauth.v2.access":
                return web.json_response({"ok": True, **self._oauth_v2_access(params, request.headers)})
            if token not in ({APP_TOKEN} if method == "apps.connections.open" else self.tokens):
                raise ApiError("invalid_auth")
            queued = self._failures.get(method)
            if queued:
                raise queued.pop(0)
            handler = getattr(self, "_" + method.replace(".", "_"), None)
            if handler is None:
                raise ApiError("unknown_method")
            body = {"ok": True, **(self._auth_test(self.tokens[token]) if method == "auth.test" else handler(params))}
        except ApiError as problem:
            call.status, call.error, call.problems = problem.status, problem.error, problem.problems
            body = {"ok": False, "error": problem.error}
            if problem.problems:
                body["errors"] = problem.problems
            headers = {"Retry-After": str(problem.retry_after)} if problem.retry_after is not None else {}
            if problem.page is not None:
                return web.Response(text=problem.page, content_type="text/plain", status=problem.status,
                                    headers=headers)
            return web.json_response(body, status=problem.status, headers=headers)
        return web.json_response(body)

    async def _upload(self, request: web.Request) -> web.Response:
        stored = self.files.get(request.match_info["file_id"])
        if stored is None:
            return web.Response(status=404, text="not found")
        stored.content = await request.read()
        self.calls.append(Call("upload", {"file_id": stored.id, "bytes": len(stored.content)}, time.monotonic()))
        return web.Response(text=f"OK - {len(stored.content)}")

    async def _download(self, request: web.Request) -> web.Response:
        file_id = request.match_info["team_file"].split("-", 1)[-1]
        self.calls.append(Call("download", {"file_id": file_id}, time.monotonic()))
        if request.headers.get("Authorization") != f"Bearer {BOT_TOKEN}":
            return web.Response(status=302, headers={"Location": f"{self.root}/login"})
        stored = self.files.get(file_id)
        if stored is None:
            return web.Response(status=404)
        return web.Response(body=stored.content, content_type=stored.mimetype)

    async def _response(self, request: web.Request) -> web.Response:
        target = self.responses.get(request.match_info["token"])
        body = await request.json()
        call = Call("response_url", {**body, "target": target}, time.monotonic())
        self.calls.append(call)
        if target is None:
            call.error = "no_response_url"
            return web.Response(status=404, text="no_response_url")
        problems = block_problems(body.get("blocks", []), 50)
        if problems:
            call.error, call.problems = "invalid_blocks", problems
            return web.Response(status=400, text="invalid_blocks")
        if body.get("replace_original") and target["ephemeral_ts"] in self.ephemeral:
            self.ephemeral[target["ephemeral_ts"]].update(blocks=body.get("blocks", []), text=body.get("text", ""))
        return web.Response(text="ok")

    # --- methods -------------------------------------------------------------------------------------------
    def _ts(self) -> str:
        return f"{1763449000 + next(self._numbers)}.{next(self._numbers):06d}"

    @staticmethod
    def dm_of(user: str) -> str:
        """The id of the direct message conversation between the app and `user`."""
        return "D" + user

    def _check_blocks(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        blocks = params.get("blocks") or []
        problems = block_problems(blocks, 50)
        if problems:
            raise ApiError("invalid_blocks", problems=problems)
        for i, block in enumerate(blocks):
            block.setdefault("block_id", f"b{i}x{next(self._numbers)}")  # Slack names blocks that have no id
        return blocks

    def _channel(self, params: dict[str, Any]) -> str:
        channel = params.get("channel") or params.get("channel_id") or ""
        if not channel:
            raise ApiError("channel_not_found")
        if channel in self.unreachable:
            raise ApiError(self.unreachable[channel])
        if channel.startswith("U"):
            if channel not in self.users:
                raise ApiError("channel_not_found")
            return self.dm_of(channel)
        return channel

    def _auth_test(self, grant: Grant) -> dict[str, Any]:
        answer = {"url": "https://acme-sales.slack.com/", "team": self.teams.get(grant.team or "", "Acme Sales"),
                  "user": "crm", "team_id": grant.team, "user_id": grant.bot_user, "bot_id": grant.bot_id,
                  "is_enterprise_install": grant.team is None}
        if grant.enterprise:
            answer["enterprise_id"] = grant.enterprise
        return answer

    def _oauth_v2_access(self, params: dict[str, Any], headers: Any) -> dict[str, Any]:
        """The code from the redirect, exchanged with the app's client id and secret (HTTP basic auth)."""
        basic = base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
        if headers.get("Authorization") != f"Basic {basic}":
            raise ApiError("invalid_client_id")
        grant = self.codes.pop(params.get("code", ""), None)
        if grant is None:
            raise ApiError("invalid_code")
        token = f"xoxb-{grant.team or grant.enterprise}-{next(self._numbers):06d}-StandIn"
        self.tokens[token] = grant
        return {"app_id": APP_ID, "access_token": token, "token_type": "bot", "scope": grant.scopes,
                "bot_user_id": grant.bot_user, "authed_user": {"id": grant.installer},
                "team": {"id": grant.team, "name": self.teams.get(grant.team or "", "")} if grant.team else None,
                "enterprise": {"id": grant.enterprise, "name": "Org"} if grant.enterprise else None,
                "is_enterprise_install": grant.team is None}

    def _chat_postMessage(self, params: dict[str, Any]) -> dict[str, Any]:
        channel = self._channel(params)
        blocks = self._check_blocks(params)
        ts = self._ts()
        message = {"type": "message", "user": BOT_USER, "bot_id": BOT_ID, "app_id": APP_ID, "ts": ts,
                   "text": params.get("text", ""), "blocks": blocks, "team": "T1",
                   "thread_ts": params.get("thread_ts"), "channel": channel}
        self.messages[(channel, ts)] = message
        return {"channel": channel, "ts": ts, "message": message}

    def _chat_postEphemeral(self, params: dict[str, Any]) -> dict[str, Any]:
        channel = self._channel(params)
        if params.get("user") not in self.users:
            raise ApiError("user_not_in_channel")
        blocks = self._check_blocks(params)
        ts = self._ts()
        self.ephemeral[ts] = {"channel": channel, "user": params["user"], "ts": ts, "text": params.get("text", ""),
                              "blocks": blocks}
        return {"message_ts": ts}

    def _chat_update(self, params: dict[str, Any]) -> dict[str, Any]:
        key = (params.get("channel", ""), params.get("ts", ""))
        if key not in self.messages:
            raise ApiError("message_not_found")
        blocks = self._check_blocks(params)
        self.messages[key].update(text=params.get("text", ""), blocks=blocks)
        return {"channel": key[0], "ts": key[1], "text": params.get("text", "")}

    def _check_trigger(self, params: dict[str, Any]) -> None:
        issued = self.triggers.get(params.get("trigger_id", ""))
        if issued is None:
            raise ApiError("invalid_trigger_id")
        if time.monotonic() - issued > TRIGGER_SECONDS:
            raise ApiError("expired_trigger_id")

    def _store_view(self, view: dict[str, Any], view_id: str | None = None) -> dict[str, Any]:
        problems = view_problems(view)
        if problems:
            raise ApiError("invalid_arguments", problems=problems)
        view_id = view_id or f"V{next(self._numbers):09d}"
        stored = {**view, "id": view_id, "team_id": "T1", "state": {"values": {}}, "hash": self._ts(),
                  "app_id": APP_ID, "bot_id": BOT_ID, "root_view_id": view_id, "previous_view_id": None}
        self.views[view_id] = stored
        return stored

    def _views_open(self, params: dict[str, Any]) -> dict[str, Any]:
        self._check_trigger(params)
        return {"view": self._store_view(params.get("view") or {})}

    def _views_update(self, params: dict[str, Any]) -> dict[str, Any]:
        if params.get("view_id") not in self.views:
            raise ApiError("not_found")
        return {"view": self._store_view(params.get("view") or {}, params["view_id"])}

    def _views_publish(self, params: dict[str, Any]) -> dict[str, Any]:
        user = params.get("user_id", "")
        if user not in self.users:
            raise ApiError("user_not_found")
        view = params.get("view") or {}
        if view.get("type") != "home":
            raise ApiError("invalid_arguments", problems=["views.publish takes a home view"])
        stored = self._store_view(view, self.homes.get(user))
        self.homes[user] = stored["id"]
        return {"view": stored}

    def _users_info(self, params: dict[str, Any]) -> dict[str, Any]:
        user = self.users.get(params.get("user", ""))
        if user is None:
            raise ApiError("user_not_found")
        shown = dict(user)
        if not _truthy(params.get("include_locale")):
            shown.pop("locale")
        return {"user": shown}

    def _team_info(self, params: dict[str, Any]) -> dict[str, Any]:
        team = params.get("team", "")
        if team not in self.teams:
            raise ApiError("team_not_found")
        return {"team": {"id": team, "name": self.teams[team], "domain": self.teams[team].lower().replace(" ", "-")}}

    def _conversations_open(self, params: dict[str, Any]) -> dict[str, Any]:
        user = params.get("users", "")
        if user in self.unreachable:
            raise ApiError(self.unreachable[user])
        if user not in self.users:
            raise ApiError("user_not_found")
        return {"channel": {"id": self.dm_of(user)}}

    def _files_info(self, params: dict[str, Any]) -> dict[str, Any]:
        stored = self.files.get(params.get("file", ""))
        if stored is None:
            raise ApiError("file_not_found")
        return {"file": self._file_object(stored)}

    def _files_getUploadURLExternal(self, params: dict[str, Any]) -> dict[str, Any]:
        if not params.get("filename") or not str(params.get("length", "")).isdigit():
            raise ApiError("invalid_arguments")
        file_id = f"F{next(self._numbers):09d}"
        self.files[file_id] = StoredFile(file_id, params["filename"], b"")
        return {"upload_url": f"{self.root}/upload/{file_id}", "file_id": file_id}

    def _files_completeUploadExternal(self, params: dict[str, Any]) -> dict[str, Any]:
        channel = self._channel({"channel": params.get("channel_id")}) if params.get("channel_id") else None
        done = []
        for entry in params.get("files") or []:
            stored = self.files.get(entry.get("id", ""))
            if stored is None or not stored.content:
                raise ApiError("file_not_found")
            stored.channel, stored.title = channel, entry.get("title") or stored.name
            done.append({"id": stored.id, "title": stored.title, "name": stored.name})
        return {"files": done}

    def _apps_connections_open(self, params: dict[str, Any]) -> dict[str, Any]:
        if not self.socket_url:
            raise ApiError("socket_mode_not_enabled")
        return {"url": self.socket_url}


# --- reading what the bot sent -------------------------------------------------------------------------------

def unescape(text: str) -> str:
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def visible_text(blocks: list[dict[str, Any]]) -> str:
    """What a person reads in these blocks, entities decoded."""
    lines: list[str] = []
    for block in blocks:
        texts = [block.get("text")] if block.get("text") else []
        texts += block.get("fields", [])
        texts += [e for e in block.get("elements", []) if e.get("type") in ("mrkdwn", "plain_text")]
        texts += [e["text"] for e in block.get("elements", []) if e.get("type") == "button"]
        if block.get("type") == "input":
            texts.append(block["label"])
        for text in texts:
            lines.append(unescape(text["text"]) if text.get("type") == "mrkdwn" else text["text"])
    return "\n".join(lines)


def buttons(blocks: list[dict[str, Any]]) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(actions block, button element) for every button."""
    return [(block, element) for block in blocks if block.get("type") == "actions"
            for element in block["elements"] if element.get("type") == "button"]


# --- Slack calling the app ------------------------------------------------------------------------------------

_IDS = itertools.count(1)


def next_id(prefix: str) -> str:
    """A fresh id in Slack's style (event ids, timestamps)."""
    return f"{prefix}{next(_IDS):09d}"


def recorded(name: str) -> dict[str, Any]:
    return json.loads((PAYLOADS / f"{name}.json").read_text())


def signature(body: bytes, timestamp: int, secret: str = SIGNING_SECRET) -> str:
    base = b"v0:" + str(timestamp).encode() + b":" + body
    return "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()


@dataclass
class Answer:
    what: str
    status: int
    text: str
    seconds: float

    def json(self) -> dict[str, Any]:
        return json.loads(self.text) if self.text else {}


class SlackWire:
    """Slack's side of HTTP mode: signed requests to the app's events URL, each one timed."""

    def __init__(self, url: str, session: aiohttp.ClientSession) -> None:
        self.url, self.session = url, session
        self.answers: list[Answer] = []

    async def post(self, body: bytes, content_type: str, *, what: str, timestamp: int | None = None,
                   secret: str = SIGNING_SECRET, headers: dict[str, str] | None = None) -> Answer:
        timestamp = int(time.time()) if timestamp is None else timestamp
        sent = {"Content-Type": content_type, "X-Slack-Request-Timestamp": str(timestamp),
                "X-Slack-Signature": signature(body, timestamp, secret),
                "User-Agent": "Slackbot 1.0 (+https://api.slack.com/robots)", **(headers or {})}
        started = time.perf_counter()
        async with self.session.post(self.url, data=body, headers=sent) as response:
            text = await response.text()
        answer = Answer(what, response.status, text, time.perf_counter() - started)
        self.answers.append(answer)
        return answer

    async def command(self, form: dict[str, str], **options: Any) -> Answer:
        return await self.post(urlencode(form).encode(), "application/x-www-form-urlencoded",
                               what=f"command {form.get('text', '')[:40]}", **options)

    async def event(self, body: dict[str, Any], *, retry: int | None = None, **options: Any) -> Answer:
        headers = {"X-Slack-Retry-Num": str(retry), "X-Slack-Retry-Reason": "http_timeout"} if retry else {}
        return await self.post(json.dumps(body).encode(), "application/json", headers=headers,
                               what=f"event {body.get('event', {}).get('type', body.get('type'))}", **options)

    async def interaction(self, payload: dict[str, Any], **options: Any) -> Answer:
        return await self.post(urlencode({"payload": json.dumps(payload)}).encode(),
                               "application/x-www-form-urlencoded", what=f"interaction {payload['type']}", **options)


class SlackPerson:
    """Someone in a Slack workspace: /crm, mentions, the DM with the app, buttons, modals and the Home tab.

    Each action waits until the app has finished the work behind it (`settle`). Without a wire
    (Socket Mode) it only builds the payloads (`command_form`, `dm_event`, `event`).
    """

    def __init__(self, api: SlackApiStandIn, wire: SlackWire | None, settle: Callable[[], Awaitable[None]], *,
                 user: str, name: str, team: str = "T1", locale: str = "en-US", tz: str = "Asia/Shanghai",
                 channel: str = "C0SALES01") -> None:
        self.api, self.wire, self.settle = api, wire, settle
        self.user, self.name, self.team, self.channel = user, name, team, channel
        self.domain = f"team-{team.lower()}"
        self.dm = api.dm_of(user)
        api.add_user(user, name, team=team, locale=locale, tz=tz)

    def _who(self) -> dict[str, Any]:
        return {"id": self.user, "username": self.name.lower(), "name": self.name.lower(), "team_id": self.team}

    @property
    def _wire(self) -> SlackWire:
        assert self.wire is not None, "no HTTP wire: Socket Mode sends the payloads itself"
        return self.wire

    async def _done(self, answer: Answer) -> Answer:
        assert answer.status == 200, (answer.status, answer.text)
        await self.settle()
        return answer

    # --- typing --------------------------------------------------------------------------------------
    def command_form(self, text: str, channel: str | None = None) -> dict[str, str]:
        channel = channel or self.channel
        form = recorded("slash_command")
        form.update(team_id=self.team, team_domain=self.domain, channel_id=channel, user_id=self.user,
                    channel_name="directmessage" if channel.startswith("D") else "sales",
                    user_name=self.name.lower(), text=text, trigger_id=self.api.trigger(),
                    response_url=self.api.response_url(channel, self.user))
        return form

    async def command(self, text: str, *, channel: str | None = None) -> Answer:
        """`/crm <text>` typed in `channel` (default: the team channel; `self.dm` for the DM with the app)."""
        return await self._done(await self._wire.command(self.command_form(text, channel)))

    def event(self, name: str, **fields: Any) -> dict[str, Any]:
        body = recorded(name)
        body["team_id"] = body["context_team_id"] = self.team
        body["authorizations"][0]["team_id"] = self.team
        body["event_id"] = next_id("Ev")
        ts = f"{int(time.time())}.{next(_IDS):06d}"
        body["event"].update(user=self.user, team=self.team, ts=ts, event_ts=ts, **fields)
        return body

    async def mention(self, text: str, *, channel: str | None = None) -> Answer:
        body = self.event("app_mention", text=f"<@{BOT_USER}> {text}", channel=channel or self.channel)
        return await self._done(await self._wire.event(body))

    def dm_event(self, text: str) -> dict[str, Any]:
        return self.event("message_im", text=text, channel=self.dm,
                          blocks=[{"type": "rich_text", "block_id": "x", "elements": [
                              {"type": "rich_text_section", "elements": [{"type": "text", "text": text}]}]}])

    async def say(self, text: str) -> Answer:
        """A direct message to the app (Slack's encoding: &, <, > as entities)."""
        return await self._done(await self._wire.event(self.dm_event(text)))

    async def share(self, name: str, content: bytes, text: str = "import") -> Answer:
        """Share a file in the DM with the app, with `text` as its message."""
        file = self.api.host_file(name, content, team=self.team)
        file["user"] = self.user
        body = self.event("message_file_share", text=text, channel=self.dm, files=[file])
        return await self._done(await self._wire.event(body))

    async def open_home(self) -> Answer:
        body = self.event("app_home_opened", channel=self.dm, tab="home")
        return await self._done(await self._wire.event(body))

    async def shortcut(self, callback_id: str) -> Answer:
        body = recorded("shortcut")
        body.update(team={"id": self.team, "domain": self.domain}, callback_id=callback_id,
                    user={"id": self.user, "username": self.name.lower(), "team_id": self.team},
                    trigger_id=self.api.trigger())
        return await self._done(await self._wire.interaction(body))

    # --- what the app showed --------------------------------------------------------------------------
    def messages(self, channel: str | None = None) -> list[dict[str, Any]]:
        """Messages the app posted (as last updated) in `channel` (default: the team channel), oldest first."""
        channel = channel or self.channel
        return [m for (c, _), m in self.api.messages.items() if c == channel]

    def last(self, channel: str | None = None) -> dict[str, Any]:
        found = self.messages(channel)
        assert found, f"no message in {channel or self.channel}"
        return found[-1]

    def ephemerals(self) -> list[dict[str, Any]]:
        return [m for m in self.api.ephemeral.values() if m["user"] == self.user]

    def home(self) -> dict[str, Any]:
        return self.api.home_of(self.user)

    # --- clicking -----------------------------------------------------------------------------------------
    async def press(self, label: str, where: dict[str, Any], *, nth: int = 0) -> Answer:
        """Press the `nth` button whose text contains `label` in a message, an ephemeral message or the Home tab."""
        found = [(b, e) for b, e in buttons(where["blocks"]) if label in e["text"]["text"]]
        assert len(found) > nth, f"no button {label!r} among {[e['text']['text'] for _, e in buttons(where['blocks'])]}"
        block, element = found[nth]
        pressed = {"action_id": element["action_id"], "block_id": block.get("block_id", "b"), "text": element["text"],
                   "value": element["value"], "type": "button", "action_ts": f"{time.time():.6f}"}
        if "style" in element:
            pressed["style"] = element["style"]
        if where.get("type") == "home":
            body = recorded("block_actions_home")
            body.update(container={"type": "view", "view_id": where["id"]}, view=copy.deepcopy(where))
        else:
            body = recorded("block_actions")
            ephemeral = where["ts"] in self.api.ephemeral
            body.update(container={"type": "message", "message_ts": where["ts"], "channel_id": where["channel"],
                                   "is_ephemeral": ephemeral},
                        channel={"id": where["channel"], "name": "sales"},
                        response_url=self.api.response_url(where["channel"], self.user,
                                                           where["ts"] if ephemeral else None))
            if ephemeral:
                del body["message"]
            else:
                body["message"] = {k: v for k, v in where.items() if k != "channel"}
        body.update(user=self._who(), team={"id": self.team, "domain": self.domain}, trigger_id=self.api.trigger(),
                    actions=[pressed])
        return await self._done(await self._wire.interaction(body))

    def submission(self, view: dict[str, Any], values: dict[str, str]) -> dict[str, Any]:
        """The view_submission of a modal filled in (text inputs by value, selects by option value or label)."""
        state: dict[str, Any] = {}
        for block in view["blocks"]:
            if block.get("type") != "input":
                continue
            value = values.get(block["block_id"].removeprefix("field."), "")
            element = block["element"]
            if element["type"] == "static_select":
                option = next((o for o in element["options"] if value in (o["value"], o["text"]["text"])), None)
                state[block["block_id"]] = {element["action_id"]: {"type": "static_select", "selected_option": option}}
            else:
                state[block["block_id"]] = {element["action_id"]: {"type": "plain_text_input", "value": value or None}}
        body = recorded("view_submission")
        body.update(user=self._who(), team={"id": self.team, "domain": self.domain}, trigger_id=self.api.trigger(),
                    view={**copy.deepcopy(view), "state": {"values": state}})
        return body

    async def submit(self, view: dict[str, Any], values: dict[str, str]) -> Answer:
        return await self._done(await self._wire.interaction(self.submission(view, values)))
