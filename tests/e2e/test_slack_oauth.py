"""Slack OAuth distribution end to end: the real Bolt app (SlackPlatform with SLACK_CLIENT_ID and
SLACK_CLIENT_SECRET) on the shared HTTP server, a browser's visits to /slack/install and
/slack/oauth_redirect, the Web API stand-in's oauth.v2.access, signed requests from several
workspaces, and deliveries by the real scheduler before and after app_uninstalled."""
from __future__ import annotations

import asyncio
import time
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest
import yaml
from sqlalchemy import column, select, table

from bot.slack import SlackPlatform
from bot.slack.install import BOT_SCOPES
from handlers.messages import Reply
from reminders.delivery import Delivery, Outcome, Route
from reminders.scheduler import Scheduler
from storage.models import Identity, Reminder, Space
from storage.slack_installs import SLACK_OAUTH_STATES
from tests.e2e.conftest import SlackRig
from tests.e2e.slack_api import APP_ID, CLIENT_ID, CLIENT_SECRET, SlackApiStandIn, SlackPerson, next_id, visible_text

MANIFEST = Path(__file__).parents[2] / "slack-manifest.yml"
COOKIE = "slack-app-oauth-state"


class Browser:
    """Someone installing the app: visits /slack/install, approves on Slack's page, comes back."""

    def __init__(self, base: str, api: SlackApiStandIn) -> None:
        self.base, self.api = base, api
        self.session = aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar())  # cookies sent by hand

    async def start(self) -> tuple[str, dict[str, list[str]], str]:
        """/slack/install: where it redirects, that URL's query, and the state cookie it set."""
        async with self.session.get(f"{self.base}/slack/install", allow_redirects=False) as answer:
            assert answer.status == 302, await answer.text()
            location = answer.headers["Location"]
            cookie = answer.cookies[COOKIE]
        assert cookie["httponly"] and cookie["secure"], cookie
        return location, parse_qs(urlsplit(location).query), cookie.value

    async def back(self, query: dict[str, str], state_cookie: str | None,
                   language: str = "en-US,en;q=0.9") -> tuple[int, str]:
        """Slack's redirect back to /slack/oauth_redirect, with the cookie this browser holds."""
        headers = {"Accept-Language": language, **({"Cookie": f"{COOKIE}={state_cookie}"} if state_cookie else {})}
        async with self.session.get(f"{self.base}/slack/oauth_redirect", params=query, headers=headers,
                                    allow_redirects=False) as answer:
            return answer.status, await answer.text()

    async def install(self, team: str, **grant: Any) -> str:
        """The whole flow for `team`; the bot token the installation got."""
        _, query, state = await self.start()
        code = self.api.grant(team, query["scope"][0], **grant)
        status, page = await self.back({"code": code, "state": query["state"][0]}, state)
        assert status == 200 and "CRM is installed" in page, page
        return self.api.token_of(grant["enterprise"] if grant.get("org_wide") else team)

    async def close(self) -> None:
        await self.session.close()


@pytest.fixture
async def oauth(slack_rig: SlackRig) -> SlackPlatform:
    """A running Slack bot installed through OAuth (no SLACK_BOT_TOKEN) on the test's database."""
    return await slack_rig.start(slack_rig.settings(slack_bot_token=None, slack_client_id=CLIENT_ID,
                                                    slack_client_secret=CLIENT_SECRET))


@pytest.fixture
async def browser(oauth: SlackPlatform, slack_api: SlackApiStandIn):
    settings = oauth.app.settings
    visitor = Browser(f"http://{settings.http_host}:{settings.http_port}", slack_api)
    yield visitor
    await visitor.close()


def said_to(api: SlackApiStandIn, since: int, person: SlackPerson) -> list[tuple[str, str]]:
    """(token, text) of every message the bot posted where `person` sees it, since call number `since`."""
    where = {person.channel, person.dm, person.user}
    return [(c.token, visible_text(c.params.get("blocks") or []) or c.params.get("text", ""))
            for c in api.calls[since:] if c.method in ("chat.postMessage", "chat.postEphemeral")
            and c.error is None and c.params.get("channel") in where]


def tokens_used(api: SlackApiStandIn, since: int) -> set[str]:
    return {c.token for c in api.calls[since:] if c.method != "oauth.v2.access"}


async def test_install_redirects_to_slack_with_the_manifest_scopes_and_a_state_cookie(browser: Browser) -> None:
    location, query, cookie = await browser.start()
    assert location.startswith("https://slack.com/oauth/v2/authorize?")
    assert query["client_id"] == [CLIENT_ID]
    assert query["state"] == [cookie]
    manifest = yaml.safe_load(MANIFEST.read_text())
    assert query["scope"][0].split(",") == list(BOT_SCOPES) == manifest["oauth_config"]["scopes"]["bot"]
    assert manifest["oauth_config"]["redirect_urls"] == ["https://YOUR-HOST/slack/oauth_redirect"]


async def test_a_workspace_installs_and_its_commands_are_answered_with_its_own_token(
        oauth: SlackPlatform, slack_rig: SlackRig, slack_api: SlackApiStandIn, browser: Browser, db) -> None:
    slack_api.teams.update(T2="Beta Trading", T3="Gamma Foods")
    beta = await browser.install("T2")
    gamma = await browser.install("T3")
    assert beta != gamma
    exchanged = slack_api.calls_to("oauth.v2.access")
    assert [c.error for c in exchanged] == [None, None]

    wang = slack_rig.person("U2WANG001", "Wang", team="T2", channel="C2SALES01")
    zhao = slack_rig.person("U3ZHAO001", "Zhao", team="T3", channel="C3SALES01")
    since = len(slack_api.calls)
    await wang.command('add "Li Wei" company=Acme')
    assert tokens_used(slack_api, since) == {beta}  # auth.test, users.info, team.info and the answer
    assert any("Li Wei" in text for _, text in said_to(slack_api, since, wang))

    since = len(slack_api.calls)
    await zhao.command("find Li Wei")
    assert tokens_used(slack_api, since) == {gamma}
    assert any("No customers match" in text for _, text in said_to(slack_api, since, zhao))
    since = len(slack_api.calls)
    await wang.command("find Li Wei")
    assert any("Li Wei" in text for _, text in said_to(slack_api, since, wang))
    assert len([c for c in slack_api.calls_to("auth.test") if c.token == beta]) == 2  # installing, first request

    async with db.transaction() as session:
        books = dict((await session.execute(select(Space.external_id, Space.workspace_id)
                                            .where(Space.platform == "slack"))).all())
    assert set(books) == {"T2", "T3"} and books["T2"] != books["T3"]


async def test_a_redirect_without_the_browsers_cookie_or_with_a_used_state_installs_nothing(
        oauth: SlackPlatform, slack_api: SlackApiStandIn, browser: Browser) -> None:
    _, query, state = await browser.start()
    code = slack_api.grant("T2", query["scope"][0])
    status, page = await browser.back({"code": code, "state": query["state"][0]}, None, language="zh-CN,zh;q=0.9")
    assert status == 400 and "此安装链接已过期" in page and "/slack/install" in page
    assert "Traceback" not in page

    status, page = await browser.back({"code": code, "state": query["state"][0]}, state)
    assert status == 200 and "CRM is installed" in page
    status, page = await browser.back({"code": code, "state": query["state"][0]}, state)  # the same link again
    assert status == 401 and "This install link has expired" in page
    status, page = await browser.back({"error": "access_denied", "state": "x"}, "x")
    assert status == 200 and "cancelled" in page
    assert len(slack_api.calls_to("oauth.v2.access")) == 1


async def test_enterprise_grid_the_org_wide_install_answers_each_workspace_in_its_own_book(
        oauth: SlackPlatform, slack_rig: SlackRig, slack_api: SlackApiStandIn, browser: Browser, db, clock) -> None:
    org = await browser.install("T5", enterprise="E1", org_wide=True)
    assert slack_api.token_of("E1") == org
    wang = slack_rig.person("U5WANG001", "Wang", team="T5", channel="C5SALES01")
    zhao = slack_rig.person("U6ZHAO001", "Zhao", team="T6", channel="C6SALES01")

    async def grid_command(person: SlackPerson, text: str) -> None:
        form = person.command_form(text)
        form.update(enterprise_id="E1", enterprise_name="Org", is_enterprise_install="true")
        answer = await slack_rig.wire.command(form)
        assert answer.status == 200, answer.text
        await slack_rig.settle()

    since = len(slack_api.calls)
    await grid_command(wang, 'add "Li Wei" company=Acme')
    await grid_command(zhao, "find Li Wei")
    assert tokens_used(slack_api, since) == {org}
    assert any("No customers match" in text for _, text in said_to(slack_api, since, zhao))

    await grid_command(zhao, 'add "Chen Jie"')
    await grid_command(zhao, "remind #1 in 2 hours call back")
    clock.advance(hours=3)
    since = len(slack_api.calls)
    await Scheduler(oauth.app.db, slack_rig.services, {"slack": oauth.sender}).poll()
    reminder = [(token, text) for token, text in said_to(slack_api, since, zhao) if "Chen Jie" in text]
    assert reminder and {token for token, _ in reminder} == {org}  # found through the workspace's org


def uninstalled(team: str, kind: str = "app_uninstalled", **event: Any) -> dict[str, Any]:
    """The event Slack sends when the app is removed from `team` (or its tokens are revoked)."""
    now = int(time.time())
    return {"token": "verification", "team_id": team, "api_app_id": APP_ID, "type": "event_callback",
            "event": {"type": kind, "event_ts": f"{now}.000100", **event}, "event_id": next_id("Ev"),
            "event_time": now, "authorizations": [{"enterprise_id": None, "team_id": team, "user_id": "U0INSTALL",
                                                   "is_bot": True, "is_enterprise_install": False}]}


@pytest.mark.parametrize("removal", ["app_uninstalled", "tokens_revoked"])
async def test_after_uninstall_due_reminders_there_are_skipped_and_the_book_is_kept(
        oauth: SlackPlatform, slack_rig: SlackRig, slack_api: SlackApiStandIn, browser: Browser, db, clock,
        removal: str) -> None:
    beta = await browser.install("T2")
    gamma = await browser.install("T3")
    wang = slack_rig.person("U2WANG001", "Wang", team="T2", channel="C2SALES01")
    zhao = slack_rig.person("U3ZHAO001", "Zhao", team="T3", channel="C3SALES01")
    for person in (wang, zhao):
        await person.command(f'add "Customer of {person.name}"')
        await person.command("remind #1 in 2 hours call back")
        await person.command("remind #1 in 5 hours send the quote")
    scheduler = Scheduler(oauth.app.db, slack_rig.services, {"slack": oauth.sender})

    clock.advance(hours=3)
    since = len(slack_api.calls)
    await scheduler.poll()
    to_wang, to_zhao = said_to(slack_api, since, wang), said_to(slack_api, since, zhao)
    assert len(to_wang) == len(to_zhao) == 1 and all("call back" in text for _, text in to_wang + to_zhao)
    assert (to_wang[0][0], to_zhao[0][0]) == (beta, gamma)  # each with its workspace's token

    event = {"tokens": {"bot": ["UBOT"]}} if removal == "tokens_revoked" else {}
    answer = await slack_rig.wire.event(uninstalled("T2", removal, **event))
    assert answer.status == 200
    await slack_rig.settle()
    slack_api.revoke(team="T2")  # Slack no longer takes the token

    clock.advance(hours=3)
    since = len(slack_api.calls)
    await scheduler.poll()
    assert said_to(slack_api, since, wang) == []  # nothing is tried in the uninstalled workspace
    assert tokens_used(slack_api, since) == {gamma}
    assert [text for _, text in said_to(slack_api, since, zhao) if "send the quote" in text]
    async with db.transaction() as session:
        rows = (await session.execute(select(Reminder.note, Reminder.status, Reminder.sent_at.is_not(None),
                                             Reminder.last_error).order_by(Reminder.id))).all()
    skipped = "the app is not installed in that workspace"
    assert [tuple(row) for row in rows] == [  # delivery is over for each; the reminders stay in the book
        ("call back", "pending", True, None), ("send the quote", "pending", True, skipped),
        ("call back", "pending", True, None), ("send the quote", "pending", True, None)]

    clock.advance(hours=3)
    since = len(slack_api.calls)
    await scheduler.poll()  # skipped for good, not retried
    assert said_to(slack_api, since, wang) == [] and len(slack_api.calls) == since

    assert (await slack_rig.wire.command(wang.command_form("find Customer of Wang"))).status == 200
    await slack_rig.settle()
    [told] = [c.params["text"] for c in slack_api.calls[since:] if c.method == "response_url"]
    assert told.splitlines() == [
        "CRM is no longer installed in this workspace, so it can't answer. Ask a Slack admin here to install it "
        "again: nothing in the customer book was deleted.",
        "CRM 已不再安装在此工作区，无法回复。请本工作区的 Slack 管理员重新安装：客户资料没有被删除。"]

    again = await browser.install("T2")  # installed again: the same book, as it was
    since = len(slack_api.calls)
    await wang.command("find Customer of Wang")
    assert tokens_used(slack_api, since) == {again}
    assert any("Customer of Wang" in text for _, text in said_to(slack_api, since, wang))


class Recorder:
    """Another platform's sender (a member's linked Telegram account): records what it is given."""

    platform = "telegram"

    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []

    async def send(self, chat_id: str, reply: Reply) -> None:
        self.sent.append((chat_id, reply.text))


async def test_a_member_also_on_telegram_gets_there_what_the_uninstalled_workspace_cannot(
        oauth: SlackPlatform, slack_rig: SlackRig, slack_api: SlackApiStandIn, browser: Browser, db, clock) -> None:
    await browser.install("T2")
    wang = slack_rig.person("U2WANG001", "Wang", team="T2", channel="C2SALES01")
    await wang.command("help")
    async with db.transaction() as session:
        book = await session.scalar(select(Space.workspace_id).where(Space.external_id == "T2"))
    assert (await slack_rig.wire.event(uninstalled("T2"))).status == 200
    await slack_rig.settle()

    telegram = Recorder()
    delivery = Delivery(db, {"slack": oauth.sender, "telegram": telegram}, clock=clock)
    since = len(slack_api.calls)
    alone = await delivery.deliver([Route("slack", wang.user, book)], [Reply(text="Reminder #1")])
    assert alone.outcome is Outcome.UNINSTALLED and telegram.sent == []
    linked = await delivery.deliver([Route("slack", wang.user, book), Route("telegram", "4242", book)],
                                    [Reply(text="Reminder #1")])
    assert linked.outcome is Outcome.SENT and telegram.sent == [("4242", "Reminder #1")]
    assert len(slack_api.calls) == since  # nothing was tried in the uninstalled workspace
    async with db.transaction() as session:
        assert await session.scalar(select(Identity.blocked_at).where(Identity.external_id == wang.user)) is None


async def test_with_one_token_an_uninstall_is_acknowledged_and_a_revoked_token_skips_the_delivery(
        slack: SlackPlatform, slack_rig: SlackRig, slack_api: SlackApiStandIn, db, clock) -> None:
    """SLACK_BOT_TOKEN mode has no installation to delete; Slack refusing the token ends the delivery."""
    answer = await slack_rig.wire.event(uninstalled("T1"))
    assert answer.status == 200  # handled (Bolt answers 404 to an event nobody listens to)
    slack_api.fail_next("chat.postMessage", "token_revoked", times=3)

    async def no_wait(seconds: float) -> None:
        """Retries would come at once."""

    delivery = Delivery(db, {"slack": slack.sender}, clock=clock, sleep=no_wait)
    result = await delivery.deliver([Route("slack", "U0ALICE01")], [Reply(text="Reminder #1")])
    assert result.outcome is Outcome.UNINSTALLED
    assert len(slack_api.calls_to("chat.postMessage")) == 1  # not retried


async def test_opening_the_public_install_link_again_and_again_keeps_only_live_states(
        oauth: SlackPlatform, browser: Browser, db) -> None:
    states = table(SLACK_OAUTH_STATES, column("state"), column("expire_at"))
    async with db.transaction() as session:
        await session.execute(states.insert(), [{"state": f"old-{i}", "expire_at": datetime(2026, 1, 1)}
                                                for i in range(50)])
    issued = [(await browser.start())[2] for _ in range(3)]
    async with db.transaction() as session:
        assert sorted(await session.scalars(select(states.c.state))) == sorted(issued)


@pytest.mark.parametrize("db", ["sqlite"], indirect=True)
@pytest.mark.parametrize("grid", [False, True], ids=["workspace", "org-wide"])
async def test_a_command_is_acknowledged_at_once_while_a_long_write_holds_sqlite(
        oauth: SlackPlatform, slack_rig: SlackRig, slack_api: SlackApiStandIn, browser: Browser, db,
        grid: bool) -> None:
    """Bolt reads the installation before every ack, and a Grid workspace's org is noted: a long import
    batch holding SQLite's write lock must hold neither past Slack's 3 seconds (the work itself waits
    its turn after the ack)."""
    await browser.install("T2", **({"enterprise": "E1", "org_wide": True} if grid else {}))
    wang = slack_rig.person("U2WANG001", "Wang", team="T2", channel="C2SALES01")

    def form(text: str, team: str) -> dict[str, str]:
        typed = wang.command_form(text)
        if grid:
            typed.update(team_id=team, enterprise_id="E1", is_enterprise_install="true")
        return typed

    assert (await slack_rig.wire.command(form("help", "T2"))).status == 200
    await slack_rig.settle()
    assert said_to(slack_api, 0, wang)  # answered: the installation was found
    async with db.transaction() as session:
        await session.execute(select(Space.id))  # BEGIN IMMEDIATE: the write lock is held from here
        answer = await asyncio.wait_for(slack_rig.wire.command(form("find Li Wei", "T7")), 2.0)
        assert answer.status == 200 and answer.seconds < 0.5, answer
    await slack_rig.settle()
    assert any("No customers match" in text for _, text in said_to(slack_api, 0, wang))
