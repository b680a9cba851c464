"""JSON endpoints the Clarifai API lacks: a collector's capture log, stats and admission limits.

Authenticated like the V2 API (`Authorization: Key <secret>`, scopes as for Get/PatchCollectors),
scoped to the app owner; another tenant's app or collector is 11101 / 404. Paths (under `/api/`):

  GET   v2/users/<user_id>/apps/<app_id>/collectors/<id>/captures?page=&per_page=
  GET   v2/users/<user_id>/apps/<app_id>/collectors/<id>/stats?minutes=60
  GET   v2/users/<user_id>/apps/<app_id>/collectors/<id>/limits
  PATCH v2/users/<user_id>/apps/<app_id>/collectors/<id>/limits   {"max_per_minute": 60, ...}
  POST  v2/users/<user_id>/apps/<app_id>/collectors/<id>/deactivate  {"discard_pending": false}
  and the same under v2/collectors/<id>/... for app keys.
"""

from __future__ import annotations

import json
import logging

from django.http import JsonResponse
from django.views.decorators.csrf import csrf_exempt

from collectors_module.accounts.auth import authenticate
from collectors_module.applications.selectors import app_for_user
from collectors_module.capture import selectors as capture_selectors
from collectors_module.core.errors import SC, ApiError, http_status_for, make_status, not_found
from collectors_module.core.pagination import paginate

from . import selectors, services

log = logging.getLogger("collectors.api")

READ_SCOPES = ("Apps:Get", "Collectors:Get")
WRITE_SCOPES = ("Apps:Get", "Collectors:Add", "Collectors:Get")
MAX_BODY = 64 * 1024


def _status_dict(code: int, details: str = "", description: str = "") -> dict:
    s = make_status(code, description, details)
    return {"code": s.code, "description": s.description, "details": s.details}


def _reply(payload: dict, code: int = SC.SUCCESS) -> JsonResponse:
    return JsonResponse(
        payload, status=http_status_for(code), json_dumps_params={"ensure_ascii": False}
    )


def _error(exc: ApiError) -> JsonResponse:
    payload = {"status": _status_dict(exc.code, exc.details, exc.description)}
    if exc.field:
        payload["status"]["field"] = exc.field
    return _reply(payload, exc.code)


def _app_for(key, user_id: str, app_id: str):
    if key.app_id is not None:
        own_user, own_app = key.app.owner.username, key.app.public_id
        user_id = own_user if user_id in ("", "me") else user_id
        app_id = app_id or own_app
        if (user_id, app_id) != (own_user, own_app):
            raise not_found("App", f"{user_id}/{app_id}")
    elif user_id in ("", "me"):
        user_id = key.owner.username
    if not app_id:
        raise ApiError(
            SC.CONN_INVALID_REQUEST,
            "This request needs an app: use /api/v2/users/{user_id}/apps/{app_id}/... with a personal "
            "access token, or an app key",
        )
    return app_for_user(key.owner, owner_user_id=user_id, app_id=app_id, write=True)


def _int_param(request, name: str, default: int = 0) -> int:
    raw = request.GET.get(name, "")
    if raw == "":
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise ApiError(
            SC.CONN_BAD_REQUEST_FORMAT, f"'{name}' must be an integer", field=name
        ) from exc


def _endpoint(methods: dict[str, tuple[str, ...]]):
    """Wrap a view: method check, key auth, scopes, app + collector resolution, errors."""

    def wrap(fn):
        @csrf_exempt
        def view(request, collector_id: str, user_id: str = "", app_id: str = ""):
            scopes = methods.get(request.method)
            if scopes is None:
                resp = _error(
                    ApiError(SC.CONN_METHOD_NOT_ALLOWED, f"{request.method} is not allowed here")
                )
                resp["Allow"] = ", ".join(methods)
                return resp
            try:
                key = authenticate(request.META.get("HTTP_AUTHORIZATION"))
                missing = key.missing_scopes(scopes)
                if missing:
                    raise ApiError(
                        SC.CONN_INSUFFICIENT_SCOPES, f"This needs the scopes: {', '.join(missing)}"
                    )
                app = _app_for(key, user_id, app_id)
                collector = selectors.collector_for_app(app, collector_id)
                return _reply(fn(request, app=app, collector=collector))
            except ApiError as exc:
                return _error(exc)
            except Exception:
                log.exception("collector API view failed")
                return _error(ApiError(SC.INTERNAL_SERVER_ISSUE, "Unexpected error"))

        return view

    return wrap


def _iso(value) -> str:
    return value.isoformat().replace("+00:00", "Z") if value is not None else ""


def capture_to_dict(c) -> dict:
    return {
        "id": str(c.pk),
        "state": c.state,
        "reason": c.reason,
        "status_code": c.status_code,
        "caller_user_id": c.caller.username if c.caller_id and c.caller else "",
        "request_id": c.request_id,
        "input_index": c.input_index,
        "attempts": c.attempts,
        "filtered_by": c.filtered_by,
        "destination_input_id": c.destination_input_id,
        "created_at": _iso(c.created_at),
        "finished_at": _iso(c.finished_at),
    }


@_endpoint({"GET": READ_SCOPES})
def captures_view(request, *, app, collector):
    page, per_page = _int_param(request, "page", 1), _int_param(request, "per_page", 0)
    rows = paginate(capture_selectors.captures_of_collector(collector), page, per_page)
    return {
        "status": _status_dict(SC.SUCCESS),
        "collector_id": collector.public_id,
        "page": page,
        "captures": [capture_to_dict(c) for c in rows],
    }


@_endpoint({"GET": READ_SCOPES})
def stats_view(request, *, app, collector):
    minutes = max(1, min(_int_param(request, "minutes", 60), 24 * 60))
    stats = capture_selectors.collector_stats(collector)
    stats["last_error_at"] = _iso(stats["last_error_at"])
    timeline = [
        {"minute": _iso(m), "accepted": a, "ingested": i}
        for m, a, i in capture_selectors.capture_timeline(collector, minutes=minutes)
    ]
    return {
        "status": _status_dict(SC.SUCCESS),
        "collector_id": collector.public_id,
        "stats": stats,
        "limits": selectors.collector_limits(collector),
        "timeline": timeline,
    }


def _json_body(request) -> dict:
    if len(request.body) > MAX_BODY:
        raise ApiError(SC.RPC_MAX_MESSAGE_SIZE_EXCEEDED, "Request body is too large")
    try:
        body = json.loads(request.body or b"{}")
    except ValueError as exc:
        raise ApiError(SC.CONN_BAD_REQUEST_FORMAT, "Request body is not valid JSON") from exc
    if not isinstance(body, dict):
        raise ApiError(SC.CONN_BAD_REQUEST_FORMAT, "Request body must be a JSON object")
    return body


@_endpoint({"POST": WRITE_SCOPES})
def deactivate_view(request, *, app, collector):
    body = _json_body(request)
    discard = body.get("discard_pending", False)
    if not isinstance(discard, bool):
        raise ApiError(
            SC.CONN_INVALID_REQUEST,
            "discard_pending must be true or false",
            field="discard_pending",
        )
    collector, discarded = services.collector_deactivate(
        app=app, collector_id=collector.public_id, discard_pending=discard
    )
    return {
        "status": _status_dict(SC.SUCCESS),
        "collector_id": collector.public_id,
        "discarded": discarded,
    }


@_endpoint({"GET": READ_SCOPES, "PATCH": WRITE_SCOPES, "POST": WRITE_SCOPES})
def limits_view(request, *, app, collector):
    if request.method != "GET":
        body = _json_body(request)
        limits = body.get("limits", body)
        collector = services.collector_set_limits(
            app=app, collector_id=collector.public_id, limits=limits
        )
    return {
        "status": _status_dict(SC.SUCCESS),
        "collector_id": collector.public_id,
        "limits": selectors.collector_limits(collector),
    }
