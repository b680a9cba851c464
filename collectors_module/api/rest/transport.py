"""REST/JSON transport: HTTP request -> request message -> dispatch -> JSON response.

Routes come from the `google.api.http` bindings of clarifai-grpc, so every path a Clarifai client
or curl command uses lands on the same handler as the gRPC method of the same name.
"""

from __future__ import annotations

import json
import re

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import JsonResponse
from django.urls import ResolverMatch, URLPattern
from django.urls.resolvers import RoutePattern
from django.views.decorators.csrf import csrf_exempt

from collectors_module.accounts.throttle import client_address
from collectors_module.api.descriptors import all_rpcs, get_rpc
from collectors_module.api.dispatch import dispatch, error_response, implemented
from collectors_module.api.limits import check_lists, check_raw_body
from collectors_module.core.errors import SC, ApiError, http_status_for, make_status
from collectors_module.core.ids import looks_like_secret
from collectors_module.core.protojson import from_dict, query_to_dict, set_path, to_dict

_VAR_RE = re.compile(r"\{([^}=]+)\}")
MAX_JSON_DEPTH = 64


def _kwarg_name(var: str) -> str:
    return var.replace(".", "__")


def _django_route(template: str) -> str:
    return _VAR_RE.sub(lambda m: f"<str:{_kwarg_name(m.group(1))}>", template).lstrip("/")


def _json_response(message, http_status: int | None = None) -> JsonResponse:
    status = http_status or http_status_for(message.status.code)
    return JsonResponse(to_dict(message), status=status, json_dumps_params={"ensure_ascii": False})


def _depth_ok(value, limit: int = MAX_JSON_DEPTH) -> bool:
    stack = [(value, 0)]
    while stack:
        node, depth = stack.pop()
        if depth > limit:
            return False
        if isinstance(node, dict):
            stack.extend((v, depth + 1) for v in node.values())
        elif isinstance(node, list):
            stack.extend((v, depth + 1) for v in node)
    return True


def _error(rpc_name: str, code: int, details: str) -> JsonResponse:
    return _json_response(error_response(rpc_name, code, details))


def _build_request(rpc_name: str, binding_body: str, request, kwargs: dict):
    spec = all_rpcs()[rpc_name]
    data: dict = query_to_dict(request.GET, spec.request_cls)
    if binding_body and request.method != "GET":
        raw = request.body
        if raw.strip():
            check_raw_body(raw)
            try:
                body = json.loads(raw)
            except (ValueError, RecursionError) as exc:
                raise _BadJson(f"Request body is not valid JSON: {str(exc)[:200]}") from exc
            if not isinstance(body, dict):
                raise _BadJson("Request body must be a JSON object")
            if not _depth_ok(body):
                raise _BadJson(f"Request body nests deeper than {MAX_JSON_DEPTH} levels")
            data.update(body)
    check_lists(rpc_name, data)  # counts on the parsed JSON, before any protobuf is built
    for name, value in kwargs.items():
        set_path(data, name.replace("__", "."), value)
    return from_dict(data, spec.request_cls)


class _BadJson(Exception):
    pass


def make_view(template: str, verbs: dict[str, tuple[str, str]]):
    """One view per path template; `verbs` maps an HTTP verb to (rpc name, body rule)."""

    @csrf_exempt
    def view(request, **kwargs):
        verb = request.method.lower()
        if verb == "head":
            verb = "get"
        if verb not in verbs:
            any_rpc = next(iter(verbs.values()))[0]
            resp = _error(
                any_rpc, SC.CONN_METHOD_NOT_ALLOWED, f"{request.method} is not allowed here"
            )
            resp["Allow"] = ", ".join(v.upper() for v in verbs)
            return resp
        rpc_name, body_rule = verbs[verb]
        if any(looks_like_secret(value) for value in kwargs.values()):
            return _error(
                rpc_name,
                SC.CONN_INVALID_REQUEST,
                "A key secret is never accepted in a URL path: name objects by their public ids "
                "and send the secret only in the Authorization header",
            )
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        if length > settings.DATA_UPLOAD_MAX_MEMORY_SIZE:
            return _error(
                rpc_name,
                SC.RPC_MAX_MESSAGE_SIZE_EXCEEDED,
                f"Request body exceeds {settings.DATA_UPLOAD_MAX_MEMORY_SIZE} bytes",
            )
        try:
            message = _build_request(rpc_name, body_rule, request, kwargs)
        except RequestDataTooBig:
            return _error(
                rpc_name,
                SC.RPC_MAX_MESSAGE_SIZE_EXCEEDED,
                f"Request body exceeds {settings.DATA_UPLOAD_MAX_MEMORY_SIZE} bytes",
            )
        except _BadJson as exc:
            return _error(rpc_name, SC.CONN_BAD_REQUEST_FORMAT, str(exc))
        except ApiError as exc:
            response = get_rpc(rpc_name).response_cls()
            response.status.CopyFrom(exc.to_status())
            return _json_response(response)
        response = dispatch(
            rpc_name,
            message,
            request.META.get("HTTP_AUTHORIZATION"),
            transport="rest",
            request_id=request.META.get("HTTP_X_REQUEST_ID", "")[:64],
            client_address=client_address(request.META),
        )
        return _json_response(response)

    view.rest_template = template  # type: ignore[attr-defined]
    view.rest_verbs = verbs  # type: ignore[attr-defined]
    return view


def _specificity(template: str) -> tuple:
    # Literal segments before variables at the first point two templates differ, so
    # /v2/models/types wins over /v2/models/{model_id}.
    return tuple(1 if seg.startswith("{") else 0 for seg in template.strip("/").split("/"))


def route_table() -> dict[str, dict[str, tuple[str, str]]]:
    """template -> {verb: (rpc, body)}; implemented RPCs win a (template, verb) clash."""
    done = implemented()
    table: dict[str, dict[str, tuple[str, str]]] = {}
    ordered = sorted(all_rpcs().values(), key=lambda r: (r.name not in done, r.name))
    for spec in ordered:
        if spec.client_streaming or spec.server_streaming:
            continue
        for b in spec.bindings:
            table.setdefault(b.template, {}).setdefault(b.verb, (spec.name, b.body))
    return table


class _Node:
    __slots__ = ("literal", "variable", "view")

    def __init__(self) -> None:
        self.literal: dict[str, _Node] = {}
        self.variable: _Node | None = None
        self.view: tuple | None = None  # (view, kwarg names, Django route)


class RestRoutes(URLPattern):
    """Every REST route in one URL pattern, matched segment by segment in a trie.

    A path costs a few dict lookups instead of one regex per route (there are about 300, and the
    predict route came late in the list). The order is the one the bindings need: at each segment
    a literal wins over a variable, and a variable matches one non-empty segment, as Django's
    `<str:...>` does; where two templates share the same shape the first in `_specificity`
    order wins. `resolve()` answers what Django's own patterns would, so `reverse`-free callers,
    `resolve()` and the 404 page see the same views."""

    def __init__(self, table: dict[str, dict[str, tuple[str, str]]]):
        self._root = _Node()
        for template in sorted(table, key=_specificity):
            node = self._root
            names = []
            for seg in template.strip("/").split("/"):
                var = _VAR_RE.fullmatch(seg)
                if var:
                    node.variable = node.variable or _Node()
                    node = node.variable
                    names.append(_kwarg_name(var.group(1)))
                else:
                    node = node.literal.setdefault(seg, _Node())
            if node.view is None:
                route = _django_route(template)
                node.view = (make_view(template, table[template]), tuple(names), route)
        super().__init__(RoutePattern("<path:rest>"), not_found_view, name=None)

    def _find(self, node: _Node, segs: list[str], i: int, values: list[str]):
        if i == len(segs):
            return node.view
        seg = segs[i]
        child = node.literal.get(seg)
        if child is not None:
            found = self._find(child, segs, i + 1, values)
            if found is not None:
                return found
        if node.variable is not None and seg:
            values.append(seg)
            found = self._find(node.variable, segs, i + 1, values)
            if found is not None:
                return found
            values.pop()
        return None

    def resolve(self, path: str):
        values: list[str] = []
        found = self._find(self._root, path.split("/"), 0, values)
        if found is None:
            return None
        view, names, route = found
        kwargs = dict(zip(names, values, strict=True))
        return ResolverMatch(
            view, (), kwargs, None, route=route, captured_kwargs=kwargs, extra_kwargs={}
        )

    def __repr__(self) -> str:
        return "<RestRoutes: the REST bindings of clarifai-grpc>"


def urlpatterns():
    return [RestRoutes(route_table())]


def not_found_view(request, *args, **kwargs):
    status = make_status(SC.CONN_DOES_NOT_EXIST, details=f"No API route for {request.path}")
    return JsonResponse(
        {
            "status": {
                "code": status.code,
                "description": status.description,
                "details": status.details,
            }
        },
        status=404,
    )
