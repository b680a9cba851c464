"""What the protobuf descriptors say about each RPC: types, HTTP bindings, auth type, scopes.

Two services: clarifai-grpc 12.2.11's `clarifai.api.V2`, and our `collectors.ext.v1.CollectorExtensions`
(api/proto/collectors_ext.proto: capture log, stats, limits, deactivate), annotated the same way.
Read once, so REST routes, gRPC handlers, scope checks and the OpenAPI document all come from the
same source as the clients.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

from clarifai_grpc.grpc.api import service_pb2
from clarifai_grpc.grpc.auth.scope import scope_pb2
from clarifai_grpc.grpc.auth.types import types_pb2
from clarifai_grpc.grpc.auth.util import extension_pb2
from google.api import annotations_pb2
from google.protobuf import message_factory

from collectors_module.api.proto import collectors_ext_pb2

SERVICE = service_pb2.DESCRIPTOR.services_by_name["V2"]
SERVICE_NAME = SERVICE.full_name  # clarifai.api.V2
EXT_SERVICE = collectors_ext_pb2.DESCRIPTOR.services_by_name["CollectorExtensions"]
EXT_SERVICE_NAME = EXT_SERVICE.full_name  # collectors.ext.v1.CollectorExtensions
SERVICES = (SERVICE, EXT_SERVICE)

_VAR_RE = re.compile(r"\{([^}=]+)(?:=[^}]*)?\}")


@dataclass(frozen=True)
class Binding:
    verb: str  # get, post, patch, delete, put
    template: str  # /v2/users/{user_app_id.user_id}/apps/{user_app_id.app_id}/collectors
    body: str  # "*" or "" (GET/DELETE without body)

    @property
    def variables(self) -> list[str]:
        return _VAR_RE.findall(self.template)


@dataclass(frozen=True)
class Rpc:
    name: str
    request_cls: type
    response_cls: type
    bindings: tuple[Binding, ...]
    auth_type: str  # KeyAuth, PATAuth, SessionTokenAuth, ...
    scopes: tuple[str, ...]  # "Apps:Get", "Inputs:Add", ...
    client_streaming: bool
    server_streaming: bool
    service: str = SERVICE_NAME


def scope_string(enum_name: str) -> str:
    """Scope enum name (Inputs_Add) to its string form (Inputs:Add)."""
    return enum_name.replace("_", ":", 1) if "_" in enum_name else enum_name


def _message_class(descriptor):
    return message_factory.GetMessageClass(descriptor)


def _bindings(method) -> tuple[Binding, ...]:
    opts = method.GetOptions()
    if not opts.HasExtension(annotations_pb2.http):
        return ()
    rules = [opts.Extensions[annotations_pb2.http]]
    rules.extend(rules[0].additional_bindings)
    out = []
    for rule in rules:
        verb = rule.WhichOneof("pattern")
        if verb in (None, "custom"):
            continue
        out.append(Binding(verb=verb, template=getattr(rule, verb), body=rule.body))
    return tuple(out)


@functools.cache
def all_rpcs() -> dict[str, Rpc]:
    rpcs: dict[str, Rpc] = {}
    methods = [m for service in SERVICES for m in service.methods]
    for method in methods:
        if method.name in rpcs:
            raise RuntimeError(f"{method.full_name} has the name of a V2 RPC")
        opts = method.GetOptions()
        scopes = tuple(
            dict.fromkeys(
                scope_string(scope_pb2.S.Name(s))
                for s in opts.Extensions[extension_pb2.cl_depending_scopes]
            )
        )
        auth = types_pb2.AuthType.Name(opts.Extensions[extension_pb2.cl_auth_type])
        rpcs[method.name] = Rpc(
            name=method.name,
            request_cls=_message_class(method.input_type),
            response_cls=_message_class(method.output_type),
            bindings=_bindings(method),
            auth_type=auth,
            scopes=scopes,
            client_streaming=method.client_streaming,
            server_streaming=method.server_streaming,
            service=method.containing_service.full_name,
        )
    return rpcs


def get_rpc(name: str) -> Rpc:
    return all_rpcs()[name]


@functools.cache
def all_scope_strings() -> tuple[str, ...]:
    return tuple(scope_string(v.name) for v in scope_pb2.S.DESCRIPTOR.values if v.name != "undef")
