"""Issue 14: what Slack OAuth distribution costs per request, next to one SLACK_BOT_TOKEN.

The real Bolt app (SlackPlatform) on the shared HTTP server, a temporary SQLite file (or
`--database URL`), the Slack Web API stand-in in this process. Installs `--workspaces` workspaces
through /slack/install and /slack/oauth_redirect, then sends `--commands` signed `/crm help`
slash commands spread over them and times each acknowledgement; then the same with one token.
An acknowledgement includes finding the workspace's token in the database (OAuth) and Bolt's
dispatch; the command's work runs after it. Prints the install round trip and the acks' median
and 95th percentile for both modes.

    python bench/slack_oauth.py [--workspaces 50] [--commands 500] [--database URL]
"""
from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402

from bot.app import App  # noqa: E402
from bot.config import Settings  # noqa: E402
from bot.slack import SlackPlatform  # noqa: E402
from bot.web import WebServer  # noqa: E402
from tests.e2e.conftest import free_port  # noqa: E402
from tests.e2e.slack_api import (  # noqa: E402
    BOT_TOKEN, CLIENT_ID, CLIENT_SECRET, SIGNING_SECRET, SlackApiStandIn, SlackPerson, SlackWire,
)


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


async def run_mode(database: str, api: SlackApiStandIn, *, oauth: bool, workspaces: int,
                   commands: int) -> tuple[list[float], list[float]]:
    """(install round trips, command acks) in seconds, for one mode."""
    port = free_port()
    tokens = ({"slack_client_id": CLIENT_ID, "slack_client_secret": CLIENT_SECRET} if oauth
              else {"slack_bot_token": BOT_TOKEN})
    settings = Settings(_env_file=None, database_url=database, slack_signing_secret=SIGNING_SECRET,
                        slack_api_url=api.base_url, http_host="127.0.0.1", http_port=port, default_locale="en",
                        log_level="WARNING", **tokens)
    app = App.build(settings)
    await app.db.upgrade()
    platform = SlackPlatform(app)
    server = WebServer(app.db, settings.http_host, port)
    platform.attach(server)
    await server.start()
    await platform.start()
    base = f"http://127.0.0.1:{port}"
    installs: list[float] = []
    acks: list[float] = []
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as http:
        teams = [f"TB{n:05d}" for n in range(workspaces)] if oauth else ["T1"]
        for team in teams if oauth else []:
            started = time.perf_counter()
            async with http.get(f"{base}/slack/install", allow_redirects=False) as answer:
                query = parse_qs(urlsplit(answer.headers["Location"]).query)
                state = answer.cookies["slack-app-oauth-state"].value
            code = api.grant(team, query["scope"][0])
            async with http.get(f"{base}/slack/oauth_redirect", params={"code": code, "state": state},
                                headers={"Cookie": f"slack-app-oauth-state={state}"}) as answer:
                assert answer.status == 200, await answer.text()
            installs.append(time.perf_counter() - started)
        wire = SlackWire(f"{base}/slack/events", http)
        people = [SlackPerson(api, wire, platform.drain, user=f"U{team}", name=f"Rep {team}", team=team)
                  for team in teams]
        for n in range(commands):
            answer = await wire.command(people[n % len(people)].command_form("help"))
            assert answer.status == 200, answer.text
            acks.append(answer.seconds)
        await platform.drain()
    await platform.stop()
    await server.stop()
    await app.db.dispose()
    return installs, acks


async def main(workspaces: int, commands: int, database: str | None) -> None:
    with tempfile.TemporaryDirectory() as folder:
        for oauth in (True, False):
            api = await SlackApiStandIn().start()
            url = database or f"sqlite:///{Path(folder) / ('oauth.db' if oauth else 'token.db')}"
            try:
                installs, acks = await run_mode(url, api, oauth=oauth, workspaces=workspaces, commands=commands)
            finally:
                await api.stop()
            name = f"OAuth, {workspaces} workspaces" if oauth else "one SLACK_BOT_TOKEN"
            if installs:
                print(f"{name}: install round trip (/slack/install + /slack/oauth_redirect) median "
                      f"{statistics.median(installs) * 1000:.1f} ms, p95 {percentile(installs, 0.95) * 1000:.1f} ms")
            print(f"{name}: {commands} slash commands, ack median {statistics.median(acks) * 1000:.1f} ms, "
                  f"p95 {percentile(acks, 0.95) * 1000:.1f} ms, max {max(acks) * 1000:.1f} ms")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workspaces", type=int, default=50)
    parser.add_argument("--commands", type=int, default=500)
    parser.add_argument("--database", help="a database URL (default: a temporary SQLite file per mode)")
    options = parser.parse_args()
    asyncio.run(main(options.workspaces, options.commands, options.database))
