"""Build and run the gRPC server: TLS by default, bounded threads, message limits, graceful stop."""

from __future__ import annotations

import os
import signal
import threading
from concurrent import futures
from dataclasses import dataclass

import grpc
from django.conf import settings

from collectors_module.ops import grpc_health

from .servicer import generic_handlers


@dataclass
class ServerConfig:
    address: str = "127.0.0.1:50443"
    cert_file: str | None = None
    key_file: str | None = None
    insecure: bool = False
    max_workers: int = 0
    max_message_bytes: int = 0
    grace_seconds: float = 30.0
    reuse_port: bool = False  # one of several processes on one port (processes.py)


def _limits(config: ServerConfig) -> tuple[int, int]:
    workers = config.max_workers or settings.GRPC_MAX_WORKERS or 4 * (os.cpu_count() or 2)
    max_bytes = config.max_message_bytes or settings.GRPC_MAX_MESSAGE_BYTES
    return workers, max_bytes


_health: dict = {}


def build_server(config: ServerConfig) -> tuple[grpc.Server, int]:
    """Create (not start) the server; returns it and the bound port."""
    workers, max_bytes = _limits(config)
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="grpc"),
        handlers=generic_handlers(),
        options=[
            ("grpc.max_receive_message_length", max_bytes),
            ("grpc.max_send_message_length", max_bytes),
            # Off unless this is one of `--processes N`: a second server on a taken port
            # fails instead of silently sharing it.
            ("grpc.so_reuseport", 1 if config.reuse_port else 0),
        ],
        # Bounded queue: beyond this many calls in flight new ones get RESOURCE_EXHAUSTED.
        maximum_concurrent_rpcs=workers * 8,
    )
    if config.insecure:
        port = server.add_insecure_port(config.address)
    else:
        if not (config.cert_file and config.key_file):
            raise ValueError("TLS needs --cert and --key (or --insecure for a plaintext port)")
        with open(config.key_file, "rb") as fh:
            key = fh.read()
        with open(config.cert_file, "rb") as fh:
            cert = fh.read()
        port = server.add_secure_port(config.address, grpc.ssl_server_credentials([(key, cert)]))
    if port == 0:
        raise OSError(f"could not bind {config.address}")
    _health[server] = grpc_health.attach(server)  # grpc.health.v1, following readiness
    return server, port


def serve_forever(config: ServerConfig, on_ready=None) -> None:
    """Serve until SIGINT/SIGTERM, then stop accepting and let in-flight calls finish."""
    server, port = build_server(config)
    server.start()
    if on_ready:
        on_ready(port)
    stopped = threading.Event()

    def _stop(signum, frame):
        if not stopped.is_set():
            stopped.set()
            if server in _health:
                _health[server].stop()
            server.stop(config.grace_seconds)

    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    server.wait_for_termination()
