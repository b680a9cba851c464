"""A host's processes for the ops tests: gunicorn (with the ops gunicorn hooks), the capture
agent and Celery workers, sharing one Prometheus multiprocess folder and one spool, against the
test database. Everything started is stopped by the fixture."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.support.capture import ROOT, Agents, Workers


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http(method: str, url: str, body=None, headers: dict | None = None, timeout: float = 30):
    """(status, parsed JSON or text) of one request."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            raw, status = resp.read(), resp.status
    except urllib.error.HTTPError as exc:
        raw, status = exc.read(), exc.code
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, raw.decode(errors="replace")


class Stack:
    def __init__(self, base: Path, workers: Workers, env: dict):
        self.base = base
        self.workers = workers
        self.extra = env
        self.web: subprocess.Popen | None = None
        self.procs: list[subprocess.Popen] = []
        self.port = 0
        self.agents = Agents(workers, Path(env["COLLECTORS_SPOOL_DIR"]))

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start_web(self, workers: int = 2, env: dict | None = None) -> None:
        self.port = free_port()
        log = (self.base / f"web-{self.port}.log").open("wb")
        cmd = [
            sys.executable, "-m", "gunicorn", "-c", "python:collectors_module.ops.gunicorn",
            "collectors_module.wsgi", "-w", str(workers), "--threads", "2",
            "-b", f"127.0.0.1:{self.port}", "--log-level", "warning",
        ]  # fmt: skip
        self.web = subprocess.Popen(
            cmd,
            cwd=ROOT,
            env=self.workers.env({**self.extra, **(env or {})}),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.procs.append(self.web)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            assert self.web.poll() is None, self.web_log()
            time.sleep(0.1)
        raise TimeoutError("gunicorn did not listen:\n" + self.web_log())

    def web_log(self) -> str:
        return (self.base / f"web-{self.port}.log").read_text(errors="replace")[-4000:]

    def start_agent(self):
        return self.agents.start(env=self.extra)

    def start_worker(self, **kw):
        return self.workers.start(env={**self.extra, **kw.pop("env", {})}, **kw)

    def manage(self, *args: str, env: dict | None = None, timeout: float = 60):
        return subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=ROOT,
            env=self.workers.env({**self.extra, **(env or {})}),
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def stop(self) -> None:
        self.agents.stop_all()
        self.workers.stop_all()
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()


@pytest.fixture
def stack(celery_workers, tmp_path):
    metrics_dir = tmp_path / "prom"
    metrics_dir.mkdir()
    env = {
        "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
        "COLLECTORS_SPOOL_DIR": str(tmp_path / "spool"),
        "COLLECTORS_CAPTURE_HANDOFF": "spool",
        "COLLECTORS_COUNTER_FLUSH_SECONDS": "0.3",
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "HEALTH_HEARTBEAT_SECONDS": "1",
        "HEALTH_CACHE_SECONDS": "0",
        # a loaded machine must not make the rate limiter fail open (the test counts its drops)
        "COLLECTORS_LIMITER_TIMEOUT_SECONDS": "2",
    }
    s = Stack(tmp_path, celery_workers, env)
    yield s
    s.stop()
