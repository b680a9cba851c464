"""One dispatch path for every transport: authenticate, check scopes, resolve the app, call.

Handlers are registered with `@rpc("PostInputs")`; they take a `Context` and the request
message and return the response message (status is filled in here when they leave it unset).
REST (`api/rest`) and gRPC (`api/grpc`) both call `dispatch()`, so behaviour is identical.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.db import DataError, close_old_connections

from collectors_module.accounts import throttle
from collectors_module.accounts.auth import authenticate
from collectors_module.applications.selectors import app_for_request
from collectors_module.core import logs, metrics
from collectors_module.core.errors import SC, ApiError, make_status
from collectors_module.core.ids import new_hex_id

from .descriptors import get_rpc
from .limits import check_message

log = logging.getLogger("collectors.rpc")

Handler = Callable[["Context", Any], Any]
_HANDLERS: dict[str, Handler] = {}


def rpc(name: str) -> Callable[[Handler], Handler]:
    """Register a handler for the V2 RPC `name` (checked against the descriptors)."""
    get_rpc(name)

    def register(fn: Handler) -> Handler:
        if name in _HANDLERS and _HANDLERS[name] is not fn:
            raise RuntimeError(f"two handlers for {name}")
        _HANDLERS[name] = fn
        return fn

    return register


def implemented() -> frozenset[str]:
    _load_handlers()
    return frozenset(_HANDLERS)


_loaded = False


def _load_handlers() -> None:
    global _loaded
    if not _loaded:
        # Inside the function: the handler modules import this one for `@rpc`.
        import collectors_module.api.handlers  # noqa: F401  (registers every handler)

        _loaded = True


@dataclass
class Context:
    """Who is calling and which app the request names (already tenant-resolved ids only)."""

    key: Any  # accounts.models.Key
    owner_user_id: str  # user_app_id.user_id with 'me' resolved
    app_id: str  # user_app_id.app_id ('' when not given)
    transport: str
    request_id: str
    extra: dict = field(default_factory=dict)

    @property
    def user(self):
        return self.key.owner

    @property
    def is_app_key(self) -> bool:
        return self.key.app_id is not None

    def app(self, *, write: bool = False):
        """The app the request names, if this caller may see it (write: may change it)."""
        return app_for_request(self, write=write)


def _resolve_user_app(key, request) -> tuple[str, str]:
    user_id, app_id = "", ""
    if hasattr(request, "user_app_id") and request.HasField("user_app_id"):
        user_id, app_id = request.user_app_id.user_id, request.user_app_id.app_id
    if key.app_id is not None:
        # App keys carry their app; naming another app is "does not exist", like any other tenant.
        own_user, own_app = key.app.owner.username, key.app.public_id
        if user_id in ("", "me"):
            user_id = own_user
        if not app_id:
            app_id = own_app
        if (user_id, app_id) != (own_user, own_app):
            raise ApiError(SC.CONN_DOES_NOT_EXIST, f"App '{user_id}/{app_id}' does not exist")
        return user_id, app_id
    if user_id in ("", "me"):
        user_id = key.owner.username
    return user_id, app_id


def error_response(rpc_name: str, code: int, details: str = "", description: str = ""):
    response = get_rpc(rpc_name).response_cls()
    response.status.CopyFrom(make_status(code, description, details))
    return response


def _authenticate(authorization: str | None, client_address: str):
    """The key, or CONN_KEY_INVALID; an address sending too many invalid keys is told to wait
    (CONN_THROTTLED). Valid keys never touch the throttle."""
    try:
        return authenticate(authorization)
    except ApiError as exc:
        if exc.code != SC.CONN_KEY_INVALID or not authorization:
            raise
        wait = throttle.bad_key(client_address)
        if wait:
            raise ApiError(
                SC.CONN_THROTTLED,
                f"Too many invalid API keys from your address; try again in "
                f"{throttle.wait_text(wait)}. Requests with a valid key are not affected.",
            ) from exc
        raise


def dispatch(
    name: str,
    request,
    authorization: str | None,
    transport: str,
    request_id: str = "",
    client_address: str = "",
):
    """Run RPC `name` for `request`; always returns a response message with a status."""
    started = time.perf_counter()
    request_id = request_id or new_hex_id()
    token = logs.bind(request_id=request_id, transport=transport, rpc=name)  # for every log line
    try:
        response = _dispatch(name, request, authorization, transport, request_id, client_address)
    finally:
        logs.reset(token)
    if name in metrics.PREDICT_RPCS:
        metrics.observe_predict(request.model_id, transport, time.perf_counter() - started)
    return response


def _dispatch(
    name: str,
    request,
    authorization: str | None,
    transport: str,
    request_id: str,
    client_address: str,
):
    _load_handlers()
    spec = get_rpc(name)
    handler = _HANDLERS.get(name)
    try:
        if handler is None:
            raise ApiError(SC.NOT_IMPLEMENTED, f"{name} is not implemented by this server")
        key = _authenticate(authorization, client_address)
        if spec.auth_type == "PATAuth" and key.app_id is not None:
            raise ApiError(
                SC.CONN_INSUFFICIENT_SCOPES, f"{name} needs a personal access token, not an app key"
            )
        missing = key.missing_scopes(spec.scopes)
        if missing:
            raise ApiError(
                SC.CONN_INSUFFICIENT_SCOPES, f"{name} needs the scopes: {', '.join(missing)}"
            )
        check_message(name, request)  # every list bounded on every route, whatever the transport
        owner_user_id, app_id = _resolve_user_app(key, request)
        # the caller and the app the call names (undone with the outer bind)
        logs.bind(user=key.owner.username, app=f"{owner_user_id}/{app_id}" if app_id else None)
        ctx = Context(
            key=key,
            owner_user_id=owner_user_id,
            app_id=app_id,
            transport=transport,
            request_id=request_id,
        )
        response = handler(ctx, request)
        if not response.status.code:
            response.status.CopyFrom(make_status(SC.SUCCESS))
    except ApiError as exc:
        response = spec.response_cls()
        response.status.CopyFrom(exc.to_status())
    except DataError as exc:
        # e.g. a NUL character PostgreSQL text cannot hold: the write was rolled back; say why.
        response = spec.response_cls()
        response.status.CopyFrom(
            make_status(
                SC.CONN_INVALID_REQUEST, details=f"A value cannot be stored: {str(exc)[:200]}"
            )
        )
    except Exception:
        log.exception("unhandled error in %s (req %s)", name, request_id)
        close_old_connections()
        response = spec.response_cls()
        response.status.CopyFrom(
            make_status(
                SC.INTERNAL_SERVER_ISSUE, details=f"Unexpected error; request id {request_id}"
            )
        )
    response.status.req_id = request_id
    return response
