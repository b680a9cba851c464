"""Processes a harness starts, a private redis-server, and clean-up by pid.

Every process goes through `Procs.start`, which records its pid in `<logdir>/pids.txt` (one pid a
line) as soon as it exists, so a caller that only knows the log folder (a test whose harness
crashed) can still kill exactly those processes with `kill_recorded`.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port}")


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[-1].split()[0] != "Z"
    except OSError:
        return False


def start_time(pid: int) -> str:
    """The process's start time (clock ticks since boot): with the pid, it names one process
    even after the pid is reused."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[-1].split()[19]
    except (OSError, IndexError):
        return ""


def owned_child(pid: int, piddir: Path) -> bool:
    """A live Celery pool child that writes its pidfile into `piddir` (not a reused pid)."""
    if not _alive(pid):
        return False
    try:
        with open(f"/proc/{pid}/environ", "rb") as fh:
            env = fh.read().split(b"\0")
    except OSError:
        return False
    return f"COLLECTORS_WORKER_PIDFILE_DIR={piddir}".encode() in env


def record_pid(logdir: Path, pid: int) -> None:
    with open(Path(logdir) / "pids.txt", "a") as fh:
        fh.write(f"{pid} {start_time(pid)}\n")


def kill_recorded(logdir: Path) -> int:
    """SIGKILL every recorded process (and recorded worker child) still alive, checking that the
    pid still names the process that was started (start time, pidfile folder); returns how many."""
    logdir = Path(logdir)
    targets: list[int] = []
    with contextlib.suppress(OSError):
        for line in (logdir / "pids.txt").read_text().splitlines():
            parts = line.split()
            if parts and parts[0].isdigit():
                pid = int(parts[0])
                started = parts[1] if len(parts) > 1 else ""
                if _alive(pid) and started and start_time(pid) == started:
                    targets.append(pid)
    for f in logdir.glob("pids-*/child-*"):
        with contextlib.suppress(ValueError):
            pid = int(f.name.split("-", 1)[1])
            if owned_child(pid, f.parent):
                targets.append(pid)
    killed = 0
    for pid in set(targets):
        if pid != os.getpid():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGCONT)
                os.kill(pid, signal.SIGKILL)
                killed += 1
    return killed


class Procs:
    """Every process started through it, so exactly those can be stopped (by pid) at the end."""

    def __init__(self, logdir: Path):
        self.logdir = Path(logdir)
        self.logdir.mkdir(parents=True, exist_ok=True)
        self.all: list[subprocess.Popen] = []

    def start(self, name: str, cmd: list[str], env: dict) -> subprocess.Popen:
        log = open(self.logdir / f"{name}.log", "ab")  # noqa: SIM115
        proc = subprocess.Popen(
            cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        log.close()
        record_pid(self.logdir, proc.pid)
        self.all.append(proc)
        return proc

    def stop_all(self, grace: float = 10.0) -> None:
        for proc in self.all:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, signal.SIGCONT)
                    os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        for proc in self.all:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(max(0.1, deadline - time.monotonic()))
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(5)
        kill_recorded(self.logdir)


class RedisServer:
    """A private, non-persistent redis-server on a free loopback port (the runs' broker)."""

    def __init__(self, procs: Procs, port: int | None = None):
        self.procs, self.port = procs, port or free_port()
        self.proc: subprocess.Popen | None = None
        self.paused = False

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def start(self) -> None:
        self.proc = self.procs.start(
            "redis",
            [shutil.which("redis-server") or "redis-server", "--port", str(self.port), "--bind",
             "127.0.0.1", "--save", "", "--appendonly", "no"],
            dict(os.environ),
        )  # fmt: skip
        wait_port(self.port)

    def kill(self) -> None:
        """kill -9: the broker's state is gone (no persistence)."""
        if self.proc and self.proc.poll() is None:
            if self.paused:
                self.pause(False)
            self.proc.kill()
            self.proc.wait(5)

    def pause(self, on: bool) -> None:
        """SIGSTOP / SIGCONT: a silent peer (connections stay open, nothing answers)."""
        if self.proc and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGSTOP if on else signal.SIGCONT)
            self.paused = on
