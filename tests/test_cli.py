"""`crm-bot` as a person runs it: a refused Telegram token or a database that can't be used is one line
saying what to do (never a traceback or the token), in DEFAULT_LOCALE's language, and no routine
migration log on every verb."""
from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import asyncpg
import pytest

import bot.cli
from tests.conftest import PG_DSN

WRONG_TOKEN = "123456789:AAWrongWrongWrongWrongWrongWrong12345"

ROOT = Path(__file__).resolve().parents[1]  # the code next to these tests, also in a subprocess


class RefusingBotApi(BaseHTTPRequestHandler):
    """What api.telegram.org answers every method with for a token it does not know."""

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        body = json.dumps({"ok": False, "error_code": 401, "description": "Unauthorized"}).encode()
        self.send_response(401)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - quiet in the test output
        """Not logged."""


@pytest.fixture
def refusing_bot_api() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), RefusingBotApi)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_a_refused_telegram_token_is_one_line_and_exit_code_1(refusing_bot_api: str, tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TELEGRAM_BOT_TOKEN": WRONG_TOKEN,
           "TELEGRAM_API_BASE_URL": refusing_bot_api,
           "DATABASE_URL": f"sqlite:///{tmp_path / 'crm.db'}", "HTTP_HOST": "127.0.0.1",
           "HTTP_PORT": str(free_port()), "SLACK_BOT_TOKEN": "", "LOG_LEVEL": "INFO", "DEFAULT_LOCALE": "en"}
    done = subprocess.run([sys.executable, "-m", "bot", "run"], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=60)
    output = done.stdout + done.stderr
    assert done.returncode == 1, output
    assert "crm-bot run: TELEGRAM_BOT_TOKEN was refused by Telegram (401 Unauthorized)." in done.stderr.splitlines()
    assert "Traceback" not in output
    assert WRONG_TOKEN not in output and WRONG_TOKEN.split(":")[1] not in output


# --- a database that can't be used ------------------------------------------------------------------

VERBS = (["run"], ["console"], ["db", "upgrade"], ["import", "customers.csv"], ["export", "-"])


def pg_database(name: str) -> str:
    """A PostgreSQL URL for the test server, or a skip when none answers."""
    async def probe() -> None:
        connection = await asyncpg.connect(f"{PG_DSN}/postgres", timeout=3)
        await connection.close()

    try:
        asyncio.run(probe())
    except (OSError, asyncpg.PostgresError, asyncio.TimeoutError) as problem:
        pytest.skip(f"PostgreSQL not reachable at {PG_DSN}: {problem.__class__.__name__}")
    return f"{PG_DSN}/{name}"


def run_cli(argv: list[str], env: dict[str, str], monkeypatch: pytest.MonkeyPatch,
            capsys: pytest.CaptureFixture[str]) -> tuple[int, list[str]]:
    """`crm-bot …` in this process (a subprocess per case would take a second each): exit code, output lines."""
    for name, value in {"TELEGRAM_BOT_TOKEN": "", "SLACK_BOT_TOKEN": "", "LOG_LEVEL": "INFO", **env}.items():
        monkeypatch.setenv(name, value)
    code = bot.cli.main(argv)
    printed = capsys.readouterr()
    return code, [line for line in (printed.out + printed.err).splitlines() if line.strip()]


CASES = {
    "no such PostgreSQL database": (lambda tmp: pg_database("crm_no_such_database_here"),
                                    "has no database “crm_no_such_database_here”. Create it (createdb"),
    "SQLite file in a missing folder": (lambda tmp: f"sqlite:///{tmp / 'nodir' / 'x.db'}",
                                        "its folder doesn't exist or isn't writable. Create the folder"),
    "a closed port": (lambda tmp: f"postgresql://postgres@127.0.0.1:{free_port()}/crm",
                      "Start PostgreSQL, or fix the host and port in DATABASE_URL"),
    "an unsupported database": (lambda tmp: "mysql://user@127.0.0.1/crm", "uses “mysql”, which crm-bot doesn't support"),
    "not a URL": (lambda tmp: "crm.db", "is not a database URL. Write it like sqlite:///crm.db"),
}


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("verb", VERBS, ids=" ".join)
def test_a_database_that_cannot_be_used_is_one_line_and_exit_code_1(
    case: str, verb: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    url, says = CASES[case]
    monkeypatch.chdir(tmp_path)
    (tmp_path / "customers.csv").write_text("name\nKim\n")
    code, lines = run_cli(verb, {"DATABASE_URL": url(tmp_path), "DEFAULT_LOCALE": "en"}, monkeypatch, capsys)
    assert code == 1 and len(lines) == 1, lines
    assert lines[0].startswith(f"crm-bot {' '.join(verb[:2] if verb[0] == 'db' else verb[:1])}: ") and says in lines[0]


def test_the_database_problem_is_said_in_default_locales_language(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    env = {"DATABASE_URL": f"sqlite:///{tmp_path / 'nodir' / 'x.db'}", "DEFAULT_LOCALE": "zh"}
    assert run_cli(["db", "upgrade"], env, monkeypatch, capsys) == (1, [
        f"crm-bot db upgrade：无法打开 sqlite:///{tmp_path / 'nodir' / 'x.db'} 的 SQLite 文件："
        "所在文件夹不存在或不可写。请先建好文件夹，或把 DATABASE_URL 指向可写的位置。"])


def test_db_upgrade_says_in_one_line_what_it_did_and_alembic_stays_quiet(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'crm.db'}"
    code, lines = run_cli(["db", "upgrade"], {"DATABASE_URL": url, "DEFAULT_LOCALE": "en"}, monkeypatch, capsys)
    assert code == 0 and len(lines) == 1 and lines[0].startswith(f"Set up the tables in {url} (version 0")
    code, lines = run_cli(["db", "upgrade"], {"DATABASE_URL": url, "DEFAULT_LOCALE": "zh"}, monkeypatch, capsys)
    assert code == 0 and len(lines) == 1 and lines[0].startswith(f"数据库 {url} 已是最新（版本 0")


def test_no_migration_log_lines_on_a_cli_verb_unless_log_level_is_debug(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "DATABASE_URL": f"sqlite:///{tmp_path / 'crm.db'}",
           "DEFAULT_LOCALE": "en",
           "LOG_LEVEL": "INFO", "TELEGRAM_BOT_TOKEN": "", "SLACK_BOT_TOKEN": ""}
    for verb in (["db", "upgrade"], ["export", "-"]):
        done = subprocess.run([sys.executable, "-m", "bot", *verb], cwd=tmp_path, env=env, capture_output=True,
                              text=True, timeout=60)
        assert "alembic" not in done.stderr and "INFO" not in done.stderr, done.stderr
    fresh = f"sqlite:///{tmp_path / 'fresh.db'}"  # one at head is not migrated: Alembic has nothing to say
    debug = subprocess.run([sys.executable, "-m", "bot", "db", "upgrade"], cwd=tmp_path,
                           env={**env, "LOG_LEVEL": "DEBUG", "DATABASE_URL": fresh}, capture_output=True, text=True,
                           timeout=60)
    assert "alembic.runtime.migration" in debug.stderr


# --- Slack settings that contradict each other ---------------------------------------------------------

@pytest.mark.parametrize(("env", "says"), [
    ({"SLACK_CLIENT_ID": "1.2", "SLACK_CLIENT_SECRET": ""}, "crm-bot run: installing through Slack's OAuth flow "
     "needs both SLACK_CLIENT_ID and SLACK_CLIENT_SECRET; SLACK_CLIENT_SECRET is not set. See .env.example."),
    ({"SLACK_CLIENT_ID": "1.2", "SLACK_CLIENT_SECRET": "s" * 32, "SLACK_BOT_TOKEN": "xoxb-1-2-" + "t" * 24},
     "crm-bot run: set either SLACK_BOT_TOKEN (one Slack workspace) or SLACK_CLIENT_ID and SLACK_CLIENT_SECRET "
     "(any number of workspaces, installed through /slack/install), not both."),
], ids=["half of OAuth", "token and OAuth"])
def test_contradicting_slack_settings_are_one_line_before_anything_starts(
    env: dict[str, str], says: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    env = {"SLACK_CLIENT_ID": "", "SLACK_CLIENT_SECRET": "", "DATABASE_URL": f"sqlite:///{tmp_path / 'crm.db'}",
           "DEFAULT_LOCALE": "en", **env}
    assert run_cli(["run"], env, monkeypatch, capsys) == (1, [says])
    assert not (tmp_path / "crm.db").exists()  # refused before the database was touched


def test_starting_loads_no_platform_library_and_no_search_library_until_needed() -> None:
    """Start-up to the first answer (issue 13): the console needs neither Telegram's nor Slack's libraries,
    nor aiohttp's server, and numpy and pypinyin load with the first search, not with the process."""
    heavy = ("telegram", "slack_bolt", "slack_sdk", "aiohttp", "numpy", "pypinyin", "matplotlib")
    probe = f"import sys, bot.cli; print(' '.join(m for m in {heavy!r} if m in sys.modules))"
    loaded = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
                            capture_output=True, text=True, timeout=60, check=True).stdout.split()
    assert loaded == []
