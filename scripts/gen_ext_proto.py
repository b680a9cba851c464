"""Regenerate collectors_ext_pb2.py and collectors_ext_pb2_grpc.py (the client stub,
`CollectorExtensionsStub`) in collectors_module/api/proto/ from collectors_ext.proto.

Needs grpcio-tools whose protoc is no newer than the protobuf runtime in requirements.txt (not a
runtime dependency; grpcio-tools 1.76.0 makes 6.31 code, which protobuf 6.33 loads) in a venv of
its own with clarifai-grpc and googleapis-common-protos, then
`<that venv>/bin/python scripts/gen_ext_proto.py`. clarifai-grpc ships no .proto files, so the files
ours imports are handed to protoc as a descriptor set read from the installed Python modules, and
the generated imports are pointed at clarifai_grpc's module paths.
"""

from __future__ import annotations

import re
import sys
import tempfile
from pathlib import Path

from clarifai_grpc.grpc.api import resources_pb2
from clarifai_grpc.grpc.api.status import status_pb2
from clarifai_grpc.grpc.auth.scope import scope_pb2
from clarifai_grpc.grpc.auth.types import types_pb2
from clarifai_grpc.grpc.auth.util import extension_pb2
from google.api import annotations_pb2
from google.protobuf import descriptor_pb2, struct_pb2
from grpc_tools import protoc

HERE = Path(__file__).resolve().parent.parent / "collectors_module" / "api" / "proto"
ROOTS = (
    annotations_pb2,
    struct_pb2,
    resources_pb2,
    status_pb2,
    scope_pb2,
    types_pb2,
    extension_pb2,
)


def _descriptor_set() -> bytes:
    files: dict[str, descriptor_pb2.FileDescriptorProto] = {}

    def add(fd) -> None:
        if fd.name in files:
            return
        for dep in fd.dependencies:
            add(dep)
        proto = descriptor_pb2.FileDescriptorProto()
        fd.CopyToProto(proto)
        files[fd.name] = proto

    for module in ROOTS:
        add(module.DESCRIPTOR)
    return descriptor_pb2.FileDescriptorSet(file=list(files.values())).SerializeToString()


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        deps = Path(tmp) / "deps.pb"
        deps.write_bytes(_descriptor_set())
        rc = protoc.main(
            [
                "protoc",
                f"--descriptor_set_in={deps}",
                f"--proto_path={HERE}",
                f"--python_out={HERE}",
                f"--grpc_python_out={HERE}",
                str(HERE / "collectors_ext.proto"),
            ]
        )
    if rc:
        return rc
    out = HERE / "collectors_ext_pb2.py"
    text = out.read_text()
    # protoc names Python modules after .proto paths; clarifai_grpc's live under clarifai_grpc.grpc.
    text = re.sub(r"^from proto\.clarifai\.", "from clarifai_grpc.grpc.", text, flags=re.M)
    out.write_text(text)
    stub = HERE / "collectors_ext_pb2_grpc.py"
    stub.write_text(
        stub.read_text().replace(
            "import collectors_ext_pb2 as",
            "from collectors_module.api.proto import collectors_ext_pb2 as",
        )
    )
    print(f"wrote {out} and {stub}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
