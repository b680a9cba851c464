"""Hypothesis drives random and malformed messages into the real gRPC server (in-process).

For every implemented RPC: (a) random bytes as the request body, (b) random well-formed
messages built field by field from the request descriptor (sometimes aimed at the fuzzing
tenant's own app). The server must answer every call with a status in the response, or a clean
gRPC error for undecodable bytes -- never an unhandled exception (UNKNOWN) or an internal
server issue -- and keep serving afterwards.
"""

from __future__ import annotations

import os

import grpc
import pytest
from clarifai_grpc.grpc.api import resources_pb2, service_pb2
from google.protobuf import message_factory
from google.protobuf.descriptor import FieldDescriptor as F
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from collectors_module.api.descriptors import all_rpcs
from collectors_module.api.dispatch import implemented
from collectors_module.core.errors import SC

# Marks the session as needing the test database (the server threads use their own connections;
# the tenant is committed by the module fixture).
pytestmark = pytest.mark.django_db

EXAMPLES = int(os.environ.get("GRPC_FUZZ_EXAMPLES", "15"))
USER, APP = "grpc-fuzzer", "fuzz-app"
IMPLEMENTED = sorted(n for n in implemented() if not all_rpcs()[n].client_streaming)
CLEAN_RPC_ERRORS = {
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.INTERNAL,  # grpc's own "Exception deserializing request!"
    grpc.StatusCode.RESOURCE_EXHAUSTED,
    grpc.StatusCode.UNAUTHENTICATED,
}


@pytest.fixture(scope="module")
def grpc_target(django_db_setup, django_db_blocker):
    """A plaintext gRPC server on loopback and a committed tenant (removed afterwards)."""
    from django.contrib.auth import get_user_model

    from collectors_module.accounts.services import key_create, user_create
    from collectors_module.api.grpc.server import ServerConfig, build_server
    from collectors_module.applications.services import app_create

    with django_db_blocker.unblock():
        get_user_model().objects.filter(username=USER).delete()
        user, _ = user_create(user_id=USER, password="pw-for-tests-123", plan="professional")
        app_create(owner=user, app_id=APP)
        secret = key_create(owner=user, scopes=["All"], description="grpc fuzz").secret
        server, port = build_server(
            ServerConfig(
                address="127.0.0.1:0", insecure=True, max_workers=2, max_message_bytes=2**20
            )
        )
        server.start()
        channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        try:
            yield channel, (("authorization", f"Key {secret}"),)
        finally:
            channel.close()
            server.stop(2).wait(5)
            get_user_model().objects.filter(username=USER).delete()


def _raw_call(channel, rpc_name: str):
    return channel.unary_unary(
        f"/{all_rpcs()[rpc_name].service}/{rpc_name}",
        request_serializer=None,
        response_deserializer=all_rpcs()[rpc_name].response_cls.FromString,
    )


def _invoke(call, payload: bytes, metadata):
    """(response, None) or (None, the grpc.RpcError)."""
    try:
        return call(payload, metadata=metadata, timeout=30), None
    except grpc.RpcError as exc:
        return None, exc


_SCALARS = {
    F.TYPE_BOOL: st.booleans(),
    F.TYPE_STRING: st.text(max_size=40),
    F.TYPE_BYTES: st.binary(max_size=64),
    F.TYPE_FLOAT: st.floats(width=32, allow_nan=True),
    F.TYPE_DOUBLE: st.floats(allow_nan=True),
    F.TYPE_INT32: st.integers(-(2**31), 2**31 - 1),
    F.TYPE_SINT32: st.integers(-(2**31), 2**31 - 1),
    F.TYPE_SFIXED32: st.integers(-(2**31), 2**31 - 1),
    F.TYPE_ENUM: st.integers(-(2**31), 2**31 - 1),
    F.TYPE_UINT32: st.integers(0, 2**32 - 1),
    F.TYPE_FIXED32: st.integers(0, 2**32 - 1),
    F.TYPE_INT64: st.integers(-(2**63), 2**63 - 1),
    F.TYPE_SINT64: st.integers(-(2**63), 2**63 - 1),
    F.TYPE_SFIXED64: st.integers(-(2**63), 2**63 - 1),
    F.TYPE_UINT64: st.integers(0, 2**64 - 1),
    F.TYPE_FIXED64: st.integers(0, 2**64 - 1),
}


@st.composite
def messages(draw, desc, depth: int = 3):
    """A message of `desc` with a random subset of fields set (maps left empty)."""
    msg = message_factory.GetMessageClass(desc)()
    fields = [
        f for f in desc.fields if not (f.message_type and f.message_type.GetOptions().map_entry)
    ]
    if not fields:
        return msg
    chosen = draw(st.lists(st.sampled_from(fields), max_size=5, unique_by=lambda f: f.name))
    for f in chosen:
        if f.type == F.TYPE_MESSAGE:
            if depth <= 0:
                continue
            values = draw(
                st.lists(
                    messages(f.message_type, depth - 1),
                    min_size=1,
                    max_size=3 if f.is_repeated else 1,
                )
            )
            if f.is_repeated:
                getattr(msg, f.name).extend(values)
            else:
                getattr(msg, f.name).CopyFrom(values[0])
        else:
            strategy = _SCALARS.get(f.type)
            if strategy is None:
                continue
            if f.is_repeated:
                getattr(msg, f.name).extend(draw(st.lists(strategy, max_size=3)))
            else:
                setattr(msg, f.name, draw(strategy))
    return msg


def _fuzz_settings():
    return settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )


@pytest.mark.parametrize("rpc_name", IMPLEMENTED)
def test_random_bytes_never_crash_the_servicer(grpc_target, rpc_name):
    channel, metadata = grpc_target
    call = _raw_call(channel, rpc_name)

    @_fuzz_settings()
    @given(st.binary(max_size=512))
    def run(payload):
        response, error = _invoke(call, payload, metadata)
        assert error is None or error.code() in CLEAN_RPC_ERRORS, (rpc_name, payload, error)
        assert response is None or response.status.code != SC.INTERNAL_SERVER_ISSUE, (
            rpc_name,
            payload,
            response.status,
        )

    run()


@pytest.mark.parametrize("rpc_name", IMPLEMENTED)
def test_random_messages_get_a_status_never_an_internal_error(grpc_target, rpc_name):
    channel, metadata = grpc_target
    spec = all_rpcs()[rpc_name]
    call = _raw_call(channel, rpc_name)
    aim = st.sampled_from([None, resources_pb2.UserAppIDSet(user_id=USER, app_id=APP)])

    @_fuzz_settings()
    @given(messages(spec.request_cls.DESCRIPTOR), aim)
    def run(message, user_app_id):
        if user_app_id is not None and "user_app_id" in spec.request_cls.DESCRIPTOR.fields_by_name:
            message.user_app_id.CopyFrom(user_app_id)
        response, error = _invoke(call, message.SerializeToString(), metadata)
        assert error is None or error.code() in CLEAN_RPC_ERRORS, (
            rpc_name,
            str(message)[:800],
            error,
        )
        assert response is None or response.status.code != SC.INTERNAL_SERVER_ISSUE, (
            rpc_name,
            str(message)[:800],
            response.status,
        )

    run()


def test_server_still_answers_after_the_fuzzing(grpc_target):
    channel, metadata = grpc_target
    call = _raw_call(channel, "ListApps")
    request = service_pb2.ListAppsRequest(user_app_id=resources_pb2.UserAppIDSet(user_id=USER))
    response = call(request.SerializeToString(), metadata=metadata, timeout=30)
    assert response.status.code == SC.SUCCESS  # (the fuzzing may have deleted the app itself)


HOSTILE_ID = "id\n\x00\x7f\u0085end"


def hostile_message(desc, user_app_id=None):
    """Oversized counts, huge page numbers and ids with control characters in every top-level
    field that can hold them (issue 15)."""
    msg = message_factory.GetMessageClass(desc)()
    for f in desc.fields:
        if f.message_type and f.message_type.GetOptions().map_entry:
            continue
        if f.type in (F.TYPE_UINT32, F.TYPE_UINT64) and not f.is_repeated:
            setattr(msg, f.name, 2**32 - 1)
        elif f.type == F.TYPE_STRING:
            if f.is_repeated:
                getattr(msg, f.name).extend([HOSTILE_ID] * 5000)
            else:
                setattr(msg, f.name, HOSTILE_ID)
        elif f.type == F.TYPE_MESSAGE and f.is_repeated:
            for _ in range(2000):
                getattr(msg, f.name).add()
    if user_app_id is not None and "user_app_id" in desc.fields_by_name:
        msg.user_app_id.CopyFrom(user_app_id)
    return msg


@pytest.mark.parametrize("rpc_name", IMPLEMENTED)
def test_hostile_counts_pages_and_ids_get_a_status(grpc_target, rpc_name):
    channel, metadata = grpc_target
    spec = all_rpcs()[rpc_name]
    call = _raw_call(channel, rpc_name)
    for aim in (None, resources_pb2.UserAppIDSet(user_id=USER, app_id=APP)):
        message = hostile_message(spec.request_cls.DESCRIPTOR, aim)
        response, error = _invoke(call, message.SerializeToString(), metadata)
        assert error is None or error.code() in CLEAN_RPC_ERRORS, (rpc_name, error)
        assert response is not None or error is not None
        if response is not None:
            assert response.status.code != SC.INTERNAL_SERVER_ISSUE, (rpc_name, response.status)
