"""`manage.py grpcserver` as a real process: TLS, graceful shutdown of in-flight calls, and
several processes on one port."""

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


def start_server(port: int, certs, extra_env: dict, args: tuple = ()) -> subprocess.Popen:
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
            *args,
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


def _children(pid: int) -> set[int]:
    kids = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        kids |= {int(c) for c in (task / "children").read_text().split()}
    return kids


def _list_apps(port: int, ca, secret: str) -> list[str]:
    """One call on a connection of its own (the kernel picks a server process per connection)."""
    from clarifai_grpc.channel.clarifai_channel import ClarifaiChannel

    channel = ClarifaiChannel.get_grpc_channel(
        base=f"localhost:{port}", root_certificates_path=str(ca)
    )
    try:
        r = service_pb2_grpc.V2Stub(channel).ListApps(
            service_pb2.ListAppsRequest(user_app_id=resources_pb2.UserAppIDSet(user_id="me")),
            metadata=(("authorization", f"Key {secret}"),),
            timeout=20,
        )
    finally:
        channel.close()
    assert r.status.code == SC.SUCCESS, r.status
    return [a.id for a in r.apps]


def test_processes_share_one_port_and_a_dead_one_is_replaced(transactional_db, dev_certs, alice):
    port = free_port()
    proc = start_server(port, dev_certs, {}, ("--processes", "2"))
    try:
        children = _children(proc.pid)
        assert len(children) == 2, children
        for _ in range(12):
            assert _list_apps(port, dev_certs["ca"], alice.secret) == ["app1"]
        # Every child listens on the port itself (SO_REUSEPORT); the parent only reserves it.
        assert all(_listens(child, port) for child in children)
        assert not _listens(proc.pid, port)

        victim = sorted(children)[0]
        os.kill(victim, signal.SIGKILL)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            now = _children(proc.pid)
            if len(now) == 2 and victim not in now and all(_listens(c, port) for c in now):
                break
            time.sleep(0.2)
        else:
            raise AssertionError(f"no replacement for {victim}: {_children(proc.pid)}")
        for _ in range(6):
            assert _list_apps(port, dev_certs["ca"], alice.secret) == ["app1"]

        last = _children(proc.pid)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
        for child in last:
            assert not Path(f"/proc/{child}").exists() or _zombie(child)
    finally:
        if proc.poll() is None:
            proc.kill()


def test_processes_on_a_taken_port_fail_clearly(dev_certs):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        out = subprocess.run(
            [sys.executable, "manage.py", "grpcserver", "--address", f"127.0.0.1:{port}",
             "--cert", str(dev_certs["cert"]), "--key", str(dev_certs["key"]), "--processes", "2"],
            cwd=ROOT, env={**os.environ, "COLLECTORS_DEV": "1"}, capture_output=True, text=True,
            timeout=60,
        )  # fmt: skip
    assert out.returncode != 0
    assert "Address already in use" in out.stderr, out.stderr[-2000:]


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[1].split()[0] == "Z"
    except OSError:
        return True


def _listens(pid: int, port: int) -> bool:
    """Does process `pid` hold a listening socket on `port` (its fds against /proc/net/tcp)?"""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            cols = line.split()
            if int(cols[1].split(":")[1], 16) == port and cols[3] == "0A" and cols[9] in inodes:
                return True
    return False
