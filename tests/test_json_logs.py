"""LOG_FORMAT=json: one JSON object per line, traceback included, secrets still written out."""
from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

from bot import logs

ROOT = Path(__file__).resolve().parents[1]
KEYS = {"time", "level", "logger", "message"}


def test_a_record_with_a_traceback_is_one_parseable_line_without_the_secret() -> None:
    secret = "xoxb-json-line-secret-0123456789"
    logs.protect(secret)
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logs.JsonLines())
    log = logging.getLogger("tests.json_logs")
    log.addHandler(handler)
    log.propagate = False
    try:
        try:
            raise RuntimeError(f"the token {secret} was refused\nsecond line")
        except RuntimeError:
            log.exception("sending to 王芳 failed (%s)", "chat 42")
        log.warning("plain")
    finally:
        log.removeHandler(handler)
    first, second = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert first["level"] == "ERROR" and first["logger"] == "tests.json_logs"
    assert first["message"] == "sending to 王芳 failed (chat 42)"
    assert first["exception"].startswith("Traceback") and "RuntimeError: the token [secret] was refused" in \
        first["exception"]
    assert secret not in stream.getvalue()
    assert first["time"].endswith("+00:00") and "T" in first["time"]
    assert set(second) == KEYS and second["message"] == "plain"


def test_log_format_json_makes_every_line_of_a_cli_verb_json(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "DATABASE_URL": f"sqlite:///{tmp_path / 'crm.db'}",
           "DEFAULT_LOCALE": "en", "LOG_LEVEL": "DEBUG", "LOG_FORMAT": "json"}
    done = subprocess.run([sys.executable, "-m", "bot", "db", "upgrade"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stderr.splitlines()]
    assert lines and all(KEYS <= set(line) for line in lines)
    assert any(line["logger"] == "alembic.runtime.migration" for line in lines)


def test_an_unknown_log_format_is_one_line_saying_which_setting(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "DATABASE_URL": f"sqlite:///{tmp_path / 'crm.db'}",
           "DEFAULT_LOCALE": "en", "LOG_FORMAT": "xml"}
    done = subprocess.run([sys.executable, "-m", "bot", "db", "upgrade"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and "LOG_FORMAT" in done.stderr and len(done.stderr.splitlines()) == 1
