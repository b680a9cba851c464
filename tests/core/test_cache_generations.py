"""Caches every process can trust: a key revoked, or a model version added, through one process is
seen by another process (a real gunicorn and a real gRPC server) within a second; and the change
triggers mark exactly the tables that changed."""

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
from clarifai_grpc.grpc.api import resources_pb2, service_pb2, service_pb2_grpc
from django.db import connection

from collectors_module.accounts.services import key_create, key_revoke
from collectors_module.core import generations
from tests.support.capture import ROOT

pytestmark = pytest.mark.django_db(transaction=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(tmp_path: Path, cmd: list[str], port: int, procs: list) -> subprocess.Popen:
    from tests.support.capture import Workers

    env = Workers(tmp_path, "redis://127.0.0.1:1/0", "redis://127.0.0.1:1/0").env(
        {"CACHE_CHECK_SECONDS": "0.5", "ALLOWED_HOSTS": "127.0.0.1,localhost"}
    )
    log = (tmp_path / f"server-{port}.log").open("wb")
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    procs.append(proc)  # stopped by the fixture even if it never listens
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return proc
        assert proc.poll() is None, (tmp_path / f"server-{port}.log").read_text()[-3000:]
        time.sleep(0.1)
    raise TimeoutError("server did not listen")


@pytest.fixture
def servers(tmp_path):
    rest_port, grpc_port = free_port(), free_port()
    procs: list[subprocess.Popen] = []
    try:
        serve(
            tmp_path,
            [sys.executable, "-m", "gunicorn", "collectors_module.wsgi", "-w", "2",
             "--threads", "2", "-b", f"127.0.0.1:{rest_port}", "--log-level", "warning"],
            rest_port,
            procs,
        )  # fmt: skip
        serve(
            tmp_path,
            [sys.executable, "manage.py", "grpcserver", "--insecure", "--address",
             f"127.0.0.1:{grpc_port}"],
            grpc_port,
            procs,
        )  # fmt: skip
        from clarifai_grpc.channel.clarifai_channel import ClarifaiChannel

        channel = ClarifaiChannel.get_insecure_grpc_channel(base="127.0.0.1", port=grpc_port)
        try:
            yield f"http://127.0.0.1:{rest_port}", service_pb2_grpc.V2Stub(channel)
        finally:
            channel.close()
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()


def rest_predict(base: str, secret: str, path: str) -> dict:
    body = json.dumps({"inputs": [{"data": {"text": {"raw": "I love this"}}}]}).encode()
    req = urllib.request.Request(
        base + path,
        data=body,
        headers={"Authorization": f"Key {secret}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return json.load(resp)
    except urllib.error.HTTPError as exc:
        return json.load(exc)


def grpc_predict(stub, secret: str, user_id: str, app_id: str, model_id: str):
    return stub.PostModelOutputs(
        service_pb2.PostModelOutputsRequest(
            user_app_id=resources_pb2.UserAppIDSet(user_id=user_id, app_id=app_id),
            model_id=model_id,
            inputs=[resources_pb2.Input(data=resources_pb2.Data(text={"raw": "I love this"}))],
        ),
        metadata=(("authorization", f"Key {secret}"),),
        timeout=10,
    )


def until(predicate, timeout: float = 10.0) -> float:
    """Seconds until `predicate()` holds (polled every 20 ms); raises after `timeout`."""
    started = time.monotonic()
    while not predicate():
        assert time.monotonic() - started < timeout, "never happened"
        time.sleep(0.02)
    return time.monotonic() - started


def test_a_key_revoked_in_this_process_is_refused_by_the_servers_within_a_second(alice, servers):
    base, stub = servers
    key = key_create(owner=alice.user, scopes=["All"], description="to revoke")
    path = "/v2/users/builtin/apps/main/models/sentiment/outputs"
    for _ in range(5):  # cached in every gunicorn worker and in the gRPC server
        assert rest_predict(base, key.secret, path)["status"]["code"] == 10000
        assert grpc_predict(stub, key.secret, "builtin", "main", "sentiment").status.code == 10000
    key_revoke(owner=alice.user, key_public_id=key.key.public_id)
    # refused by every gunicorn worker: several requests in a row, all refused
    rest_s = until(
        lambda: all(
            rest_predict(base, key.secret, path)["status"]["code"] == 11008 for _ in range(6)
        )
    )
    grpc_s = until(
        lambda: grpc_predict(stub, key.secret, "builtin", "main", "sentiment").status.code == 11008
    )
    print(
        f"revocation seen by gunicorn after {rest_s:.2f} s, by the gRPC server after {grpc_s:.2f} s"
    )
    assert rest_s < 1.0
    assert grpc_s < 1.0


def test_a_new_model_version_is_used_by_the_servers_within_a_second(alice, servers):
    from collectors_module.inference.services import model_create, model_version_create

    base, stub = servers
    model = model_create(
        app=alice.app,
        model_pb=resources_pb2.Model(
            id="mood",
            model_type_id="text-classifier",
            model_version=resources_pb2.ModelVersion(id="v1" + "0" * 30),
            metadata={"runner": "builtin:sentiment"},
        ),
    )
    path = f"/v2/users/alice/apps/{alice.app.public_id}/models/mood/outputs"

    def rest_version() -> str:
        return rest_predict(base, alice.secret, path)["outputs"][0]["model"]["model_version"]["id"]

    def grpc_version() -> str:
        r = grpc_predict(stub, alice.secret, "alice", alice.app.public_id, "mood")
        return r.outputs[0].model.model_version.id

    for _ in range(5):
        assert rest_version() == "v1" + "0" * 30
        assert grpc_version() == "v1" + "0" * 30
    model_version_create(model=model, version_pb=resources_pb2.ModelVersion(id="v2" + "0" * 30))
    rest_s = until(lambda: all(rest_version() == "v2" + "0" * 30 for _ in range(6)))
    grpc_s = until(lambda: grpc_version() == "v2" + "0" * 30)
    print(
        f"new version used by gunicorn after {rest_s:.2f} s, by the gRPC server after {grpc_s:.2f} s"
    )
    assert rest_s < 1.0
    assert grpc_s < 1.0


def _generations() -> dict[str, int]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT topic, value FROM core_generation")
        return dict(cursor.fetchall())


def test_triggers_mark_the_changed_table_and_ignore_last_used_at(alice):
    from collectors_module.accounts.models import Key

    generations.check(force=True)  # what this process has seen so far
    before = _generations()
    Key.objects.filter(pk=alice.key.pk).update(last_used_at="2026-01-01T00:00:00Z")
    assert _generations().get("accounts_key") == before.get("accounts_key")
    assert generations.check(force=True) == frozenset()
    Key.objects.filter(pk=alice.key.pk).update(description="changed elsewhere")
    after = _generations()
    assert after["accounts_key"] != before.get("accounts_key")
    assert after.get("applications_app") == before.get("applications_app")
    assert generations.check(force=True) == frozenset({"accounts_key"})
