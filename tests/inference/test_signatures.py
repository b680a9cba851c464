"""Method signatures in the form Clarifai's Python SDK reads them, and SDK-style method calls
(`data.parts` + `_method_name`) turned into plain inputs; `_GET_SIGNATURES` answered without
running the model."""

from __future__ import annotations

import json

import pytest
from clarifai_grpc.grpc.api import resources_pb2
from google.protobuf import json_format

from collectors_module.core.errors import SC, ApiError
from collectors_module.inference import signatures
from collectors_module.inference.runners.builtin import CATALOG

from .conftest import MAIN, b64, solid, text_image

T = resources_pb2.ModelTypeField.DataType


def sdk_input(method: str = "predict", **parts) -> dict:
    """An input as the SDK's model client writes it."""
    return {
        "data": {
            "parts": [{"id": name, "data": value} for name, value in parts.items()],
            "metadata": {"_method_name": method},
        }
    }


@pytest.mark.parametrize(
    ("model_type", "arg", "arg_type", "ret", "item"),
    [
        ("visual-classifier", "image", T.IMAGE, T.LIST, T.CONCEPT),
        ("visual-detector", "image", T.IMAGE, T.LIST, T.REGION),
        ("image-to-text", "image", T.IMAGE, T.TEXT, None),
        ("text-classifier", "text", T.TEXT, T.LIST, T.CONCEPT),
    ],
)
def test_one_predict_method_per_runnable_model_type(model_type, arg, arg_type, ret, item):
    for runner in ("builtin:x", "remote:openai-chat"):
        (sig,) = signatures.method_signatures(model_type, runner)
        assert sig.name == "predict"
        assert sig.method_type == resources_pb2.RunnerMethodType.UNARY_UNARY
        assert [(f.name, f.type, f.required) for f in sig.input_fields] == [(arg, arg_type, True)]
        (out,) = sig.output_fields
        assert (out.name, out.type) == ("return", ret)
        assert [a.type for a in out.type_args] == ([item] if item else [])


def test_operators_and_models_without_a_runner_have_no_methods():
    assert signatures.method_signatures("random-sample", "operator:random-sample") == []
    assert signatures.method_signatures("visual-classifier", "") == []
    assert signatures.method_signatures("unknown-type", "builtin:x") == []


def test_signatures_json_is_what_the_sdk_parses():
    sigs = signatures.method_signatures("text-classifier", "builtin:sentiment")
    parsed = {
        name: json_format.ParseDict(d, resources_pb2.MethodSignature())
        for name, d in json.loads(signatures.signatures_json(sigs)).items()
    }
    assert parsed == {"predict": sigs[0]}


def _pb(body: dict) -> resources_pb2.Input:
    return json_format.ParseDict(body, resources_pb2.Input())


def test_unpack_turns_parts_into_plain_data_and_drops_only_the_method_name():
    sigs = signatures.method_signatures("text-classifier", "builtin:sentiment")
    body = sdk_input(text={"text": {"raw": "hi"}})
    body["data"]["metadata"]["source"] = "crm"
    plain = signatures.unpack_input(_pb(body), sigs)
    assert plain.data.text.raw == "hi"
    assert not plain.data.parts
    assert json_format.MessageToDict(plain.data.metadata) == {"source": "crm"}
    as_str = signatures.unpack_input(_pb(sdk_input(text={"string_value": "yo"})), sigs)
    assert as_str.data.text.raw == "yo"
    untouched = _pb({"id": "x", "data": {"text": {"raw": "plain"}}})
    assert signatures.unpack_input(untouched, sigs) is untouched


@pytest.mark.parametrize(
    ("body", "code", "needle"),
    [
        (
            sdk_input("generate", text={"text": {"raw": "a"}}),
            SC.MODEL_INVALID_ARGUMENT,
            "no method 'generate'",
        ),
        (
            sdk_input(prompt={"text": {"raw": "a"}}),
            SC.INPUT_INVALID_ARGUMENT,
            "unexpected argument 'prompt'",
        ),
        (
            sdk_input(text={"image": {"url": "https://x.test/a.png"}}),
            SC.INPUT_INVALID_ARGUMENT,
            "must be a text",
        ),
    ],
)
def test_unpack_refuses_bad_calls(body, code, needle):
    sigs = signatures.method_signatures("text-classifier", "builtin:sentiment")
    with pytest.raises(ApiError) as exc:
        signatures.unpack_input(_pb(body), sigs)
    assert exc.value.code == code
    assert needle in exc.value.details


# --- over the API --------------------------------------------------------------------------------


def test_every_builtin_version_lists_its_signature(api, alice):
    for spec in CATALOG:
        r = api.get(f"{MAIN}/models/{spec.model_id}/versions/{spec.version_id}", key=alice.secret)
        (sig,) = r["model_version"]["method_signatures"]
        assert sig["name"] == "predict"
        assert sig["input_fields"][0]["name"] == spec.input_fields[0]
        got = api.get(f"{MAIN}/models/{spec.model_id}", key=alice.secret)
        assert got["model"]["model_version"]["method_signatures"] == [sig]


def test_remote_versions_list_signatures_and_operators_none(api, alice, settings, monkeypatch):
    monkeypatch.delenv("REMOTE_MODEL_ALLOWED_ENDPOINTS", raising=False)
    settings.REMOTE_MODEL_ALLOWED_ENDPOINTS = ["http://127.0.0.1:9/v1/"]
    base = "/v2/users/alice/apps/app1/models"
    remote = {
        "id": "captioner",
        "model_version": {
            "metadata": {
                "runner": "remote:openai-chat",
                "url": "http://127.0.0.1:9/v1/chat/completions",
                "model": "m",
            }
        },
    }
    r = api.post(base, {"model": remote}, key=alice.secret)
    assert r["status"]["code"] == SC.SUCCESS, r
    (sig,) = r["model"]["model_version"]["method_signatures"]
    assert sig["input_fields"][0]["name"] == "image"
    assert sig["output_fields"][0]["type"] == T.TEXT
    op = {
        "id": "sampler",
        "model_type_id": "random-sample",
        "output_info": {"params": {"keep_fraction": 1}},
    }
    r = api.post(base, {"model": op}, key=alice.secret)
    assert not r["model"]["model_version"].get("method_signatures")


def test_get_signatures_call_is_answered_without_running_the_model(api, alice):
    r = api.post(
        f"{MAIN}/models/sentiment/outputs",
        {"inputs": [{"data": {"parts": [{}], "metadata": {"_method_name": "_GET_SIGNATURES"}}}]},
        key=alice.secret,
    )
    assert r["status"]["code"] == SC.SUCCESS, r
    (out,) = r["outputs"]
    assert not out["data"].get("concepts")
    parsed = json.loads(out["data"]["text"]["raw"])
    assert list(parsed) == ["predict"]
    assert parsed["predict"]["inputFields"][0]["name"] == "text"


def test_sdk_style_calls_predict_on_image_and_text_models(api, alice):
    r = api.post(
        f"{MAIN}/models/color-recognition/outputs",
        {"inputs": [sdk_input(image={"image": {"base64": b64(solid("red"))}})]},
        key=alice.secret,
    )
    assert r["status"]["code"] == SC.SUCCESS, r
    assert r["outputs"][0]["data"]["concepts"][0]["id"] == "red"
    assert not r["outputs"][0]["input"]["data"].get("parts")
    r = api.post(
        f"{MAIN}/models/ocr/outputs",
        {"inputs": [sdk_input(image={"image": {"base64": b64(text_image("HELLO 42"))}})]},
        key=alice.secret,
    )
    assert r["outputs"][0]["data"]["text"]["raw"].replace(" ", "") == "HELLO42"
    r = api.post(
        f"{MAIN}/models/sentiment/outputs",
        {"inputs": [sdk_input(text={"text": {"raw": "I love it"}})]},
        key=alice.secret,
    )
    assert r["outputs"][0]["data"]["concepts"][0]["id"] == "positive"


def test_bad_sdk_style_calls_are_refused_not_500(api, alice):
    r = api.post(
        f"{MAIN}/models/color-recognition/outputs",
        {"inputs": [sdk_input(text={"text": {"raw": "not an image"}})]},
        key=alice.secret,
    )
    assert (r["_http"], r["status"]["code"]) == (400, SC.INPUT_INVALID_ARGUMENT)
    r = api.post(
        f"{MAIN}/models/color-recognition/outputs",
        {"inputs": [sdk_input("stream", image={"image": {"base64": b64(solid("red"))}})]},
        key=alice.secret,
    )
    assert (r["_http"], r["status"]["code"]) == (400, SC.MODEL_INVALID_ARGUMENT)
    r = api.post(f"{MAIN}/models/sentiment/outputs", {"inputs": [sdk_input()]}, key=alice.secret)
    assert (r["_http"], r["status"]["code"]) == (400, SC.INPUT_INVALID_ARGUMENT)


def test_sdk_inference_params_and_output_config_apply(api, alice):
    """The SDK puts them in model.model_version.output_info."""
    r = api.post(
        f"{MAIN}/models/sentiment/outputs",
        {
            "inputs": [{"data": {"text": {"raw": "I love it"}}}],
            "model": {"model_version": {"output_info": {"output_config": {"max_concepts": 1}}}},
        },
        key=alice.secret,
    )
    assert len(r["outputs"][0]["data"]["concepts"]) == 1
