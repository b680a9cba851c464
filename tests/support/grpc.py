"""A live TLS gRPC server (in-process, on the test database) and the real client's stub."""

from __future__ import annotations

import pytest
from clarifai_grpc.grpc.api import service_pb2_grpc

from collectors_module.api.grpc.server import ServerConfig, build_server
from collectors_module.api.management.commands.devcert import write_dev_certs


@pytest.fixture(scope="session")
def dev_certs(tmp_path_factory):
    return write_dev_certs(tmp_path_factory.mktemp("certs"))


@pytest.fixture
def grpc_server(transactional_db, dev_certs):
    """Yields 'localhost:PORT' of a TLS server sharing this test's database."""
    server, port = build_server(
        ServerConfig(
            address="127.0.0.1:0",
            cert_file=str(dev_certs["cert"]),
            key_file=str(dev_certs["key"]),
            max_workers=4,
            max_message_bytes=4 * 2**20,
        )
    )
    server.start()
    yield f"localhost:{port}"
    server.stop(2).wait(5)


@pytest.fixture
def stub(grpc_server, dev_certs):
    """The real client path: ClarifaiChannel.get_grpc_channel (TLS) and the generated V2Stub."""
    from clarifai_grpc.channel.clarifai_channel import ClarifaiChannel

    channel = ClarifaiChannel.get_grpc_channel(
        base=grpc_server, root_certificates_path=str(dev_certs["ca"])
    )
    yield service_pb2_grpc.V2Stub(channel)
    channel.close()
