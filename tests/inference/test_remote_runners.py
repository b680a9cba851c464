"""Remote-model runners against real HTTP servers the tests start on loopback and allow-list."""

from __future__ import annotations

import base64
import http.server
import io
import json
import threading
import time

import pytest
from clarifai_grpc.grpc.api import resources_pb2
from PIL import Image

from collectors_module.core.errors import SC, ApiError
from collectors_module.inference.runners.registry import get_runner
from collectors_module.inference.runners.remote import (
    check_endpoint_allowed,
    endpoint_allowed,
    make_remote_runner,
)


def png_bytes(color=(255, 0, 0)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), color).save(buf, "PNG")
    return buf.getvalue()


def image_data(raw: bytes | None = None) -> resources_pb2.Data:
    return resources_pb2.Data(image=resources_pb2.Image(base64=raw or png_bytes()))


CHAT_OK = {
    "choices": [{"index": 0, "message": {"role": "assistant", "content": " A red square. "}}]
}


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def reply(self, status: int, payload, content_type="application/json"):
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        length = int(self.headers.get("Content-Length", "0"))
        body = json.loads(self.rfile.read(length) or b"null")
        srv = self.server
        with srv.lock:
            srv.hits[self.path] = srv.hits.get(self.path, 0) + 1
            hit = srv.hits[self.path]
            srv.bodies.append((self.path, body, dict(self.headers)))
        path = self.path
        if path == "/v1/chat/completions":
            self.reply(200, CHAT_OK)
        elif path == "/v1/parts/chat/completions":
            content = [{"type": "text", "text": "two "}, {"type": "text", "text": "parts"}]
            self.reply(200, {"choices": [{"message": {"content": content}}]})
        elif path == "/v1/slow/chat/completions":
            time.sleep(2)
            self.reply(200, CHAT_OK)
        elif path == "/v1/drip/chat/completions":
            self.send_response(200)
            self.send_header("Content-Length", "1000")
            self.end_headers()
            try:
                for _ in range(1000):
                    self.wfile.write(b" ")
                    self.wfile.flush()
                    time.sleep(0.1)
            except OSError:
                pass
        elif path == "/v1/flaky/chat/completions":  # 500, 503, then success
            if hit <= 2:
                self.reply(500 if hit == 1 else 503, {"error": "warming up"})
            else:
                self.reply(200, CHAT_OK)
        elif path == "/v1/down/chat/completions":
            self.reply(500, {"error": "down"})
        elif path == "/v1/notfound/chat/completions":
            self.reply(404, {"error": "no such model"})
        elif path == "/v1/notjson/chat/completions":
            self.reply(200, b"<html>oops</html>", "text/html")
        elif path == "/v1/nochoices/chat/completions":
            self.reply(200, {"choices": []})
        elif path == "/v1/numeric/chat/completions":
            self.reply(200, {"choices": [{"message": {"content": 42}}]})
        elif path == "/v1/empty/chat/completions":
            self.reply(200, {"choices": [{"message": {"content": "  "}}]})
        elif path == "/v1/huge/chat/completions":
            self.reply(200, {"choices": [{"message": {"content": "x" * (6 * 2**20)}}]})
        elif path == "/v2/models/kserve/infer":
            self.reply(
                200,
                {
                    "model_name": "kserve",
                    "outputs": [
                        {
                            "name": "labels",
                            "datatype": "BYTES",
                            "shape": [3],
                            "data": ["dog", "cat", "car"],
                        },
                        {
                            "name": "scores",
                            "datatype": "FP32",
                            "shape": [3],
                            "data": [0.1, 0.85, 0.05],
                        },
                    ],
                },
            )
        elif path == "/v2/models/scores/infer":
            self.reply(
                200,
                {
                    "outputs": [
                        {"name": "probs", "datatype": "FP32", "shape": [2], "data": [0.3, 0.7]}
                    ]
                },
            )
        elif path == "/plain":
            self.reply(
                200, {"concepts": [{"id": "red", "value": 0.9}, {"id": "blue", "value": 0.2}]}
            )
        elif path == "/plain/out-of-range":
            self.reply(200, {"concepts": [{"id": "red", "value": 1.5}]})
        elif path == "/plain/nan":
            self.reply(200, b'{"concepts": [{"id": "red", "value": NaN}]}')
        elif path == "/plain/no-id":
            self.reply(200, {"concepts": [{"value": 0.5}]})
        elif path == "/kserve/mismatch":
            self.reply(200, {"outputs": [{"data": ["a", "b"]}, {"data": [0.5]}]})
        elif path == "/kserve/none":
            self.reply(200, {"something": "else"})
        else:
            self.reply(404, {"error": "unknown path"})


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), Handler)
        self.lock = threading.Lock()
        self.hits: dict[str, int] = {}
        self.bodies: list = []

    def handle_error(self, request, client_address):
        pass  # clients hanging up early (timeouts, byte caps) are part of the tests

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


@pytest.fixture(scope="module")
def server():
    srv = Server()
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield srv
    srv.shutdown()
    srv.server_close()


@pytest.fixture
def remote(server, settings, monkeypatch):
    """The test server allow-listed as an operator would; fast retries."""
    for name in (
        "REMOTE_MODEL_ALLOWED_ENDPOINTS",
        "REMOTE_MODEL_RETRIES",
        "REMOTE_MODEL_RETRY_BACKOFF",
    ):
        monkeypatch.delenv(name, raising=False)
    settings.REMOTE_MODEL_ALLOWED_ENDPOINTS = [
        f"{server.base}/v1/",
        f"{server.base}/v2/models",
        f"{server.base}/plain",
        f"{server.base}/kserve/",
    ]
    settings.REMOTE_MODEL_RETRY_BACKOFF = 0.05
    with server.lock:
        server.hits.clear()
        server.bodies.clear()
    return server


def chat(server, path="/v1/chat/completions", **config):
    return make_remote_runner(
        "openai-chat", {"url": server.base + path, "model": "llava", **config}
    )


def kserve(server, path="/v2/models/kserve/infer", **config):
    return make_remote_runner("kserve-v2", {"url": server.base + path, **config})


def only_error(results) -> ApiError:
    assert len(results) == 1
    assert isinstance(results[0], ApiError), results[0]
    assert results[0].code == SC.MODEL_PREDICTION_FAILED
    return results[0]


# --------------------------------------------------------------------------- openai-chat


def test_openai_chat_sends_the_image_as_a_data_url_and_returns_the_reply(remote):
    raw = png_bytes((0, 0, 255))
    results = chat(remote, prompt="What is it?").predict([image_data(raw)], {})
    assert results[0].text.raw == "A red square."
    ((_path, body, headers),) = remote.bodies
    assert body["model"] == "llava"
    content = body["messages"][0]["content"]
    assert content[0] == {"type": "text", "text": "What is it?"}
    url = content[1]["image_url"]["url"]
    assert url.startswith("data:image/png;base64,")
    assert base64.b64decode(url.split(",", 1)[1]) == raw
    assert "Authorization" not in headers


def test_openai_chat_default_prompt_and_text_input(remote):
    runner = chat(remote)
    runner.predict([resources_pb2.Data(text=resources_pb2.Text(raw="hello there"))], {})
    content = remote.bodies[0][1]["messages"][0]["content"]
    assert content == [
        {"type": "text", "text": "Describe this image in one sentence.\n\nhello there"}
    ]


def test_openai_chat_accepts_content_parts(remote):
    assert (
        chat(remote, "/v1/parts/chat/completions").predict([image_data()], {})[0].text.raw
        == "two parts"
    )


def test_api_key_is_sent_as_bearer_token(remote, settings):
    settings.REMOTE_MODEL_KEYS = {"REMOTE_MODEL_KEY_TEST": "sk-from-env"}
    settings.REMOTE_MODEL_CREDENTIAL_ENDPOINTS = {"REMOTE_MODEL_KEY_TEST": f"{remote.base}/v1/"}
    chat(remote).predict([image_data()], {})  # the operator's credential, bound to /v1/
    chat(remote, api_key="sk-in-config").predict([image_data()], {})  # the model's own wins
    assert [b[2]["Authorization"] for b in remote.bodies] == [
        "Bearer sk-from-env",
        "Bearer sk-in-config",
    ]
    for name in ("REMOTE_MODEL_KEY_TEST", "SECRET_KEY"):  # tenants never name credentials
        with pytest.raises(ApiError):
            chat(remote, api_key_env=name)


def test_many_inputs_get_one_result_each_in_order(remote):
    results = chat(remote).predict([image_data(png_bytes((i, 0, 0))) for i in range(10)], {})
    assert [r.text.raw for r in results] == ["A red square."] * 10
    sent = sorted(
        base64.b64decode(b[1]["messages"][0]["content"][1]["image_url"]["url"].split(",")[1])
        for b in remote.bodies
    )
    assert sent == sorted(png_bytes((i, 0, 0)) for i in range(10))


def test_timeout_is_model_prediction_failed_without_retry(remote):
    started = time.monotonic()
    error = only_error(
        chat(remote, "/v1/slow/chat/completions", timeout=0.5).predict([image_data()], {})
    )
    assert time.monotonic() - started < 1.5
    assert "0.5 s" in error.details
    assert remote.hits["/v1/slow/chat/completions"] == 1


def test_dripping_reply_meets_the_deadline(remote):
    started = time.monotonic()
    error = only_error(
        chat(remote, "/v1/drip/chat/completions", timeout=0.8).predict([image_data()], {})
    )
    assert time.monotonic() - started < 2.0
    assert "0.8 s" in error.details


def test_500_then_503_then_success_is_retried(remote):
    results = chat(remote, "/v1/flaky/chat/completions").predict([image_data()], {})
    assert results[0].text.raw == "A red square."
    assert remote.hits["/v1/flaky/chat/completions"] == 3


def test_persistent_500_fails_after_two_retries(remote):
    error = only_error(chat(remote, "/v1/down/chat/completions").predict([image_data()], {}))
    assert "HTTP 500" in error.details
    assert "3 attempts" in error.details
    assert remote.hits["/v1/down/chat/completions"] == 3


def test_4xx_is_not_retried(remote):
    error = only_error(chat(remote, "/v1/notfound/chat/completions").predict([image_data()], {}))
    assert "HTTP 404" in error.details
    assert remote.hits["/v1/notfound/chat/completions"] == 1


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        ("/v1/notjson/chat/completions", "not JSON"),
        ("/v1/nochoices/chat/completions", "choices[0]"),
        ("/v1/numeric/chat/completions", "not text"),
        ("/v1/empty/chat/completions", "empty"),
        ("/v1/huge/chat/completions", "larger than"),
    ],
)
def test_malformed_chat_reply_is_model_prediction_failed(remote, path, reason):
    error = only_error(chat(remote, path).predict([image_data()], {}))
    assert reason in error.details


def test_unreachable_endpoint_fails_after_retries(settings, monkeypatch):
    monkeypatch.delenv("REMOTE_MODEL_ALLOWED_ENDPOINTS", raising=False)
    settings.REMOTE_MODEL_ALLOWED_ENDPOINTS = [
        "http://127.0.0.1:9/"
    ]  # discard port: nothing listens
    settings.REMOTE_MODEL_RETRY_BACKOFF = 0.01
    runner = make_remote_runner(
        "openai-chat", {"url": "http://127.0.0.1:9/v1/chat/completions", "model": "m"}
    )
    error = only_error(runner.predict([image_data()], {}))
    assert "cannot reach" in error.details
    assert "3 attempts" in error.details


def test_input_without_image_or_text_fails_alone(remote):
    results = chat(remote).predict([resources_pb2.Data(), image_data()], {})
    assert isinstance(results[0], ApiError)
    assert results[0].code == SC.MODEL_PREDICTION_FAILED
    assert results[1].text.raw == "A red square."


# --------------------------------------------------------------------------- kserve-v2


def test_kserve_v2_request_and_labels_scores_reply(remote):
    raw = png_bytes()
    (data,) = kserve(remote).predict([image_data(raw)], {})
    assert [(c.id, round(c.value, 2)) for c in data.concepts] == [
        ("cat", 0.85),
        ("dog", 0.1),
        ("car", 0.05),
    ]
    body = remote.bodies[0][1]
    (item,) = body["inputs"]
    assert (item["name"], item["datatype"], item["shape"]) == ("image", "BYTES", [1])
    assert base64.b64decode(item["data"][0]) == raw
    assert item["parameters"]["content_type"] == "image/png"


def test_kserve_scores_only_use_the_configured_labels(remote):
    (data,) = kserve(remote, "/v2/models/scores/infer", labels=["day", "night"]).predict(
        [image_data()], {}
    )
    assert [c.id for c in data.concepts] == ["night", "day"]
    only_error(kserve(remote, "/v2/models/scores/infer").predict([image_data()], {}))


def test_plain_json_concepts_reply(remote):
    (data,) = kserve(remote, "/plain").predict([image_data()], {})
    assert [(c.id, c.name, round(c.value, 2)) for c in data.concepts] == [
        ("red", "red", 0.9),
        ("blue", "blue", 0.2),
    ]


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        ("/plain/out-of-range", "outside [0, 1]"),
        ("/plain/nan", "outside [0, 1]"),
        ("/plain/no-id", "concept id"),
        ("/kserve/mismatch", "1 scores for 2 labels"),
        ("/kserve/none", "neither"),
    ],
)
def test_malformed_kserve_reply_is_model_prediction_failed(remote, path, reason):
    assert reason in only_error(kserve(remote, path).predict([image_data()], {})).details


# --------------------------------------------------------------------------- allow-list


def test_endpoint_not_allow_listed_is_refused_at_creation_without_a_request(remote):
    port = remote.server_address[1]
    for url in [
        "http://169.254.169.254/v1/chat/completions",
        f"http://127.0.0.1:{port + 1}/v1/chat/completions",
        f"http://localhost:{port}/v1/chat/completions",
        f"https://127.0.0.1:{port}/v1/chat/completions",
        f"http://127.0.0.1:{port}/v1evil/chat/completions",
        f"http://127.0.0.1:{port}/v1/../admin",
        f"http://127.0.0.1:{port}/v1/%2e%2e/admin",
        f"http://user@127.0.0.1:{port}/v1/chat/completions",
        f"http://127.0.0.1:{port}@evil.example/v1/chat/completions",
        f"http://127.0.0.1:{port}/plainly-not",
        "file:///etc/passwd",
        "",
    ]:
        with pytest.raises(ApiError) as exc:
            make_remote_runner("openai-chat", {"url": url, "model": "m"})
        assert exc.value.code == SC.MODEL_INVALID_ARGUMENT, url
        assert not endpoint_allowed(url)
    assert remote.hits == {}
    assert check_endpoint_allowed(f"{remote.base}/v1/chat/completions")
    assert check_endpoint_allowed(f"{remote.base}/plain")


def test_no_allow_list_means_no_remote_models(settings, monkeypatch):
    monkeypatch.delenv("REMOTE_MODEL_ALLOWED_ENDPOINTS", raising=False)
    settings.REMOTE_MODEL_ALLOWED_ENDPOINTS = []
    with pytest.raises(ApiError) as exc:
        make_remote_runner("kserve-v2", {"url": "http://127.0.0.1:9/v2/models/x/infer"})
    assert exc.value.code == SC.MODEL_INVALID_ARGUMENT


def test_allow_list_given_as_one_comma_separated_string(settings):
    settings.REMOTE_MODEL_ALLOWED_ENDPOINTS = (
        "http://10.0.0.5:8000/v1/, https://api.example.com/v1/"
    )
    assert endpoint_allowed("https://api.example.com/v1/chat/completions")
    assert not endpoint_allowed("https://api.example.com/v2/chat/completions")


def test_narrowed_allow_list_fails_the_call_without_a_request(remote, settings):
    runner = chat(remote)
    settings.REMOTE_MODEL_ALLOWED_ENDPOINTS = []
    error = only_error(runner.predict([image_data()], {}))
    assert "allow-list" in error.details
    assert remote.hits == {}


@pytest.mark.parametrize(
    ("kind", "config"),
    [
        ("nope", {"url": "http://127.0.0.1:9/v1/"}),
        ("openai-chat", {"url": "http://127.0.0.1:9/v1/chat/completions"}),  # no model name
        (
            "openai-chat",
            {"url": "http://127.0.0.1:9/v1/chat/completions", "model": "m", "timeout": "soon"},
        ),
        (
            "openai-chat",
            {"url": "http://127.0.0.1:9/v1/chat/completions", "model": "m", "timeout": 10_000},
        ),
        (
            "openai-chat",
            {"url": "http://127.0.0.1:9/v1/chat/completions", "model": "m", "max_tokens": 0},
        ),
        ("kserve-v2", {"url": "http://127.0.0.1:9/v1/x", "labels": "a,b"}),
    ],
)
def test_bad_config_is_model_invalid_argument(settings, monkeypatch, kind, config):
    monkeypatch.delenv("REMOTE_MODEL_ALLOWED_ENDPOINTS", raising=False)
    settings.REMOTE_MODEL_ALLOWED_ENDPOINTS = ["http://127.0.0.1:9/v1/"]
    with pytest.raises(ApiError) as exc:
        make_remote_runner(kind, config)
    assert exc.value.code == SC.MODEL_INVALID_ARGUMENT


def test_registry_builds_remote_runners(remote):
    runner = get_runner(
        "remote:openai-chat", {"url": f"{remote.base}/v1/chat/completions", "model": "reg"}
    )
    assert runner.predict([image_data()], {})[0].text.raw == "A red square."
    assert remote.bodies[0][1]["model"] == "reg"


# --------------------------------------------------------------------------- through the API


def test_remote_model_created_and_predicted_through_the_rest_api(api, alice, remote):
    model = {
        "id": "captions",
        "model_type_id": "image-to-text",
        "model_version": {
            "metadata": {
                "runner": "remote:openai-chat",
                "url": f"{remote.base}/v1/chat/completions",
                "model": "llava",
            }
        },
    }
    r = api.post("/v2/users/alice/apps/app1/models", {"model": model}, key=alice.secret)
    assert r["status"]["code"] == SC.SUCCESS, r
    raw = png_bytes()
    body = {"inputs": [{"data": {"image": {"base64": base64.b64encode(raw).decode()}}}]}
    r = api.post("/v2/users/alice/apps/app1/models/captions/outputs", body, key=alice.secret)
    assert r["status"]["code"] == SC.SUCCESS, r
    assert r["outputs"][0]["data"]["text"]["raw"] == "A red square."
    sent = remote.bodies[-1][1]["messages"][0]["content"][1]["image_url"]["url"]
    assert base64.b64decode(sent.split(",", 1)[1]) == raw


def test_remote_model_failure_is_a_per_input_status_through_the_rest_api(api, alice, remote):
    model = {
        "id": "down",
        "model_type_id": "image-to-text",
        "model_version": {
            "metadata": {
                "runner": "remote:openai-chat",
                "url": f"{remote.base}/v1/down/chat/completions",
                "model": "m",
            }
        },
    }
    assert (
        api.post("/v2/users/alice/apps/app1/models", {"model": model}, key=alice.secret)["status"][
            "code"
        ]
        == SC.SUCCESS
    )
    body = {"inputs": [{"data": {"image": {"base64": base64.b64encode(png_bytes()).decode()}}}]}
    r = api.post("/v2/users/alice/apps/app1/models/down/outputs", body, key=alice.secret)
    assert r["_http"] < 500
    assert r["outputs"][0]["status"]["code"] == SC.MODEL_PREDICTION_FAILED, r
    assert "HTTP 500" in r["outputs"][0]["status"]["details"]
