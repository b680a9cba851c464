"""The `/metrics` endpoint: the registry of this host's processes plus the backlog gauges read
from the capture table at scrape time (one indexed GROUP BY over pending rows).

Access: with `METRICS_TOKEN` set, a request must carry `Authorization: Bearer <token>`;
without it, only clients in `METRICS_ALLOWED_NETWORKS` (loopback by default) get an answer.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import threading

from django.conf import settings
from django.http import HttpResponse
from django.utils import timezone
from django.views.decorators.http import require_GET
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, InfoMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector

from collectors_module.capture import selectors as capture_selectors

log = logging.getLogger("collectors.metrics")


class CaptureTableCollector:
    """Backlog, oldest pending age and the collectors' labels, read at scrape time."""

    def collect(self):
        backlog = GaugeMetricFamily(
            "collectors_captures_pending",
            "Accepted captures not finished yet (accepted, processing, retry).",
            labels=["collector"],
        )
        oldest = GaugeMetricFamily(
            "collectors_captures_oldest_pending_age_seconds",
            "Age of the oldest unfinished capture.",
            labels=["collector"],
        )
        info = InfoMetricFamily(
            "collectors_collector",
            "Which app and collector id a `collector` label is.",
            labels=["collector"],
        )
        up = GaugeMetricFamily(
            "collectors_metrics_database_up", "1 when the scrape could read the capture table."
        )
        try:
            now = timezone.now()
            for pk, n, first in capture_selectors.backlog_by_collector():
                backlog.add_metric([str(pk)], n)
                oldest.add_metric([str(pk)], max(0.0, (now - first).total_seconds()))
            for pk, user_id, app_id, collector_id in capture_selectors.collector_labels():
                info.add_metric(
                    [str(pk)], {"user_id": user_id, "app_id": app_id, "collector_id": collector_id}
                )
            up.add_metric([], 1)
        except Exception as exc:
            log.warning("metrics: capture table not readable: %s", type(exc).__name__)
            up.add_metric([], 0)
        yield from (backlog, oldest, info, up)


_table = CaptureTableCollector()
_registered = threading.Lock()
_in_default = False


def registry() -> CollectorRegistry:
    """Multiprocess: a fresh registry over the folder's files (prometheus-client's recipe).
    Otherwise the process's default registry (its own metrics, process and GC collectors)."""
    global _in_default
    if settings.PROMETHEUS_MULTIPROC_DIR:
        reg = CollectorRegistry()
        MultiProcessCollector(reg, path=str(settings.PROMETHEUS_MULTIPROC_DIR))
        reg.register(_table)
        return reg
    with _registered:
        if not _in_default:
            REGISTRY.register(_table)
            _in_default = True
    return REGISTRY


def _allowed(request) -> bool:
    token = settings.METRICS_TOKEN
    if token:
        header = request.headers.get("Authorization", "")
        return header.startswith("Bearer ") and hmac.compare_digest(
            header[7:].strip().encode(), token.encode()
        )
    try:
        addr = ipaddress.ip_address(request.META.get("REMOTE_ADDR", ""))
    except ValueError:
        return False
    return any(
        addr in ipaddress.ip_network(n, strict=False) for n in settings.METRICS_ALLOWED_NETWORKS
    )


@require_GET
def metrics_view(request):
    if not _allowed(request):
        response = HttpResponse("metrics need the bearer token\n", status=401)
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    return HttpResponse(generate_latest(registry()), content_type=CONTENT_TYPE_LATEST)
