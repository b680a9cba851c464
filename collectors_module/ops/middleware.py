"""Binds the request's log context (request id, user) and, with `LOG_REQUESTS`, writes one
access line per request (method, path, status, duration_ms) to the `collectors.access` logger."""

from __future__ import annotations

import logging
import re
import time

from django.conf import settings

from collectors_module.core import logs
from collectors_module.core.ids import new_hex_id

access_log = logging.getLogger("collectors.access")
_REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._\-]{1,64}$")


class RequestLogMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        started = time.perf_counter()
        given = request.headers.get("X-Request-ID", "")
        request_id = given if _REQUEST_ID_RE.match(given) else new_hex_id()
        # The user only for requests with a session (API calls carry a key, and resolving an
        # anonymous user would cost the predict path a session lookup for nothing).
        user = None
        if settings.SESSION_COOKIE_NAME in request.COOKIES:
            user = getattr(request, "user", None)
        token = logs.bind(
            request_id=request_id,
            user=user.get_username() if user is not None and user.is_authenticated else None,
        )
        try:
            response = self.get_response(request)
            if settings.LOG_REQUESTS:
                access_log.info(
                    "%s %s %s",
                    request.method,
                    request.path,
                    response.status_code,
                    extra={
                        "method": request.method,
                        "path": request.path[:256],
                        "status": response.status_code,
                        "duration_ms": round((time.perf_counter() - started) * 1000, 3),
                    },
                )
            return response
        finally:
            logs.reset(token)
