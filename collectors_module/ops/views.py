"""Liveness and readiness over HTTP (no authentication, no detail beyond ok/failed per check)."""

from __future__ import annotations

from django.http import JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from . import checks


@never_cache
@require_GET
def healthz(request):
    """Liveness: the process answers requests (no dependency is checked)."""
    return JsonResponse({"status": "ok"})


@never_cache
@require_GET
def readyz(request):
    """Readiness: 200 when the database, Redis and the broker answer, 503 otherwise."""
    result = checks.readiness()
    return JsonResponse(result, status=200 if result["ready"] else 503)
