"""Fixtures for the capture path: real Celery worker and capture agent subprocesses, collectors.

`celery_workers` starts `celery -A collectors_module worker` processes against the TEST database
(DATABASE_URL built from `connection.settings_dict`) and the broker of this test run, records the
main and child pids (children through the `worker_process_init` pidfile hook in
`capture.tasks`), and kills whatever it started at teardown. `capture_agents` does the same for
`manage.py captureagent`, and `spool_mode` makes this test process hand its captures over through
a spool folder of its own (as a server does) instead of inserting them itself. Tests that use
them need committed rows, so they depend on `transactional_db`.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from urllib.parse import quote

import pytest

ROOT = Path(__file__).resolve().parents[2]

# Short delivery timings so recovery fits in a test (reliability.md §3.1: fault-suite values).
WORKER_TIMINGS = {
    "CELERY_VISIBILITY_TIMEOUT": "20",
    "CELERY_TASK_TIME_LIMIT": "8",
    "CELERY_TASK_SOFT_TIME_LIMIT": "6",
    "COLLECTORS_LEASE_SECONDS": "10",
    "COLLECTORS_RETRY_BASE_SECONDS": "1",
    "COLLECTORS_RETRY_MAX_SECONDS": "5",
}


def test_database_url() -> str:
    """postgres://… URL of the database this test run uses (the test_ one)."""
    from django.db import connection

    sd = connection.settings_dict
    user = quote(sd.get("USER") or "", safe="")
    password = quote(sd.get("PASSWORD") or "", safe="")
    auth = f"{user}:{password}@" if password else (f"{user}@" if user else "")
    host = sd.get("HOST") or "127.0.0.1"
    port = sd.get("PORT") or "5432"
    return f"postgres://{auth}{host}:{port}/{sd['NAME']}"


test_database_url.__test__ = False  # a helper, not a test


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie child of ours still answers kill(0); check its state
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


class Worker:
    """One `celery worker` subprocess."""

    def __init__(self, proc: subprocess.Popen, piddir: Path, log_path: Path, name: str):
        self.proc = proc
        self.piddir = piddir
        self.log_path = log_path
        self.name = name

    @property
    def pid(self) -> int:
        return self.proc.pid

    def child_pids(self) -> list[int]:
        pids = []
        for f in self.piddir.glob("child-*"):
            pid = int(f.name.split("-", 1)[1])
            if _alive(pid):
                pids.append(pid)
        return sorted(pids)

    def is_ready(self) -> bool:
        return (self.piddir / f"main-{self.pid}").exists()

    def wait_ready(self, timeout: float = 30.0) -> Worker:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.is_ready():
                return self
            if self.proc.poll() is not None:
                raise RuntimeError(f"worker {self.name} exited early:\n{self.log()}")
            time.sleep(0.05)
        raise TimeoutError(f"worker {self.name} not ready after {timeout}s:\n{self.log()}")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def wait_exit(self, timeout: float = 30.0) -> int | None:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def kill(self, *, children: bool = True, sig: int = signal.SIGKILL) -> list[int]:
        """Signal the main process (and its pool children); returns the pids signalled."""
        pids = [*self.child_pids()] if children else []
        if self.alive():
            pids.insert(0, self.pid)
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        if sig == signal.SIGKILL:
            self.wait_exit(10)
        return pids

    def kill_children(self, sig: int = signal.SIGKILL) -> list[int]:
        pids = self.child_pids()
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        return pids

    def stop(self, timeout: float = 10.0) -> None:
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
            if self.wait_exit(timeout) is None:
                self.kill()
        for pid in self.child_pids():  # orphans after a main-process kill
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    def log(self, tail: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-tail:]
        except OSError:
            return ""


class Workers:
    """Starts and tracks worker subprocesses; everything started is killed at teardown."""

    def __init__(self, base: Path, broker_url: str, redis_url: str):
        self.base = base
        self.broker_url = broker_url
        self.redis_url = redis_url
        self.started: list[Worker] = []

    def env(self, extra: dict | None = None) -> dict:
        from django.conf import settings

        env = {
            k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "COLLECTORS_FAULT"))
        }
        env.update(WORKER_TIMINGS)
        env.update(
            {
                "COLLECTORS_DEV": "1",
                "DJANGO_SETTINGS_MODULE": "collectors_module.settings",
                "DATABASE_URL": test_database_url(),
                "CELERY_BROKER_URL": self.broker_url,
                "REDIS_URL": self.redis_url,
                "MEDIA_ROOT": str(settings.MEDIA_ROOT),
                "DB_APPLICATION_NAME": "collectors-worker",
                "PYTHONUNBUFFERED": "1",
            }
        )
        env.update({k: str(v) for k, v in (extra or {}).items()})
        return env

    def start(
        self,
        *,
        pool: str = "solo",
        concurrency: int = 1,
        env: dict | None = None,
        queues: str = "celery",
        wait: bool = True,
        loglevel: str = "WARNING",
    ) -> Worker:
        name = f"w{len(self.started) + 1}-{uuid.uuid4().hex[:6]}"
        piddir = self.base / name
        piddir.mkdir(parents=True)
        log_path = self.base / f"{name}.log"
        cmd = [
            sys.executable, "-m", "celery", "-A", "collectors_module", "worker",
            "--pool", pool, "--concurrency", str(concurrency), "-Q", queues,
            "--hostname", f"{name}@%h", "--loglevel", loglevel,
            "--without-gossip", "--without-mingle", "--without-heartbeat",
        ]  # fmt: skip
        with open(log_path, "wb") as out:
            proc = subprocess.Popen(
                cmd,
                cwd=ROOT,
                env=self.env({"COLLECTORS_WORKER_PIDFILE_DIR": str(piddir), **(env or {})}),
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        worker = Worker(proc, piddir, log_path, name)
        self.started.append(worker)
        if wait:
            worker.wait_ready()
        return worker

    def stop_all(self) -> None:
        for worker in self.started:
            worker.stop()


def flush_redis(url: str) -> None:
    import redis

    with contextlib.suppress(redis.RedisError):
        redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2).flushdb()


@pytest.fixture
def celery_workers(transactional_db, tmp_path):
    """A `Workers` manager: `celery_workers.start(pool="prefork", concurrency=2)`."""
    from django.conf import settings

    broker = settings.CELERY_BROKER_URL
    flush_redis(broker)  # this run's own broker db: no messages left over from earlier tests
    manager = Workers(tmp_path / "workers", broker, settings.REDIS_URL)
    manager.base.mkdir()
    yield manager
    manager.stop_all()


class Agent:
    """One `manage.py captureagent` subprocess on a spool folder."""

    def __init__(self, proc: subprocess.Popen, log_path: Path, spool: Path):
        self.proc, self.log_path, self.spool = proc, log_path, spool

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def wait_serving(self, timeout: float = 30.0) -> Agent:
        """Until it holds the spool's lock and beats (or raise with its log)."""
        from collectors_module.capture import spool

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if spool.agent_alive(self.spool, 2.0) and "serving" in self.log():
                return self
            if self.proc.poll() is not None:
                raise RuntimeError(f"capture agent exited early:\n{self.log()}")
            time.sleep(0.05)
        raise TimeoutError(f"capture agent not serving after {timeout}s:\n{self.log()}")

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.alive():
            os.kill(self.pid, sig)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(10)

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-6000:]
        except OSError:
            return ""


class Agents:
    def __init__(self, workers: Workers, spool: Path):
        self.workers = workers
        self.spool = spool
        self.started: list[Agent] = []

    def start(self, *, env: dict | None = None, wait: bool = True) -> Agent:
        log_path = self.workers.base / f"agent-{len(self.started) + 1}.log"
        with open(log_path, "wb") as out:
            proc = subprocess.Popen(
                [sys.executable, "manage.py", "captureagent", "--spool", str(self.spool)],
                cwd=ROOT,
                env=self.workers.env(
                    {"LOG_LEVEL": "INFO", "DB_APPLICATION_NAME": "collectors-agent", **(env or {})}
                ),
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        agent = Agent(proc, log_path, self.spool)
        self.started.append(agent)
        if wait:
            agent.wait_serving()
        return agent

    def stop_all(self) -> None:
        for agent in self.started:
            if agent.alive():
                agent.kill(signal.SIGTERM)
            agent.kill()


@pytest.fixture
def spool_mode(settings, tmp_path):
    """This process hands captures over through its own spool folder (returned)."""
    from collectors_module.capture import spool

    folder = tmp_path / "spool"
    settings.COLLECTORS_CAPTURE_HANDOFF = "spool"
    settings.COLLECTORS_SPOOL_DIR = folder
    yield folder
    spool.close_writer()


@pytest.fixture
def capture_agents(celery_workers, spool_mode):
    """`capture_agents.start()`: a real capture agent process on this test's spool folder."""
    manager = Agents(celery_workers, spool_mode)
    yield manager
    manager.stop_all()


@pytest.fixture
def run_sweep():
    """Run the sweeper in the test process (as beat would), without the quiet period."""
    from collectors_module.capture.sweeper import sweep

    def run(**kw):
        kw.setdefault("min_age", 0)
        return sweep(**kw)

    return run


# -- collectors and captures ------------------------------------------------------------------

SENTIMENT = {
    "model_user_id": "builtin",
    "model_app_id": "main",
    "model_id": "sentiment",
    "model_version_id": "996e3c70d6372b1e7e3c10875ebd2b8b",
}


@pytest.fixture
def make_collector():
    """Create a collector through the service: `make_collector(tenant, id="c1", **fields)`."""
    from clarifai_grpc.grpc.api import resources_pb2

    from collectors_module.collectors.services import collector_create
    from collectors_module.core.protojson import from_dict

    def make(
        tenant,
        collector_id: str = "c1",
        *,
        caller_user_id: str | None = None,
        source=None,
        key=None,
        sample: float = 1.0,
        collect_outputs: bool = True,
        **fields,
    ):
        body = {
            "id": collector_id,
            "pre_queue_random_sample": sample,
            "collect_outputs": collect_outputs,
            "collector_source": {
                "api_post_model_outputs_collector_source": {
                    **(source or SENTIMENT),
                    "post_inputs_key_id": (key or tenant.key).public_id,
                    "caller_user_id": tenant.user.username
                    if caller_user_id is None
                    else caller_user_id,
                }
            },
            **fields,
        }
        pb = from_dict(body, resources_pb2.Collector)
        return collector_create(app=tenant.app, actor=tenant.user, collector_pb=pb)

    return make


def predict_text(api, tenant_secret: str, text: str, source: dict | None = None) -> dict:
    """PostModelOutputs on the source model over REST, as a client would."""
    s = source or SENTIMENT
    path = (
        f"/v2/users/{s['model_user_id']}/apps/{s['model_app_id']}/models/{s['model_id']}"
        f"/versions/{s['model_version_id']}/outputs"
    )
    return api.post(path, {"inputs": [{"data": {"text": {"raw": text}}}]}, key=tenant_secret)
