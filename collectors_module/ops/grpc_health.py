"""The standard `grpc.health.v1.Health` service for the gRPC server (grpcio-health-checking).

The overall status ("") and that of `clarifai.api.V2` and `collectors.ext.v1.CollectorExtensions`
follow `checks.readiness()`: SERVING while the database, Redis and the broker answer,
NOT_SERVING otherwise. A Check refreshes a status older than `HEALTH_CACHE_SECONDS`; with
background threads on (servers) a thread also refreshes it, so Watch streams see changes.
"""

from __future__ import annotations

import contextlib
import threading
import time

from django.conf import settings
from django.db import close_old_connections
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from . import checks

SERVICES = ("", "clarifai.api.V2", "collectors.ext.v1.CollectorExtensions")


class ReadinessHealthServicer(health.HealthServicer):
    def __init__(self):
        super().__init__(experimental_non_blocking=True)
        self._checked_at = 0.0
        self._refresh_lock = threading.Lock()

    def refresh(self) -> None:
        with self._refresh_lock:
            ready = checks.readiness()["ready"]
            status = (
                health_pb2.HealthCheckResponse.SERVING
                if ready
                else health_pb2.HealthCheckResponse.NOT_SERVING
            )
            for name in SERVICES:
                self.set(name, status)
            self._checked_at = time.monotonic()

    def Check(self, request, context):
        if time.monotonic() - self._checked_at >= float(settings.HEALTH_CACHE_SECONDS):
            try:
                self.refresh()
            finally:
                close_old_connections()  # as the servicer does after every call
        return super().Check(request, context)

    def stop(self) -> None:
        self.enter_graceful_shutdown()  # every service NOT_SERVING while calls drain


def attach(server) -> ReadinessHealthServicer:
    """Add the health service to `server`; start its refresher thread in servers."""
    servicer = ReadinessHealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    if settings.BACKGROUND_THREADS:

        def loop():
            while True:
                with contextlib.suppress(Exception):
                    servicer.refresh()
                time.sleep(max(1.0, float(settings.HEALTH_CACHE_SECONDS)))

        threading.Thread(target=loop, name="grpc-health", daemon=True).start()
    return servicer
