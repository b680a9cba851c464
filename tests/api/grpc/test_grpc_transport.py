"""The gRPC transport: auth from metadata, statuses in the response, limits, bad bytes."""

from __future__ import annotations

import grpc
import pytest
from clarifai_grpc.grpc.api import resources_pb2, service_pb2
from clarifai_grpc.grpc.api.status import status_code_pb2 as SC


def md(secret: str):
    return (("authorization", f"Key {secret}"),)


def test_list_apps_with_pat_over_tls(stub, alice):
    r = stub.ListApps(
        service_pb2.ListAppsRequest(user_app_id=resources_pb2.UserAppIDSet(user_id="me")),
        metadata=md(alice.secret),
    )
    assert r.status.code == SC.SUCCESS
    assert [a.id for a in r.apps] == ["app1"]


def test_missing_or_wrong_key_is_key_invalid(stub, alice):
    req = service_pb2.GetAppRequest(
        user_app_id=resources_pb2.UserAppIDSet(user_id="alice", app_id="app1")
    )
    assert stub.GetApp(req).status.code == SC.CONN_KEY_INVALID
    assert stub.GetApp(req, metadata=md("wrong")).status.code == SC.CONN_KEY_INVALID
    assert (
        stub.GetApp(req, metadata=(("authorization", "Bearer x"),)).status.code
        == SC.CONN_KEY_INVALID
    )


def test_other_tenant_app_does_not_exist(stub, alice, bob):
    req = service_pb2.GetAppRequest(
        user_app_id=resources_pb2.UserAppIDSet(user_id="bob", app_id="bobapp")
    )
    assert stub.GetApp(req, metadata=md(alice.secret)).status.code == SC.CONN_DOES_NOT_EXIST


def test_unimplemented_unary_rpc_says_so_in_status(stub, alice):
    r = stub.ListTasks(
        service_pb2.ListTasksRequest(
            user_app_id=resources_pb2.UserAppIDSet(user_id="alice", app_id="app1")
        ),
        metadata=md(alice.secret),
    )
    assert r.status.code == SC.NOT_IMPLEMENTED
    assert "ListTasks" in r.status.details


def test_streaming_rpc_is_unimplemented(stub, alice):
    with pytest.raises(grpc.RpcError) as err:
        list(
            stub.GenerateModelOutputs(
                service_pb2.PostModelOutputsRequest(), metadata=md(alice.secret)
            )
        )
    assert err.value.code() == grpc.StatusCode.UNIMPLEMENTED


def test_malformed_bytes_get_bad_request_format_and_server_survives(
    grpc_server, dev_certs, stub, alice
):
    creds = grpc.ssl_channel_credentials(dev_certs["ca"].read_bytes())
    with grpc.secure_channel(grpc_server, creds) as channel:
        raw = channel.unary_unary(
            "/clarifai.api.V2/ListApps",
            request_serializer=lambda b: b,
            response_deserializer=service_pb2.MultiAppResponse.FromString,
        )
        r = raw(b"\xff\xff\xff\xff garbage", metadata=md(alice.secret))
    assert r.status.code == SC.CONN_BAD_REQUEST_FORMAT
    ok = stub.ListApps(service_pb2.ListAppsRequest(), metadata=md(alice.secret))
    assert ok.status.code == SC.SUCCESS


def test_oversized_message_is_refused_and_server_survives(stub, alice):
    big = service_pb2.PostInputsRequest(
        inputs=[
            resources_pb2.Input(
                data=resources_pb2.Data(text=resources_pb2.Text(raw="x" * (5 * 2**20)))
            )
        ]
    )
    with pytest.raises(grpc.RpcError) as err:
        stub.PostInputs(big, metadata=md(alice.secret))
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert (
        stub.ListApps(service_pb2.ListAppsRequest(), metadata=md(alice.secret)).status.code
        == SC.SUCCESS
    )


def test_expired_deadline_is_reported_to_the_client(stub, alice):
    with pytest.raises(grpc.RpcError) as err:
        stub.ListApps(service_pb2.ListAppsRequest(), metadata=md(alice.secret), timeout=0.000001)
    assert err.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
