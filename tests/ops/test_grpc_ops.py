"""The gRPC server: the standard health service next to clarifai.api.V2 on the same TLS port,
and predictions over gRPC observed per model with transport "grpc"."""

from __future__ import annotations

import grpc
import pytest
from clarifai_grpc.grpc.api import resources_pb2, service_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from prometheus_client import REGISTRY

pytestmark = pytest.mark.django_db(transaction=True)


def predicted(transport: str) -> float:
    return (
        REGISTRY.get_sample_value(
            "collectors_predict_latency_seconds_count",
            {"model": "sentiment", "transport": transport},
        )
        or 0.0
    )


def test_health_service_and_predict_latency_over_grpc(
    alice, stub, grpc_server, dev_certs, settings
):
    settings.HEALTH_CACHE_SECONDS = 0
    before, rest_before = predicted("grpc"), predicted("rest")
    for _ in range(3):
        r = stub.PostModelOutputs(
            service_pb2.PostModelOutputsRequest(
                user_app_id=resources_pb2.UserAppIDSet(user_id="builtin", app_id="main"),
                model_id="sentiment",
                inputs=[resources_pb2.Input(data=resources_pb2.Data(text={"raw": "I love it"}))],
            ),
            metadata=(("authorization", f"Key {alice.secret}"),),
            timeout=10,
        )
        assert r.status.code == 10000
    assert predicted("grpc") == before + 3
    assert predicted("rest") == rest_before

    creds = grpc.ssl_channel_credentials(root_certificates=dev_certs["ca"].read_bytes())
    with grpc.secure_channel(grpc_server, creds) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        for service in ("", "clarifai.api.V2", "collectors.ext.v1.CollectorExtensions"):
            reply = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=10)
            assert reply.status == health_pb2.HealthCheckResponse.SERVING
        with pytest.raises(grpc.RpcError) as exc:
            health.Check(health_pb2.HealthCheckRequest(service="no.such.Service"), timeout=10)
        assert exc.value.code() == grpc.StatusCode.NOT_FOUND
        settings.CELERY_BROKER_URL = "redis://127.0.0.1:1/0"  # the broker is gone
        reply = health.Check(health_pb2.HealthCheckRequest(service=""), timeout=10)
        assert reply.status == health_pb2.HealthCheckResponse.NOT_SERVING
