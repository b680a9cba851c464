"""gRPC transport for `clarifai.api.V2` and `collectors.ext.v1.CollectorExtensions`: the same
dispatch as REST, Clarifai statuses inside.

Every method of both services is registered: implemented ones run their handler, unary ones
without a handler answer NOT_IMPLEMENTED (10040) in the response status, and streaming ones
answer gRPC UNIMPLEMENTED.
"""

from __future__ import annotations

import logging

import grpc
from django.db import close_old_connections

from collectors_module.accounts.throttle import grpc_client_address
from collectors_module.api.descriptors import SERVICES, all_rpcs
from collectors_module.api.dispatch import dispatch, error_response
from collectors_module.core.errors import SC
from collectors_module.core.faults import fault_point
from collectors_module.core.ids import new_hex_id

log = logging.getLogger("collectors.grpc")

# Below this much time left there is no point starting the work: the client has given up.
_MIN_TIME_LEFT = 0.005


class _Malformed:
    """Stands in for a request whose bytes did not parse."""

    def __init__(self, error: str):
        self.error = error


def _deserializer(message_cls):
    def parse(data: bytes):
        try:
            return message_cls.FromString(data)
        except Exception as exc:  # protobuf raises DecodeError and friends on garbage
            return _Malformed(str(exc)[:200])

    return parse


def _authorization(context) -> str | None:
    values = [v for k, v in context.invocation_metadata() if k == "authorization"]
    if len(values) != 1:
        return None  # missing or ambiguous: dispatch answers CONN_KEY_INVALID
    value = values[0]
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


def _request_id(context) -> str:
    for k, v in context.invocation_metadata():
        if k == "x-request-id" and isinstance(v, str):
            return v[:64]
    return new_hex_id()


def _unary(name: str):
    def handle(request, context):
        if isinstance(request, _Malformed):
            return error_response(
                name, SC.CONN_BAD_REQUEST_FORMAT, f"Malformed request: {request.error}"
            )
        remaining = context.time_remaining()
        if remaining is not None and remaining < _MIN_TIME_LEFT:
            return error_response(name, SC.RPC_REQUEST_TIMEOUT, "Deadline exceeded before start")
        close_old_connections()
        fault_point("grpc_before_dispatch")
        try:
            return dispatch(
                name,
                request,
                _authorization(context),
                transport="grpc",
                request_id=_request_id(context),
                client_address=grpc_client_address(context.invocation_metadata(), context.peer()),
            )
        finally:
            close_old_connections()

    return handle


def _unimplemented_stream(name: str):
    def handle(request_or_iterator, context):
        context.abort(grpc.StatusCode.UNIMPLEMENTED, f"{name} is not implemented by this server")

    return handle


def generic_handlers() -> list[grpc.GenericRpcHandler]:
    """One generic handler per service."""
    by_service: dict[str, dict] = {service.full_name: {} for service in SERVICES}
    for name, spec in all_rpcs().items():
        deser = _deserializer(spec.request_cls)
        ser = spec.response_cls.SerializeToString
        if spec.client_streaming and spec.server_streaming:
            h = grpc.stream_stream_rpc_method_handler(_unimplemented_stream(name), deser, ser)
        elif spec.client_streaming:
            h = grpc.stream_unary_rpc_method_handler(_unimplemented_stream(name), deser, ser)
        elif spec.server_streaming:
            h = grpc.unary_stream_rpc_method_handler(_unimplemented_stream(name), deser, ser)
        else:
            h = grpc.unary_unary_rpc_method_handler(_unary(name), deser, ser)
        by_service[spec.service][name] = h
    return [
        grpc.method_handlers_generic_handler(service, handlers)
        for service, handlers in by_service.items()
    ]
