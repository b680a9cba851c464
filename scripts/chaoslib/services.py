"""Private services a test or a harness starts and may stop at will: a PostgreSQL cluster
(initdb into a temporary folder, run as the `postgres` user when we are root), a redis-server,
and moto's standalone S3 server. Never the machine's shared services.

Each takes an optional `prefix` (e.g. `["ip", "netns", "exec", "db"]`) to run inside a network
namespace, and a `host` to bind.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _as_postgres() -> list[str]:
    """Prefix that runs a command as `postgres` (PostgreSQL refuses to run as root)."""
    if os.geteuid() != 0:
        return []
    return [shutil.which("runuser") or "runuser", "-u", "postgres", "--"]


def _pg_bin(name: str) -> str:
    """A client program of the same PostgreSQL as `postgres` (Debian's wrappers in /usr/bin pick
    a cluster of their own)."""
    server = shutil.which("postgres")
    if server:
        beside = Path(os.path.realpath(server)).parent / name
        if beside.exists():
            return str(beside)
    return shutil.which(name) or name


def _reachable(host: str, port: int, prefix: list[str]) -> bool:
    if prefix:  # inside a namespace: ask from there
        code = subprocess.run(
            [*prefix, sys.executable, "-c",
             f"import socket; socket.create_connection(({host!r}, {port}), 0.5)"],
            capture_output=True,
        ).returncode  # fmt: skip
        return code == 0
    with contextlib.suppress(OSError), socket.create_connection((host, port), 0.5):
        return True
    return False


class PrivatePostgres:
    """A throw-away PostgreSQL cluster: trust auth, no fsync (tests only)."""

    def __init__(self, port: int | None = None, host: str = "127.0.0.1", prefix=None, log=None):
        self.port = port or free_port()
        self.host = host
        self.prefix = list(prefix or [])
        self.base = Path(tempfile.mkdtemp(prefix="collectors-pg-"))
        self.data = self.base / "data"
        self.log_path = Path(log) if log else self.base / "postgres.log"
        self.proc: subprocess.Popen | None = None
        if os.geteuid() == 0:
            pg = pwd.getpwnam("postgres")
            os.chown(self.base, pg.pw_uid, pg.pw_gid)
        subprocess.run(
            [*_as_postgres(), _pg_bin("initdb"), "-D", str(self.data),
             "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8"],
            check=True, capture_output=True,
        )  # fmt: skip
        # Trust on the private addresses too (the cluster lives in a namespace of its own).
        with open(self.data / "pg_hba.conf", "a") as fh:
            fh.write("host all all 0.0.0.0/0 trust\nhost all all ::/0 trust\n")

    def url(self, db: str = "postgres") -> str:
        return f"postgres://postgres@{self.host}:{self.port}/{db}"

    def start(self, timeout: float = 30.0) -> None:
        out = open(self.log_path, "ab")  # noqa: SIM115 - the server's log for its lifetime
        self.proc = subprocess.Popen(
            [*self.prefix, *_as_postgres(), shutil.which("postgres") or "postgres",
             "-D", str(self.data), "-p", str(self.port), "-h", self.host, "-k", str(self.base),
             "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
             "-c", "max_connections=200", "-c", "shared_buffers=32MB"],
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("postgres exited:\n" + self.log_path.read_text()[-2000:])
            if _reachable(self.host, self.port, self.prefix) and self._accepts():
                return
            time.sleep(0.2)
        raise RuntimeError("postgres did not start:\n" + self.log_path.read_text()[-2000:])

    def _accepts(self) -> bool:
        code = subprocess.run(
            [*self.prefix, _pg_bin("pg_isready"), "-h", self.host,
             "-p", str(self.port), "-U", "postgres", "-t", "1"],
            capture_output=True,
        ).returncode  # fmt: skip
        return code == 0

    def createdb(self, name: str) -> None:
        done = subprocess.run(
            [*self.prefix, _pg_bin("createdb"), "-h", self.host,
             "-p", str(self.port), "-U", "postgres", name],
            capture_output=True, text=True,
        )  # fmt: skip
        if done.returncode != 0:
            raise RuntimeError(f"createdb {name}: {done.stderr.strip()}")

    def stop(self) -> None:
        """Fast shutdown (SIGINT): sessions are cut, the cluster stays on disk."""
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGINT)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        self.proc = None

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self.base, ignore_errors=True)


class PrivateRedis:
    """A private, non-persistent redis-server."""

    def __init__(self, port: int | None = None, host: str = "127.0.0.1", prefix=None):
        self.port = port or free_port()
        self.host = host
        self.prefix = list(prefix or [])
        self.proc: subprocess.Popen | None = None

    def url(self, db: int = 0) -> str:
        return f"redis://{self.host}:{self.port}/{db}"

    def start(self, timeout: float = 15.0) -> None:
        self.proc = subprocess.Popen(
            [*self.prefix, shutil.which("redis-server") or "redis-server", "--port",
             str(self.port), "--bind", self.host, "--save", "", "--appendonly", "no",
             "--protected-mode", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if _reachable(self.host, self.port, self.prefix):
                return
            time.sleep(0.1)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        self.proc = None


class MotoS3:
    """moto's standalone server (an S3-compatible endpoint) on a free port."""

    def __init__(self, port: int | None = None, host: str = "127.0.0.1", prefix=None, log=None):
        self.port = port or free_port()
        self.host = host
        self.prefix = list(prefix or [])
        self.log_path = log
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 30.0) -> None:
        out = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL  # noqa: SIM115
        self.proc = subprocess.Popen(
            [*self.prefix, sys.executable, "-m", "moto.server", "-H", self.host, "-p",
             str(self.port)],
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("moto server exited")
            if _reachable(self.host, self.port, self.prefix):
                return
            time.sleep(0.1)
        raise RuntimeError("moto server did not start")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        self.proc = None
