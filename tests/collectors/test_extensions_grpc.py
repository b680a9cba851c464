"""The collector extension RPCs over gRPC (collectors.ext.v1.CollectorExtensions) answer like their
REST paths: same dispatch, scopes, tenancy and statuses, on the live TLS server."""

from __future__ import annotations

import grpc
import pytest
from clarifai_grpc.grpc.api import resources_pb2
from google.protobuf import struct_pb2

from collectors_module.api.proto import collectors_ext_pb2 as ext
from collectors_module.api.proto.collectors_ext_pb2_grpc import CollectorExtensionsStub
from collectors_module.capture.models import Capture, CaptureState
from collectors_module.collectors.models import COLLECTOR_INACTIVE, Collector
from collectors_module.core.protojson import from_dict, to_dict

from .test_api import BASE, builtin_body

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def ext_stub(grpc_server, dev_certs):
    credentials = grpc.ssl_channel_credentials(dev_certs["ca"].read_bytes())
    with grpc.secure_channel(grpc_server, credentials) as channel:
        yield CollectorExtensionsStub(channel)


def md(secret: str):
    return (("authorization", f"Key {secret}"),)


def uaid(user="alice", app="app1"):
    return resources_pb2.UserAppIDSet(user_id=user, app_id=app)


@pytest.fixture
def collector(api, alice):
    r = api.post(BASE, {"collectors": [builtin_body("ext", alice.key.public_id)]}, key=alice.secret)
    assert r["status"]["code"] == 10000, r
    c = Collector.objects.get(public_id="ext")
    for i in range(3):
        Capture.objects.create(collector=c, request_id=f"r{i}", caller=alice.user)
    return c


def test_capture_log_and_stats_over_grpc_match_rest(ext_stub, api, alice, collector):
    r = ext_stub.ListCollectorCaptures(
        ext.ListCollectorCapturesRequest(user_app_id=uaid(), collector_id="ext", per_page=2),
        metadata=md(alice.secret),
    )
    assert r.status.code == 10000, r.status
    assert [c.request_id for c in r.captures] == ["r2", "r1"]
    assert r.captures[0].caller_user_id == "alice"
    rest = api.get(f"{'/api' + BASE}/ext/captures", {"per_page": 2}, key=alice.secret)
    assert [c["id"] for c in rest["captures"]] == [c.id for c in r.captures]
    assert rest["captures"][0] == to_dict(r.captures[0])

    s = ext_stub.GetCollectorStats(
        ext.GetCollectorStatsRequest(user_app_id=uaid(), collector_id="ext", minutes=5),
        metadata=md(alice.secret),
    )
    assert (s.status.code, s.stats.accepted, s.stats.pending, len(s.timeline)) == (10000, 3, 3, 5)


def test_limits_over_grpc_flat_and_as_an_object(ext_stub, alice, collector):
    r = ext_stub.PatchCollectorLimits(
        ext.PatchCollectorLimitsRequest(user_app_id=uaid(), collector_id="ext", max_per_minute=7),
        metadata=md(alice.secret),
    )
    assert (r.status.code, r.limits.max_per_minute, r.limits.max_pending) == (10000, 7, 0)
    limits = struct_pb2.Struct()
    limits.update({"max_pending": 40})
    r = ext_stub.PatchCollectorLimits(
        ext.PatchCollectorLimitsRequest(user_app_id=uaid(), collector_id="ext", limits=limits),
        metadata=md(alice.secret),
    )
    assert (r.limits.max_per_minute, r.limits.max_pending) == (7, 40)
    bad = struct_pb2.Struct()
    bad.update({"per_week": 3})
    r = ext_stub.PatchCollectorLimits(
        ext.PatchCollectorLimitsRequest(user_app_id=uaid(), collector_id="ext", limits=bad),
        metadata=md(alice.secret),
    )
    assert r.status.code == 11102
    assert "per_week" in r.status.details
    r = ext_stub.PatchCollectorLimits(
        ext.PatchCollectorLimitsRequest(user_app_id=uaid(), collector_id="ext", max_per_day=-1),
        metadata=md(alice.secret),
    )
    assert r.status.code == 11102
    assert "max_per_day" in r.status.details
    got = ext_stub.GetCollectorLimits(
        ext.GetCollectorLimitsRequest(user_app_id=uaid(), collector_id="ext"),
        metadata=md(alice.secret),
    )
    assert (got.limits.max_per_minute, got.limits.max_pending, got.limits.max_per_day) == (7, 40, 0)
    c = Collector.objects.get(pk=collector.pk)
    assert (c.max_per_minute, c.max_pending, c.max_per_day) == (7, 40, 0)


def test_deactivate_over_grpc_discards_pending(ext_stub, alice, collector):
    r = ext_stub.DeactivateCollector(
        ext.DeactivateCollectorRequest(
            user_app_id=uaid(), collector_id="ext", discard_pending=True
        ),
        metadata=md(alice.secret),
    )
    assert (r.status.code, r.discarded) == (10000, 3), r.status
    assert Collector.objects.get(pk=collector.pk).status == COLLECTOR_INACTIVE
    assert set(Capture.objects.values_list("state", flat=True)) == {CaptureState.DROPPED}


def test_tenancy_scopes_and_app_keys_over_grpc(ext_stub, alice, bob, make_key, collector):
    request = ext.GetCollectorLimitsRequest(user_app_id=uaid(), collector_id="ext")
    assert ext_stub.GetCollectorLimits(request, metadata=md(bob.secret)).status.code == 11101
    assert ext_stub.GetCollectorLimits(request, metadata=md("nope")).status.code == 11008
    reader = make_key(alice.user, scopes=["Apps:Get"])
    r = ext_stub.GetCollectorLimits(request, metadata=md(reader.secret))
    assert r.status.code == 11007
    assert "Collectors:Get" in r.status.details
    read_only = make_key(alice.user, scopes=["Apps:Get", "Collectors:Get"])
    patch = ext.PatchCollectorLimitsRequest(user_app_id=uaid(), collector_id="ext", max_pending=1)
    assert ext_stub.PatchCollectorLimits(patch, metadata=md(read_only.secret)).status.code == 11007
    app_key = make_key(alice.user, app=alice.app, scopes=["Apps:Get", "Collectors:Get"])
    short = ext.ListCollectorCapturesRequest(collector_id="ext")
    assert len(ext_stub.ListCollectorCaptures(short, metadata=md(app_key.secret)).captures) == 3
    other = ext.ListCollectorCapturesRequest(user_app_id=uaid(app="other"), collector_id="ext")
    assert ext_stub.ListCollectorCaptures(other, metadata=md(app_key.secret)).status.code == 11101
    missing = ext.GetCollectorLimitsRequest(user_app_id=uaid(), collector_id="nope")
    assert ext_stub.GetCollectorLimits(missing, metadata=md(alice.secret)).status.code == 11101


def test_near_duplicate_option_and_preview_over_grpc(ext_stub, api, alice, bob, collector):
    r = ext_stub.PatchCollectorNearDuplicate(
        ext.PatchCollectorNearDuplicateRequest(
            user_app_id=uaid(), collector_id="ext", enabled=True, max_distance=5
        ),
        metadata=md(alice.secret),
    )
    assert r.status.code == 10000, r.status
    assert (r.near_duplicate.enabled, r.near_duplicate.max_distance) == (True, 5)
    rest = api.get(f"{'/api' + BASE}/ext/near_duplicate", key=alice.secret)
    assert rest["near_duplicate"] == {"enabled": True, "max_distance": 5}
    bad = ext_stub.PatchCollectorNearDuplicate(
        ext.PatchCollectorNearDuplicateRequest(
            user_app_id=uaid(), collector_id="ext", max_distance=99
        ),
        metadata=md(alice.secret),
    )
    assert bad.status.code != 10000
    # Another user cannot read it, nor preview in alice's app.
    other = ext_stub.GetCollectorNearDuplicate(
        ext.GetCollectorNearDuplicateRequest(user_app_id=uaid(), collector_id="ext"),
        metadata=md(bob.secret),
    )
    assert other.status.code != 10000
    draft = from_dict(builtin_body("ext", alice.key.public_id), resources_pb2.Collector)
    preview = ext_stub.PreviewCollector(
        ext.PreviewCollectorRequest(user_app_id=uaid(), collector=draft, max_inputs=10),
        metadata=md(alice.secret),
    )
    assert preview.status.code == 10000, preview.status
    assert preview.collector_id == "ext"
    assert preview.evaluated == 0  # the captures of the fixture hold no prediction
    denied = ext_stub.PreviewCollector(
        ext.PreviewCollectorRequest(user_app_id=uaid(), collector=draft),
        metadata=md(bob.secret),
    )
    assert denied.status.code != 10000
