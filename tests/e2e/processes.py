"""Real `crm-bot run` processes and a real nginx in front of them, for the several-process tests
and bench/scale.py.

`BotProcess` runs `python -m bot run` (what the `crm-bot` script runs) with its settings in the
environment, in a folder of its own (no `.env` is read), its log in a file there. `Nginx` is the
distribution's nginx on 127.0.0.1 with a temporary configuration: one upstream of the processes,
and a request that fails on one (refused, 502, 503) is tried on the next, POSTs included: every
update and Slack event carries a redelivery key, so trying one again applies it once. Both are
stopped by the PID they were started with.
"""
from __future__ import annotations

import asyncio
import functools
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def cpu_seconds(pid: int) -> float:
    """CPU time process `pid` has used so far (user + system, from /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def wait_for(check, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


class BotProcess:
    """One `crm-bot run` serving on 127.0.0.1:`port`."""

    def __init__(self, name: str, folder: Path, env: dict[str, str]) -> None:
        self.name, self.folder = name, folder
        self.port = free_port()
        self.env = {**os.environ, "PYTHONPATH": str(ROOT), "HTTP_HOST": "127.0.0.1", "HTTP_PORT": str(self.port),
                    "LOG_LEVEL": "INFO", **env}
        self.process: subprocess.Popen[bytes] | None = None
        folder.mkdir(parents=True, exist_ok=True)
        self.log_path = folder / "bot.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "BotProcess":
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen([sys.executable, "-m", "bot", "run"], cwd=self.folder, env=self.env,
                                            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        return self

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    async def logged(self, text: str, timeout: float = 30, *, after: int = 0) -> None:
        """Wait until the log has more than `after` lines with `text` (a process that ended meanwhile
        fails at once)."""
        def seen() -> bool:
            if self.process is not None and self.process.poll() is not None:
                raise AssertionError(f"{self.name} ended with {self.process.returncode}:\n{self.log()[-3000:]}")
            return self.log().count(text) > after

        await wait_for(seen, timeout, f"{text!r} in the log of {self.name}")

    def cpu_seconds(self) -> float:
        assert self.process is not None
        return cpu_seconds(self.process.pid)

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        """kill -9: no clean-up of any kind, as when the machine or the OOM killer ends it."""
        if self.alive:
            assert self.process is not None
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.alive:
            assert self.process is not None
            os.kill(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()


NGINX_CONF = """\
{user}worker_processes 1;
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    upstream crm_bot {{
{servers}
        keepalive 32;
    }}
    server {{
        listen 127.0.0.1:{port};
        client_max_body_size 2m;
        location / {{
            proxy_pass http://crm_bot;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            proxy_next_upstream error timeout http_502 http_503 non_idempotent;
            proxy_connect_timeout 1s;
            proxy_read_timeout 30s;
        }}
    }}
}}
"""


#: Debian's way of keeping a freshly installed package's service from starting (it would listen on :80).
POLICY_RC = Path("/usr/sbin/policy-rc.d")


def _apt_install(package: str) -> str:
    """`apt-get install package` without starting its service; what went wrong, or ''."""
    placed = not POLICY_RC.exists()
    if placed:
        POLICY_RC.write_text("#!/bin/sh\nexit 101\n")
        POLICY_RC.chmod(0o755)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    try:
        for step in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", package]):
            done = subprocess.run(step, env=env, capture_output=True, text=True, timeout=300, check=False)
            if done.returncode:
                return f"{' '.join(step[:2])} failed: {(done.stderr or done.stdout).strip()[-200:]}"
        return ""
    except (OSError, subprocess.TimeoutExpired) as problem:
        return str(problem)
    finally:
        if placed:
            POLICY_RC.unlink(missing_ok=True)


class Nginx:
    """nginx on 127.0.0.1:`port` balancing over the processes' ports."""

    def __init__(self, folder: Path, upstream_ports: list[int], port: int | None = None) -> None:
        self.folder, self.upstream_ports = folder, upstream_ports
        self.port = port or free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @staticmethod
    @functools.cache
    def missing() -> str | None:
        """Why nginx can't be used here, or None: installed from Debian's packages first if it is not
        there and this is root on a Debian-like machine (its service kept from starting)."""
        if shutil.which("nginx"):
            return None
        if os.geteuid() != 0 or not shutil.which("apt-get"):
            return "nginx is not installed, and installing it needs root and apt-get (apt-get install nginx)"
        problem = _apt_install("nginx-light")
        if shutil.which("nginx"):
            return None
        return f"nginx is not installed and could not be installed here ({problem})"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> "Nginx":
        self.folder.mkdir(parents=True, exist_ok=True)
        servers = "\n".join(f"        server 127.0.0.1:{p} max_fails=1 fail_timeout=10s;" for p in self.upstream_ports)
        conf = self.folder / "nginx.conf"
        conf.write_text(NGINX_CONF.format(user="user root;\n" if os.geteuid() == 0 else "", dir=self.folder,
                                          servers=servers, port=self.port))
        self.process = subprocess.Popen(["nginx", "-p", str(self.folder), "-c", str(conf)], stdin=subprocess.DEVNULL,
                                        stdout=subprocess.DEVNULL, stderr=(self.folder / "stderr.log").open("wb"))
        await wait_for(self._listening, 10, "nginx to listen")
        return self

    def _listening(self) -> bool:
        if self.process is not None and self.process.poll() is not None:
            raise AssertionError(f"nginx ended: {(self.folder / 'stderr.log').read_text()[-2000:]}")
        with socket.socket() as probe:
            return probe.connect_ex(("127.0.0.1", self.port)) == 0

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGTERM)  # the master stops its workers
            self.process.wait(timeout=10)
