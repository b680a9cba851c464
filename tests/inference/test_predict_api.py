"""PostModelOutputs through REST: path forms, tenancy, per-input statuses, limits, hooks."""

from __future__ import annotations

import http.server
import struct
import threading
import zlib

import pytest

from collectors_module.inference import hooks

from .conftest import COLOR_VERSION, MAIN, b64, image_input, solid, text_input

RED = solid((230, 10, 10))


def _top(output) -> str:
    return output["data"]["concepts"][0]["id"]


@pytest.fixture
def app_key(alice, make_key):
    return make_key(alice.user, app=alice.app).secret


@pytest.fixture
def own_sentiment(api, alice):
    """alice's private copy of the sentiment runner in app1."""
    body = {
        "model": {
            "id": "my-sentiment",
            "model_type_id": "text-classifier",
            "model_version": {"metadata": {"runner": "builtin:sentiment"}},
        }
    }
    r = api.post("/v2/users/alice/apps/app1/models", body, key=alice.secret)
    assert r["status"]["code"] == 10000, r
    return r["model"]


def test_predict_on_long_path_with_and_without_version(predict, alice):
    path = f"{MAIN}/models/color-recognition/versions/{COLOR_VERSION}/outputs"
    with_version = predict("color-recognition", [image_input(RED)], alice.secret, path=path)
    latest = predict("color-recognition", [image_input(RED)], alice.secret)
    for r in (with_version, latest):
        assert r["status"]["code"] == 10000, r
        assert _top(r["outputs"][0]) == "red"
        assert r["outputs"][0]["model"]["model_version"]["id"] == COLOR_VERSION
        assert r["outputs"][0]["model"]["user_id"] == "builtin"


def test_predict_on_short_paths_with_an_app_key_reaches_builtin_models(predict, app_key):
    for path in (
        "/v2/models/color-recognition/outputs",
        f"/v2/models/color-recognition/versions/{COLOR_VERSION}/outputs",
    ):
        r = predict("color-recognition", [image_input(RED)], app_key, path=path)
        assert r["status"]["code"] == 10000, r
        assert _top(r["outputs"][0]) == "red"


def test_short_path_with_app_key_prefers_the_keys_own_model(predict, app_key, own_sentiment):
    version = own_sentiment["model_version"]["id"]
    for path in (
        "/v2/models/my-sentiment/outputs",
        f"/v2/models/my-sentiment/versions/{version}/outputs",
    ):
        r = predict("my-sentiment", [text_input("I love this")], app_key, path=path)
        assert r["status"]["code"] == 10000, r
        assert r["outputs"][0]["model"]["user_id"] == "alice"
        assert _top(r["outputs"][0]) == "positive"


def test_short_path_with_a_pat_reaches_builtin_models(predict, alice):
    r = predict(
        "sentiment", [text_input("I love this")], alice.secret, path="/v2/models/sentiment/outputs"
    )
    assert r["status"]["code"] == 10000, r
    assert _top(r["outputs"][0]) == "positive"


def test_builtin_models_are_callable_by_every_user(predict, alice, bob):
    for tenant in (alice, bob):
        r = predict("sentiment", [text_input("I love this")], tenant.secret)
        assert r["status"]["code"] == 10000


def test_unknown_model_does_not_exist(predict, alice):
    r = predict("no-such-model", [image_input(RED)], alice.secret)
    assert (r["_http"], r["status"]["code"]) == (404, 11101)
    r = predict(
        "color-recognition",
        [image_input(RED)],
        alice.secret,
        path=f"{MAIN}/models/color-recognition/versions/{'0' * 32}/outputs",
    )
    assert (r["_http"], r["status"]["code"]) == (404, 11101)
    assert "version" in r["status"]["details"]


def test_other_tenants_private_model_does_not_exist(api, predict, alice, bob, own_sentiment):
    path = "/v2/users/alice/apps/app1/models/my-sentiment/outputs"
    r = predict("my-sentiment", [text_input("hi")], bob.secret, path=path)
    assert (r["_http"], r["status"]["code"]) == (404, 11101)
    r = api.get("/v2/users/alice/apps/app1/models/my-sentiment", key=bob.secret)
    assert (r["_http"], r["status"]["code"]) == (404, 11101)


def test_private_model_in_a_public_app_stays_hidden(api, predict, alice, bob, make_app):
    make_app(alice.user, "shared", visibility=50)
    body = {
        "model": {
            "id": "secret-colors",
            "model_type_id": "visual-classifier",
            "model_version": {"metadata": {"runner": "builtin:color-recognition"}},
        }
    }
    assert (
        api.post("/v2/users/alice/apps/shared/models", body, key=alice.secret)["status"]["code"]
        == 10000
    )
    body["model"].update(id="open-colors", visibility={"gettable": 50})
    assert (
        api.post("/v2/users/alice/apps/shared/models", body, key=alice.secret)["status"]["code"]
        == 10000
    )
    hidden = predict(
        "x",
        [image_input(RED)],
        bob.secret,
        path="/v2/users/alice/apps/shared/models/secret-colors/outputs",
    )
    assert hidden["status"]["code"] == 11101
    shown = predict(
        "x",
        [image_input(RED)],
        bob.secret,
        path="/v2/users/alice/apps/shared/models/open-colors/outputs",
    )
    assert shown["status"]["code"] == 10000
    listed = api.get("/v2/users/alice/apps/shared/models", key=bob.secret)
    assert [m["id"] for m in listed["models"]] == ["open-colors"]


def test_empty_input_fails_only_that_output_with_mixed_status(predict, alice):
    r = predict("color-recognition", [image_input(RED, "good"), {"id": "empty"}], alice.secret)
    assert (r["_http"], r["status"]["code"]) == (200, 10010)
    good, empty = r["outputs"]
    assert good["status"]["code"] == 10000
    assert good["input"]["id"] == "good"
    assert empty["status"]["code"] == 30104
    assert empty["input"]["id"] == "empty"
    assert "no data" in empty["status"]["details"]


def test_only_empty_input_reports_its_status(predict, alice):
    r = predict("color-recognition", [{}], alice.secret)
    assert r["status"]["code"] == 30104
    assert r["outputs"][0]["status"]["code"] == 30104


def test_invalid_base64_is_all_input_invalid_bytes(api, alice):
    body = {"inputs": [{"data": {"image": {"base64": "@@not base64@@"}}}]}
    r = api.post(f"{MAIN}/models/color-recognition/outputs", body, key=alice.secret)
    assert r["status"]["code"] == 30300


def test_bytes_that_are_not_an_image_fail_that_input(predict, alice):
    r = predict(
        "color-recognition",
        [{"data": {"image": {"base64": b64(b"hello, not an image")}}}, image_input(RED)],
        alice.secret,
    )
    assert r["status"]["code"] == 10010
    assert r["outputs"][0]["status"]["code"] == 30300
    assert r["outputs"][1]["status"]["code"] == 10000


def test_oversized_image_is_refused(predict, alice, settings):
    settings.MAX_IMAGE_BYTES = 2_000
    big = solid((1, 2, 3), (400, 400), fmt="BMP")  # ~480 kB
    r = predict("color-recognition", [image_input(big)], alice.secret)
    assert r["outputs"][0]["status"]["code"] == 30104


def _png_claiming(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims width x height pixels (a pixel flood)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + chunk(b"IEND", b"")
    )


def test_pixel_flood_image_is_refused_before_decoding(predict, alice):
    r = predict("color-recognition", [image_input(_png_claiming(50_000, 50_000))], alice.secret)
    assert r["outputs"][0]["status"]["code"] == 30104
    assert "pixels" in r["outputs"][0]["status"]["details"]


def test_128_inputs_are_accepted_and_129_refused(predict, alice):
    r = predict("sentiment", [text_input(f"I love item {i}") for i in range(128)], alice.secret)
    assert r["status"]["code"] == 10000
    assert len(r["outputs"]) == 128
    r = predict("sentiment", [text_input("x")] * 129, alice.secret)
    assert (r["_http"], r["status"]["code"]) == (400, 40001)
    assert "128" in r["status"]["details"]


def test_no_inputs_is_refused(predict, alice):
    r = predict("sentiment", [], alice.secret)
    assert r["status"]["code"] == 40001


def test_output_config_limits_concepts(predict, alice):
    img = solid((0, 0, 250), (40, 40))
    body = {"model": {"output_info": {"output_config": {"max_concepts": 1}}}}
    r = predict("sentiment", [text_input("I love this")], alice.secret, **body)
    assert [c["id"] for c in r["outputs"][0]["data"]["concepts"]] == ["positive"]
    body = {"model": {"output_info": {"output_config": {"select_concepts": [{"id": "white"}]}}}}
    r = predict("color-recognition", [image_input(img)], alice.secret, **body)
    assert r["outputs"][0]["data"].get("concepts", []) == []


def test_after_predict_hook_receives_the_event(predict, alice):
    events = []
    hooks.register_after_predict(events.append)
    try:
        r = predict("color-recognition", [image_input(RED, "in-1"), {"id": "in-2"}], alice.secret)
    finally:
        hooks._HOOKS.remove(events.append)
    assert r["status"]["code"] == 10010
    (event,) = events
    assert event.request_id == r["status"]["req_id"]
    assert event.caller == alice.user
    assert event.model_version.public_id == COLOR_VERSION
    assert event.model_version.model.app.owner.username == "builtin"
    assert [i.id for i in event.inputs] == ["in-1", "in-2"]
    assert event.inputs[0].data.image.base64 == RED
    assert [o.status.code for o in event.outputs] == [10000, 30104]
    assert event.outputs[0].data.concepts[0].id == "red"


def test_a_failing_hook_does_not_change_the_prediction(predict, alice):
    def broken(event):
        raise RuntimeError("hook bug")

    hooks.register_after_predict(broken)
    try:
        r = predict("color-recognition", [image_input(RED)], alice.secret)
    finally:
        hooks._HOOKS.remove(broken)
    assert r["status"]["code"] == 10000


@pytest.fixture
def image_server():
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.send_header("Content-Length", str(len(RED)))
            self.end_headers()
            self.wfile.write(RED)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def test_image_url_is_fetched_through_the_safe_fetcher(predict, alice, settings, image_server):
    settings.SAFE_FETCH_ALLOWED_HOSTS = [f"127.0.0.1:{image_server}"]
    events = []
    hooks.register_after_predict(events.append)
    try:
        r = predict(
            "color-recognition",
            [{"data": {"image": {"url": f"http://127.0.0.1:{image_server}/red.png"}}}],
            alice.secret,
        )
    finally:
        hooks._HOOKS.remove(events.append)
    assert r["status"]["code"] == 10000, r
    assert _top(r["outputs"][0]) == "red"
    assert r["outputs"][0]["input"]["data"]["image"]["url"].endswith("/red.png")
    assert events[0].fetched == {0: RED}


def test_url_to_a_loopback_address_is_refused(predict, alice, image_server):
    url = f"http://127.0.0.1:{image_server}/red.png"
    r = predict("color-recognition", [{"data": {"image": {"url": url}}}], alice.secret)
    assert r["outputs"][0]["status"]["code"] == 30106


def test_model_without_runner_cannot_predict(api, predict, alice):
    body = {"model": {"id": "bare", "model_type_id": "visual-classifier"}}
    assert (
        api.post("/v2/users/alice/apps/app1/models", body, key=alice.secret)["status"]["code"]
        == 10000
    )
    r = predict(
        "bare",
        [image_input(RED)],
        alice.secret,
        path="/v2/users/alice/apps/app1/models/bare/outputs",
    )
    assert r["status"]["code"] == 21203


def test_operator_model_cannot_predict(api, predict, alice):
    from collectors_module.inference.services import operator_types

    if "random-sample" not in operator_types():
        pytest.skip("workflows.model_types has no random-sample operator yet")
    body = {"model": {"id": "sampler", "model_type_id": "random-sample"}}
    r = api.post("/v2/users/alice/apps/app1/models", body, key=alice.secret)
    assert r["model"]["model_version"]["metadata"]["runner"] == "operator:random-sample"
    r = predict(
        "sampler",
        [image_input(RED)],
        alice.secret,
        path="/v2/users/alice/apps/app1/models/sampler/outputs",
    )
    assert r["status"]["code"] == 21203
    assert "operator" in r["status"]["details"]


def test_predict_path_costs_one_query_for_the_model_then_none(
    db, alice, django_assert_num_queries, settings
):
    from clarifai_grpc.grpc.api import resources_pb2

    from collectors_module.inference import selectors, services

    settings.CACHE_CHECK_SECONDS = 60  # no generation check inside this test
    selectors.builtin_model_version(alice.user, model_id="ocr")  # the first check and chores
    inputs = [
        resources_pb2.Input(data=resources_pb2.Data(text=resources_pb2.Text(raw="I love this")))
    ]
    with django_assert_num_queries(1):
        warm = selectors.builtin_model_version(alice.user, model_id="sentiment")
    services.predict(caller=alice.user, model_version=warm, inputs=inputs, request_id="warm")
    with django_assert_num_queries(0):
        version = selectors.builtin_model_version(alice.user, model_id="sentiment")
        outputs = services.predict(
            caller=alice.user, model_version=version, inputs=inputs, request_id="r"
        )
    assert outputs[0].data.concepts[0].id == "positive"


def test_bad_output_config_is_a_model_invalid_argument_not_a_crash(predict, alice):
    body = {"model": {"output_info": {"params": {"min_value": "lots"}}}}
    r = predict("sentiment", [text_input("I love this")], alice.secret, **body)
    assert (r["_http"], r["status"]["code"]) == (400, 21202)
    body = {"model": {"output_info": {"params": {"min_value": 0.5}}}}
    r = predict("sentiment", [text_input("I love this")], alice.secret, **body)
    assert [c["id"] for c in r["outputs"][0]["data"]["concepts"]] == ["positive"]
