"""`crm-bot run` as a person starts it: a refused Telegram token is one line, never a traceback or the token."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

WRONG_TOKEN = "123456789:AAWrongWrongWrongWrongWrongWrong12345"


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
    env = {**os.environ, "TELEGRAM_BOT_TOKEN": WRONG_TOKEN, "TELEGRAM_API_BASE_URL": refusing_bot_api,
           "DATABASE_URL": f"sqlite:///{tmp_path / 'crm.db'}", "HTTP_HOST": "127.0.0.1",
           "HTTP_PORT": str(free_port()), "SLACK_BOT_TOKEN": "", "LOG_LEVEL": "INFO"}
    done = subprocess.run([sys.executable, "-m", "bot", "run"], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=60)
    output = done.stdout + done.stderr
    assert done.returncode == 1, output
    assert "crm-bot run: TELEGRAM_BOT_TOKEN was refused by Telegram (401 Unauthorized)" in done.stderr.splitlines()
    assert "Traceback" not in output
    assert WRONG_TOKEN not in output and WRONG_TOKEN.split(":")[1] not in output
