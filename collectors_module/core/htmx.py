"""The request type of htmx views, as django-htmx documents it for type checkers."""

from __future__ import annotations

from django.http import HttpRequest
from django_htmx.middleware import HtmxDetails


class HtmxHttpRequest(HttpRequest):
    htmx: HtmxDetails


def partial_status(request: HtmxHttpRequest, status: int) -> int:
    """htmx 2 does not swap 4xx answers by default: a partial with its validation errors is a 200
    to htmx (a full page keeps its 400)."""
    return 200 if request.htmx and status == 400 else status
