"""`manage.py grpcserver` as a real process: TLS, and graceful shutdown of in-flight calls."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from clarifai_grpc.grpc.api import resources_pb2, service_pb2, service_pb2_grpc
from clarifai_grpc.grpc.api.status import status_code_pb2 as SC
from django.db import connection

ROOT = Path(__file__).resolve().parents[3]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def database_url() -> str:
    d = connection.settings_dict
    return f"postgres://{d['USER'] or 'postgres'}@{d['HOST'] or '127.0.0.1'}:{d['PORT'] or 5432}/{d['NAME']}"


def start_server(port: int, certs, extra_env: dict) -> subprocess.Popen:
    env = {
        **os.environ,
        "COLLECTORS_DEV": "1",
        "DATABASE_URL": database_url(),
        "DJANGO_SETTINGS_MODULE": "collectors_module.settings",
        **extra_env,
    }
    proc = subprocess.Popen(
        [
            sys.executable,
            "manage.py",
            "grpcserver",
            "--address",
            f"127.0.0.1:{port}",
            "--cert",
            str(certs["cert"]),
            "--key",
            str(certs["key"]),
            "--grace",
            "10",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    line = proc.stdout.readline()
    assert "listening" in line, line
    return proc


def test_sigterm_lets_in_flight_call_finish(transactional_db, dev_certs, alice):
    from clarifai_grpc.channel.clarifai_channel import ClarifaiChannel

    port = free_port()
    # The crash point makes every call take 2 s, so the call is surely in flight at SIGTERM.
    proc = start_server(
        port,
        dev_certs,
        {"COLLECTORS_FAULTS": "grpc_before_dispatch:sleep", "COLLECTORS_FAULT_SLEEP": "2"},
    )
    try:
        channel = ClarifaiChannel.get_grpc_channel(
            base=f"localhost:{port}", root_certificates_path=str(dev_certs["ca"])
        )
        stub = service_pb2_grpc.V2Stub(channel)
        result = {}

        def call():
            result["r"] = stub.ListApps(
                service_pb2.ListAppsRequest(user_app_id=resources_pb2.UserAppIDSet(user_id="me")),
                metadata=(("authorization", f"Key {alice.secret}"),),
                timeout=20,
            )

        t = threading.Thread(target=call)
        t.start()
        time.sleep(0.7)
        proc.send_signal(signal.SIGTERM)
        t.join(20)
        assert result["r"].status.code == SC.SUCCESS
        assert [a.id for a in result["r"].apps] == ["app1"]
        assert proc.wait(15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
