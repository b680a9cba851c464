"""The general image models over TLS gRPC with the real clarifai-grpc client.

`test_the_sdk_predict_by_bytes_calls` replays the calls the Clarifai Python SDK's
`Model(url).predict_by_bytes(...)` makes (clarifai 12.x `client/model.py`: GetModel when the
model type is unknown, GetModelType for the input fields, then PostModelOutputs with the model
URL's user/app, the version, `model=` the model it read and one input with the bytes). The SDK
itself is not installed: every release pins ruff 0.11.4 and most need clarifai-grpc >= 12.4,
which conflict with this project's pins.
"""

from __future__ import annotations

import numpy as np
from clarifai_grpc.grpc.api import resources_pb2, service_pb2
from clarifai_grpc.grpc.api.status import status_code_pb2 as SC

from collectors_module.inference.runners.builtin import GENERAL_IMAGE_RECOGNITION_VERSION
from tests import photos

CLARIFAI_MAIN = resources_pb2.UserAppIDSet(user_id="clarifai", app_id="main")
BUILTIN_MAIN = resources_pb2.UserAppIDSet(user_id="builtin", app_id="main")


def md(secret: str):
    return (("authorization", f"Key {secret}"),)


def _image_input(raw: bytes) -> resources_pb2.Input:
    return resources_pb2.Input(data=resources_pb2.Data(image=resources_pb2.Image(base64=raw)))


def test_the_sdk_predict_by_bytes_calls(stub, alice):
    """Model("https://clarifai.com/clarifai/main/models/general-image-recognition")
    .predict_by_bytes(coffee_jpeg) as the SDK sends it."""
    got = stub.GetModel(
        service_pb2.GetModelRequest(
            user_app_id=CLARIFAI_MAIN,
            model_id="general-image-recognition",
            version_id=GENERAL_IMAGE_RECOGNITION_VERSION,
        ),
        metadata=md(alice.secret),
    )
    assert got.status.code == SC.SUCCESS, got.status
    assert got.model.model_type_id == "visual-classifier"
    mtype = stub.GetModelType(
        service_pb2.GetModelTypeRequest(
            user_app_id=CLARIFAI_MAIN, model_type_id=got.model.model_type_id
        ),
        metadata=md(alice.secret),
    )
    assert mtype.status.code == SC.SUCCESS, mtype.status
    assert list(mtype.model_type.input_fields) == ["image"]
    r = stub.PostModelOutputs(
        service_pb2.PostModelOutputsRequest(
            user_app_id=CLARIFAI_MAIN,
            model_id="general-image-recognition",
            version_id=GENERAL_IMAGE_RECOGNITION_VERSION,
            model=got.model,
            inputs=[_image_input(photos.photo("coffee"))],
        ),
        metadata=md(alice.secret),
    )
    assert r.status.code == SC.SUCCESS, r.status
    [out] = r.outputs
    assert out.data.concepts[0].id == photos.ESPRESSO
    assert out.data.concepts[0].name == "espresso"
    assert len(out.data.concepts) == 20
    assert out.model.model_version.id == GENERAL_IMAGE_RECOGNITION_VERSION


def test_embedding_and_caption_over_grpc(stub, alice):
    raws = [photos.photo("coffee"), photos.photo("chelsea")]
    r = stub.PostModelOutputs(
        service_pb2.PostModelOutputsRequest(
            user_app_id=BUILTIN_MAIN,
            model_id="general-image-embedding",
            inputs=[_image_input(raw) for raw in raws],
        ),
        metadata=md(alice.secret),
    )
    assert r.status.code == SC.SUCCESS, r.status
    vectors = [np.asarray(o.data.embeddings[0].vector) for o in r.outputs]
    assert [v.shape for v in vectors] == [(1280,), (1280,)]
    assert r.outputs[0].data.embeddings[0].num_dimensions == 1280
    assert float(vectors[0] @ vectors[1]) < 0.35
    r = stub.PostModelOutputs(
        service_pb2.PostModelOutputsRequest(
            user_app_id=BUILTIN_MAIN,
            model_id="general-english-image-caption",
            inputs=[_image_input(raws[0])],
        ),
        metadata=md(alice.secret),
    )
    assert r.status.code == SC.SUCCESS, r.status
    assert r.outputs[0].data.text.raw == "a photo of an espresso"


def test_max_concepts_through_output_config(stub, alice):
    model = resources_pb2.Model(
        output_info=resources_pb2.OutputInfo(
            output_config=resources_pb2.OutputConfig(max_concepts=2)
        )
    )
    r = stub.PostModelOutputs(
        service_pb2.PostModelOutputsRequest(
            user_app_id=CLARIFAI_MAIN,
            model_id="general-image-recognition",
            model=model,
            inputs=[_image_input(photos.photo("chelsea"))],
        ),
        metadata=md(alice.secret),
    )
    assert r.status.code == SC.SUCCESS, r.status
    assert {c.id for c in r.outputs[0].data.concepts} <= photos.CATS
    assert len(r.outputs[0].data.concepts) == 2


def test_list_model_types_describes_the_embedder(stub, alice):
    r = stub.ListModelTypes(
        service_pb2.ListModelTypesRequest(user_app_id=BUILTIN_MAIN), metadata=md(alice.secret)
    )
    assert r.status.code == SC.SUCCESS, r.status
    types = {t.id: t for t in r.model_types}
    assert list(types["visual-embedder"].input_fields) == ["image"]
    assert list(types["visual-embedder"].output_fields) == ["embeddings"]
    fields = {f.path for f in types["visual-classifier"].model_type_fields}
    assert {"output_info.params.max_concepts", "output_info.params.min_value"} <= fields
