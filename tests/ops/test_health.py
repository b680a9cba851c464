"""Liveness and readiness with the dependencies really going away: a PRIVATE PostgreSQL cluster
and a PRIVATE redis-server started by the test (never the shared ones) are stopped and started
again under a real gunicorn, a real gRPC server (grpc.health.v1) and a real Celery worker (its
heartbeat), and `manage.py healthcheck` agrees."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import grpc
import pytest
from django.test import Client
from grpc_health.v1 import health_pb2, health_pb2_grpc

from scripts.chaoslib.services import PrivatePostgres, PrivateRedis
from tests.ops.stack import free_port, http
from tests.support.capture import ROOT

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


def until(cond, timeout: float = 30.0, what: str = ""):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = cond()
        if last:
            return last
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what} (last: {last!r})")


@pytest.fixture
def private():
    pg, redis = PrivatePostgres(), PrivateRedis()
    pg.start()
    redis.start()
    try:
        yield pg, redis
    finally:
        redis.stop()
        pg.destroy()


def test_not_ready_while_postgres_or_redis_is_down_and_ready_again_after(stack, private):
    pg, redis = private
    env = {
        "DATABASE_URL": pg.url(),
        "CELERY_BROKER_URL": redis.url(0),
        "REDIS_URL": redis.url(1),
        "DB_CONNECT_TIMEOUT": "2",
        "HEALTH_CHECK_TIMEOUT_SECONDS": "0.5",
    }
    stack.extra.update(env)
    stack.start_web(workers=1)
    grpc_port = free_port()
    log = (stack.base / "grpc.log").open("wb")
    grpc_proc = subprocess.Popen(
        [sys.executable, "manage.py", "grpcserver", "--insecure", "--address",
         f"127.0.0.1:{grpc_port}"],
        cwd=ROOT, env=stack.workers.env(stack.extra), stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    stack.procs.append(grpc_proc)
    worker = stack.start_worker(pool="prefork", concurrency=1)
    channel = grpc.insecure_channel(f"127.0.0.1:{grpc_port}")
    health = health_pb2_grpc.HealthStub(channel)

    def web_ready():
        status, body = http("GET", stack.url + "/readyz", timeout=15)
        return status, body

    def grpc_status(service: str = ""):
        try:
            return health.Check(health_pb2.HealthCheckRequest(service=service), timeout=10).status
        except grpc.RpcError as exc:
            return exc.code()

    def probe(tier: str):
        done = stack.manage("healthcheck", tier, "--json", timeout=60)
        return done.returncode, json.loads(done.stdout.strip().splitlines()[-1])

    try:
        until(lambda: web_ready()[0] == 200, what="web ready")
        until(lambda: grpc_status() == SERVING, what="grpc SERVING")
        assert grpc_status("clarifai.api.V2") == SERVING
        until(lambda: probe("worker")[0] == 0, what="the worker's heartbeat")
        body = web_ready()[1]
        assert body["ready"] is True
        assert body["checks"]["workers"]["fresh"] >= 1

        # PostgreSQL stops: not ready everywhere; liveness unaffected
        pg.stop()
        _, body = until(lambda: (s := web_ready())[0] == 503 and s, what="web not ready")
        assert body["checks"]["database"]["ok"] is False
        assert body["checks"]["broker"]["ok"] is True
        assert "postgres" not in json.dumps(body).lower()  # no host or URL leaks
        assert http("GET", stack.url + "/healthz")[0] == 200
        until(lambda: grpc_status() == NOT_SERVING, what="grpc NOT_SERVING")
        code, result = probe("web")
        assert code == 1
        assert result["checks"]["database"]["ok"] is False

        pg.start()
        until(lambda: web_ready()[0] == 200, what="web ready after PostgreSQL returns")
        until(lambda: grpc_status() == SERVING, what="grpc SERVING again")
        assert probe("web")[0] == 0

        # Redis (broker and counters) stops
        redis.stop()
        _, body = until(lambda: (s := web_ready())[0] == 503 and s, what="not ready w/o Redis")
        assert body["checks"]["broker"]["ok"] is False
        assert body["checks"]["database"]["ok"] is True
        until(lambda: grpc_status() == NOT_SERVING, what="grpc NOT_SERVING w/o Redis")
        assert probe("worker")[0] == 1

        redis.start()
        until(lambda: web_ready()[0] == 200, what="web ready after Redis returns")
        until(lambda: grpc_status() == SERVING, what="grpc SERVING after Redis returns")
        until(lambda: probe("worker")[0] == 0, timeout=60, what="the heartbeat after Redis returns")

        # The worker dies: its heartbeat expires (three intervals) and its probe fails.
        worker.kill(sig=signal.SIGKILL)
        until(lambda: probe("worker")[0] == 1, what="the heartbeat to expire")
        assert web_ready()[0] == 200  # the web tier does not need a worker to serve
    finally:
        channel.close()


def test_healthz_is_always_ok_and_readyz_says_which_check_failed(db, settings):
    client = Client()
    assert client.get("/healthz").json() == {"status": "ok"}
    settings.HEALTH_CACHE_SECONDS = 0
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:1/0"  # nothing listens there
    response = client.get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["checks"]["database"] == {"ok": True}
    assert body["checks"]["broker"]["ok"] is False
    assert body["ready"] is False
    assert set(body["checks"]["workers"]) <= {"ok", "fresh", "error"}  # no host names in public
