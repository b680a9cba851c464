"""`python manage.py metricsserver [--bind HOST:PORT] [--with-table]`: serve this host's metrics.

For hosts without a web server (worker hosts, a gRPC-only host): a small HTTP server (the one
prometheus-client ships) answering `GET /metrics` with the sum over this host's
`PROMETHEUS_MULTIPROC_DIR`. It has no authentication: bind it to an internal address (the default
is loopback). `--with-table` adds the backlog gauges read from the capture table (let one host
do it, or every host's series carry the same values).
"""

from __future__ import annotations

import threading

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.multiprocess import MultiProcessCollector

from ...metrics import CaptureTableCollector


class Command(BaseCommand):
    help = "Serve this host's Prometheus metrics (multiprocess folder) on an internal address."

    def add_arguments(self, parser):
        parser.add_argument("--bind", default="127.0.0.1:9108", help="HOST:PORT (internal)")
        parser.add_argument("--with-table", action="store_true", help="add the backlog gauges")

    def handle(self, *args, **opts):
        folder = settings.PROMETHEUS_MULTIPROC_DIR
        if not folder:
            raise CommandError(
                "set PROMETHEUS_MULTIPROC_DIR (the folder this host's processes share)"
            )
        host, _, port = opts["bind"].rpartition(":")
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=str(folder))
        if opts["with_table"]:
            registry.register(CaptureTableCollector())
        server, _thread = start_http_server(int(port), addr=host or "127.0.0.1", registry=registry)
        self.stdout.write(f"metrics on http://{host or '127.0.0.1'}:{port}/metrics")
        self.stdout.flush()
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            pass
        finally:
            server.shutdown()
