"""The datasets RPCs and the collector dataset extension over the live TLS gRPC server."""

from __future__ import annotations

import grpc
import pytest
from clarifai_grpc.grpc.api import resources_pb2, service_pb2

from collectors_module.api.proto import collectors_ext_pb2 as ext
from collectors_module.api.proto.collectors_ext_pb2_grpc import CollectorExtensionsStub
from collectors_module.core.errors import SC
from collectors_module.datasets.models import CollectorDataset

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def channel(grpc_server, dev_certs):
    credentials = grpc.ssl_channel_credentials(dev_certs["ca"].read_bytes())
    with grpc.secure_channel(grpc_server, credentials) as ch:
        yield ch


def md(secret: str):
    return (("authorization", f"Key {secret}"),)


def test_datasets_and_the_collector_dataset_over_grpc(stub, channel, alice, bob, make_collector):
    v2 = stub
    ext_stub = CollectorExtensionsStub(channel)
    uaid = resources_pb2.UserAppIDSet(user_id=alice.user.username, app_id=alice.app.public_id)
    r = v2.PostDatasets(
        service_pb2.PostDatasetsRequest(
            user_app_id=uaid, datasets=[resources_pb2.Dataset(id="g1", description="grpc")]
        ),
        metadata=md(alice.secret),
    )
    assert r.status.code == SC.SUCCESS, r.status
    r = v2.GetDataset(
        service_pb2.GetDatasetRequest(user_app_id=uaid, dataset_id="g1"), metadata=md(alice.secret)
    )
    assert r.dataset.description == "grpc"
    r = v2.GetDataset(
        service_pb2.GetDatasetRequest(user_app_id=uaid, dataset_id="g1"), metadata=md(bob.secret)
    )
    assert r.status.code == SC.CONN_DOES_NOT_EXIST
    r = v2.PutDatasetVersionExports(
        service_pb2.PutDatasetVersionExportsRequest(
            user_app_id=uaid,
            dataset_id="g1",
            dataset_version_id="none",
            exports=[resources_pb2.DatasetVersionExport(format=resources_pb2.COCO)],
        ),
        metadata=md(alice.secret),
    )
    assert r.status.code == SC.CONN_DOES_NOT_EXIST

    collector = make_collector(alice, "gc")
    r = ext_stub.PutCollectorDataset(
        ext.PutCollectorDatasetRequest(user_app_id=uaid, collector_id="gc", dataset_id="g1"),
        metadata=md(alice.secret),
    )
    assert r.status.code == SC.SUCCESS, r.status
    assert r.dataset_id == "g1"
    assert CollectorDataset.objects.get(collector=collector).dataset.public_id == "g1"
    r = ext_stub.GetCollectorDataset(
        ext.GetCollectorDatasetRequest(user_app_id=uaid, collector_id="gc"), metadata=md(bob.secret)
    )
    assert r.status.code == SC.CONN_DOES_NOT_EXIST
    r = ext_stub.GetCollectorDataset(
        ext.GetCollectorDatasetRequest(user_app_id=uaid, collector_id="gc"),
        metadata=md(alice.secret),
    )
    assert r.dataset_id == "g1"
