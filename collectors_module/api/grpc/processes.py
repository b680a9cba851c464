"""Several gRPC server processes on one port (`grpcserver --processes N`).

One Python process serves gRPC on one core (its GIL); a host with more cores runs N of them, as
gunicorn runs N REST workers. The parent reserves the port (binding it with SO_REUSEPORT, never
listening, so port 0 resolves to one port for all), starts N children of the same command that
bind it with SO_REUSEPORT (the kernel spreads new connections over them), forwards SIGTERM and
SIGINT to them and restarts a child that dies (at most once a second). It exits when every child
has stopped after a stop signal: 0 if they all stopped cleanly.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable

log = logging.getLogger("collectors.grpc")

RESTART_MIN_SECONDS = 1.0


def reserve_port(address: str) -> tuple[socket.socket, int]:
    """Bind (without listening) HOST:PORT with SO_REUSEPORT; returns the socket and the port."""
    host, _, port = address.rpartition(":")
    host = host.strip("[]") or "0.0.0.0"
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind((host, int(port)))
    except OSError:
        sock.close()
        raise
    return sock, sock.getsockname()[1]


def child_command(address: str, child_args: list[str]) -> list[str]:
    """The command line of one child: this same management command, one process, reusing the port."""
    script = os.path.abspath(sys.argv[0]) if sys.argv and sys.argv[0].endswith(".py") else None
    head = [sys.executable, script] if script else [sys.executable, "-m", "django"]
    return [*head, "grpcserver", "--address", address, "--reuse-port", *child_args]


class Supervisor:
    """Start, watch and stop the children; `run()` blocks until they have all stopped."""

    def __init__(self, command: list[str], processes: int, grace_seconds: float):
        self.command = command
        self.processes = processes
        self.grace = grace_seconds
        self.children: list[subprocess.Popen] = []
        self.stopping = threading.Event()
        self.signum = signal.SIGTERM
        self._lock = threading.RLock()  # stop() runs in a signal handler on this same thread

    def _spawn(self) -> subprocess.Popen:
        proc = subprocess.Popen(self.command, stdout=subprocess.PIPE, text=True)
        line = proc.stdout.readline()  # the child's "listening" line, or "" when it failed
        if "listening" not in line:
            proc.wait(10)
            raise OSError(f"a gRPC server process did not start (exit {proc.returncode})")
        threading.Thread(target=self._echo, args=(proc,), daemon=True).start()
        return proc

    @staticmethod
    def _echo(proc: subprocess.Popen) -> None:
        for line in proc.stdout:  # keep the child's later output visible (and its pipe drained)
            sys.stdout.write(line)
            sys.stdout.flush()

    def start(self) -> None:
        for _ in range(self.processes):
            if self.stopping.is_set():  # a stop signal came while starting: start no more
                break
            self.children.append(self._spawn())

    def stop(self, signum: int = signal.SIGTERM) -> None:
        self.signum = signum
        self.stopping.set()
        with self._lock:
            for child in self.children:
                if child.poll() is None:
                    child.send_signal(signum)

    def run(self) -> int:
        """Watch the children until stopped; restart those that die meanwhile."""
        last_restart = 0.0
        while not self.stopping.is_set():
            for i, child in enumerate(list(self.children)):
                if child.poll() is None or self.stopping.is_set():
                    continue
                log.warning(
                    "gRPC server process %s exited (%s); starting another",
                    child.pid,
                    child.returncode,
                )
                time.sleep(max(0.0, last_restart + RESTART_MIN_SECONDS - time.monotonic()))
                last_restart = time.monotonic()
                try:
                    replacement = self._spawn()
                except OSError as exc:
                    log.error("%s", exc)
                    continue
                with self._lock:
                    self.children[i] = replacement
            self.stopping.wait(0.2)
        self.stop(self.signum)  # again: a child started while the first signal was sent gets it too
        deadline = time.monotonic() + self.grace + 10
        codes = []
        for child in self.children:
            try:
                codes.append(child.wait(max(0.1, deadline - time.monotonic())))
            except subprocess.TimeoutExpired:
                child.kill()
                codes.append(child.wait())
        return 0 if all(code == 0 for code in codes) else 1


def serve_processes(
    address: str,
    processes: int,
    child_args: list[str],
    grace_seconds: float,
    on_ready: Callable[[int], None] | None = None,
) -> int:
    """Serve with `processes` children on one port until SIGTERM/SIGINT; returns the exit code."""
    sock, port = reserve_port(address)
    host = address.rpartition(":")[0]
    try:
        supervisor = Supervisor(
            child_command(f"{host}:{port}", child_args), processes, grace_seconds
        )

        def _stop(signum, frame):
            supervisor.stop(signum)

        signal.signal(signal.SIGINT, _stop)
        signal.signal(signal.SIGTERM, _stop)
        try:
            supervisor.start()
        except OSError:
            supervisor.stop()
            supervisor.run()
            raise
        if on_ready:
            on_ready(port)
        return supervisor.run()
    finally:
        sock.close()
