"""Slack OAuth distribution ("Add to Slack"): one installation per workspace, kept in our database.

With SLACK_CLIENT_ID and SLACK_CLIENT_SECRET (instead of SLACK_BOT_TOKEN) the Bolt app runs
slack-bolt's OAuth flow:

- GET /slack/install sets the state cookie and redirects to Slack's authorize page, asking for the
  manifest's bot scopes (`BOT_SCOPES`); GET /slack/oauth_redirect checks the state against the
  cookie and the state store, exchanges the code (oauth.v2.access) and stores the installation.
  Both stores are slack-sdk's async SQLAlchemy ones on our engine; their tables come from
  migration 0008 (storage.models), never from create_all at runtime.
- Every request is authorized from the store: Bolt finds the bot token of the workspace (or of the
  Enterprise Grid org) the request comes from, and the listeners answer with that token.
- `app_uninstalled` and `tokens_revoked` delete the installation from the store: from then on no
  token reaches that workspace, and deliveries to its book are skipped
  (storage.slack_installs, reminders.delivery.NotInstalled). The book itself is kept; installing
  the app again in the same workspace finds it as it was.

The pages a person sees at the end of the flow are in their browser's language (Accept-Language).
"""
from __future__ import annotations

import asyncio
import html
import logging
from datetime import datetime, timezone
from typing import Any, Awaitable, Callable

from slack_bolt.context.async_context import AsyncBoltContext
from slack_bolt.oauth.async_callback_options import AsyncCallbackOptions, AsyncFailureArgs, AsyncSuccessArgs
from slack_bolt.oauth.async_oauth_settings import AsyncOAuthSettings
from slack_bolt.response import BoltResponse
from slack_sdk.oauth.installation_store.models.bot import Bot
from slack_sdk.oauth.installation_store.models.installation import Installation
from slack_sdk.oauth.installation_store.sqlalchemy import AsyncSQLAlchemyInstallationStore
from slack_sdk.oauth.sqlalchemy_utils import normalize_datetime_for_db
from slack_sdk.oauth.state_store.sqlalchemy import AsyncSQLAlchemyOAuthStateStore
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.config import Settings
from handlers.i18n import LOCALES, normalize_locale, t
from storage import slack_installs
from storage.db import Database
from storage.slack_installs import SLACK_BOTS, SLACK_INSTALLATIONS, SLACK_OAUTH_STATES

log = logging.getLogger(__name__)

INSTALL_PATH = "/slack/install"
REDIRECT_PATH = "/slack/oauth_redirect"
#: The bot scopes of slack-manifest.yml (tests/e2e/test_slack_oauth.py keeps the two the same).
BOT_SCOPES = ("app_mentions:read", "chat:write", "commands", "files:read", "files:write", "im:history",
              "im:write", "team:read", "users:read")
#: How long an install link's state is good for: from /slack/install to Slack sending the person back.
STATE_SECONDS = 600
#: Why Slack's redirect did not install the app → what the person is told.
FAILURE_TEXTS = {"access_denied": "slack.install_cancelled", "invalid_browser": "slack.install_expired",
                 "invalid_state": "slack.install_expired"}


class InstallationStore(AsyncSQLAlchemyInstallationStore):
    """slack-sdk's store, finding installations through the database's reader: Bolt looks one up before
    every acknowledgement, and on SQLite that read would otherwise wait for the write lock behind the
    work of the request before (busy-waiting in steps of up to 100 ms). Saving and deleting write as usual."""

    def __init__(self, client_id: str, db: Database) -> None:
        super().__init__(client_id=client_id, engine=db.engine, bots_table_name=SLACK_BOTS,
                         installations_table_name=SLACK_INSTALLATIONS)
        self._finder = AsyncSQLAlchemyInstallationStore(client_id=client_id, engine=db.reader,
                                                        bots_table_name=SLACK_BOTS,
                                                        installations_table_name=SLACK_INSTALLATIONS)

    async def async_find_bot(self, **where: Any) -> Bot | None:
        return await self._finder.async_find_bot(**where)

    async def async_find_installation(self, **where: Any) -> Installation | None:
        return await self._finder.async_find_installation(**where)


def oauth_settings(settings: Settings, store: InstallationStore, engine: AsyncEngine) -> AsyncOAuthSettings:
    """The OAuth flow's settings: our stores, the manifest's scopes, pages in the person's language."""
    pages = Pages(settings.default_locale)
    oauth = AsyncOAuthSettings(
        client_id=settings.slack_client_id, client_secret=settings.slack_client_secret, scopes=list(BOT_SCOPES),
        user_scopes=[], redirect_uri=settings.slack_redirect_uri, install_path=INSTALL_PATH,
        redirect_uri_path=REDIRECT_PATH, install_page_rendering_enabled=False,
        installation_store=store, installation_store_bot_only=True,
        state_store=PrunedStateStore(expiration_seconds=STATE_SECONDS, engine=engine, table_name=SLACK_OAUTH_STATES),
        state_expiration_seconds=STATE_SECONDS,
        callback_options=AsyncCallbackOptions(success=pages.installed, failure=pages.failed),
    )
    # Each request still finds its token in the store (an uninstalled workspace's is gone); only the
    # auth.test Bolt asks about that token is remembered, sparing Slack a round trip before every ack.
    oauth.authorize.cache_enabled = True
    return oauth


class PrunedStateStore(AsyncSQLAlchemyOAuthStateStore):
    """slack-sdk's state store, which deletes a state only when it is used: every visit to the install
    link adds one, so each new one first deletes those expired, and the table holds at most the last
    STATE_SECONDS' worth, however often the (public) link is opened."""

    async def async_issue(self, *args: Any, **kwargs: Any) -> str:
        now = normalize_datetime_for_db(datetime.now(tz=timezone.utc))
        async with self.engine.begin() as conn:
            await conn.execute(self.oauth_states.delete().where(self.oauth_states.c.expire_at <= now))
        return await super().async_issue(*args, **kwargs)


class Installations:
    """The app's installations in our database: the OAuth flow's settings over them, which token reaches
    a customer book, and what uninstalling deletes."""

    def __init__(self, settings: Settings, db: Database) -> None:
        self.db = db
        self.store = InstallationStore(str(settings.slack_client_id), db)
        self.oauth = oauth_settings(settings, self.store, db.engine)
        self._orgs_noted: set[str] = set()
        self._notes: set[asyncio.Task[None]] = set()

    async def token_for_book(self, workspace_id: int) -> str | None:
        async with self.db.transaction() as session:
            return await slack_installs.bot_token(session, self.store.client_id, workspace_id)

    async def note_org(self, context: AsyncBoltContext, next: Callable[[], Awaitable[Any]]) -> Any:
        """Bolt middleware: remember which Enterprise Grid org a workspace is in (once per process), so a
        delivery to its book finds an org-wide installation's token (storage.slack_installs). Written
        beside the request, so a busy database never holds its ack."""
        for team, org in ((context.team_id, context.enterprise_id),
                          (context.actor_team_id, context.actor_enterprise_id)):
            if team and org and team not in self._orgs_noted:
                self._orgs_noted.add(team)
                task = asyncio.create_task(self._note_org(team, org))
                self._notes.add(task)
                task.add_done_callback(self._notes.discard)
        return await next()

    async def _note_org(self, team: str, org: str) -> None:
        try:
            async with self.db.transaction() as session:
                await slack_installs.note_org(session, team, org)
        except Exception:  # noqa: BLE001 - a hint for later deliveries; the team's next request tries again
            log.exception("could not note Slack workspace %s in org %s", team, org)
            self._orgs_noted.discard(team)

    async def drain(self) -> None:
        """Wait for the notes being written."""
        while self._notes:
            await asyncio.gather(*self._notes, return_exceptions=True)

    async def uninstalled(self, context: AsyncBoltContext) -> None:
        """`app_uninstalled`: the installation goes, so nothing more is sent there; the customer book
        stays, for when the app is installed there again."""
        where = installed_where(context)
        await self.store.async_delete_all(**where)
        log.info("Slack app uninstalled from %s: no more deliveries there; its customer book is kept",
                 where["team_id"] or where["enterprise_id"])

    async def tokens_revoked(self, event: dict[str, Any], context: AsyncBoltContext) -> None:
        """`tokens_revoked`: a revoked bot token goes with its bot, and deliveries stop as on uninstall
        (no user tokens are asked for, so none are kept)."""
        tokens = event.get("tokens") if isinstance(event.get("tokens"), dict) else {}
        where = installed_where(context)
        if tokens.get("bot"):
            await self.store.async_delete_bot(**where)
        log.info("Slack tokens revoked in %s: %s", where["team_id"] or where["enterprise_id"],
                 ", ".join(f"{len(v)} {k}" for k, v in tokens.items() if isinstance(v, list)) or "none named")


def installed_where(context: AsyncBoltContext) -> dict[str, str | None]:
    """The installation an event is about: an org-wide one is stored without a team."""
    return {"enterprise_id": context.enterprise_id,
            "team_id": None if context.is_enterprise_install else context.team_id}


def not_installed_text(default_locale: str) -> str:
    """What someone in a workspace without an installation (any more) is told: Bolt answers before
    anyone's language is known, so in every language, the bot's default first."""
    first = normalize_locale(default_locale)
    return "\n".join(t(locale, "slack.not_installed") for locale in sorted(LOCALES, key=lambda code: code != first))


class Pages:
    """The page at the end of the install flow, in the browser's first language we have."""

    def __init__(self, default_locale: str) -> None:
        self.default_locale = default_locale

    def locale(self, headers: dict[str, list[str]]) -> str:
        accepted = (headers.get("accept-language") or [""])[0]
        first = accepted.split(",")[0].split(";")[0].strip()
        return normalize_locale(first or None, self.default_locale)

    async def installed(self, args: AsyncSuccessArgs) -> BoltResponse:
        team = args.installation.team_name or args.installation.enterprise_name or ""
        log.info("Slack app installed in %s (%s)", args.installation.team_id or args.installation.enterprise_id,
                 "org-wide" if args.installation.is_enterprise_install else "workspace")
        locale = self.locale(args.request.headers)
        return page(200, t(locale, "slack.installed_title"), t(locale, "slack.installed", team=team), locale)

    async def failed(self, args: AsyncFailureArgs) -> BoltResponse:
        log.warning("Slack install did not complete: %s", args.reason)
        locale = self.locale(args.request.headers)
        text = t(locale, FAILURE_TEXTS.get(args.reason, "slack.install_failed"), path=INSTALL_PATH)
        return page(args.suggested_status_code, t(locale, "slack.install_failed_title"), text, locale)


def page(status: int, title: str, text: str, locale: str) -> BoltResponse:
    body = (f'<!DOCTYPE html><html lang="{locale}"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
            f'</head><body><h1>{html.escape(title)}</h1><p>{html.escape(text)}</p></body></html>')
    return BoltResponse(status=status, body=body, headers={"Content-Type": "text/html; charset=utf-8"})
