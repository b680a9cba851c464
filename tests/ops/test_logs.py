"""JSON logs: one object per line with the request's context, never a key secret or image bytes;
plain text otherwise."""

from __future__ import annotations

import base64
import io
import json
import logging
import os
import subprocess
import sys

import pytest
from django.test import Client

from collectors_module.core import logs
from collectors_module.inference import hooks
from tests.support.capture import ROOT
from tests.support.pages import png_bytes


@pytest.fixture
def json_lines():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(logs.ContextFilter())
    handler.setFormatter(logs.JsonFormatter())
    logger = logging.getLogger("collectors")
    logger.addHandler(handler)
    old = logger.level
    logger.setLevel(logging.INFO)
    try:
        yield lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old)


def test_json_line_carries_the_context_and_the_extra_fields(json_lines):
    token = logs.bind(request_id="req-1", user="alice", app="app1")
    try:
        logging.getLogger("collectors.capture").info(
            "capture ended",
            extra={"collector": "c1", "capture_id": "abc", "state": "failed",
                   "reason": "key revoked", "duration_ms": 12.5},
        )  # fmt: skip
    finally:
        logs.reset(token)
    (line,) = json_lines()
    assert line["message"] == "capture ended"
    assert line["level"] == "INFO"
    assert line["logger"] == "collectors.capture"
    assert "time" in line
    for key, value in {
        "request_id": "req-1",
        "user": "alice",
        "app": "app1",
        "collector": "c1",
        "capture_id": "abc",
        "state": "failed",
        "reason": "key revoked",
        "duration_ms": 12.5,
    }.items():
        assert line[key] == value


def test_secrets_and_image_bytes_never_reach_the_log(json_lines):
    secret = "clct_" + "A1b2C3d4" * 5
    image = png_bytes()
    b64 = base64.b64encode(image * 20).decode()
    log = logging.getLogger("collectors.api")
    log.warning("auth failed for %s", secret)
    log.warning("header Authorization: Key %s seen", secret)
    log.warning("bad image %r", image)
    log.warning("body %s", json.dumps({"image": {"base64": b64}}))
    log.warning("extra", extra={"reason": f"key {secret} revoked"})
    try:
        raise ValueError(f"boom with {secret}")
    except ValueError:
        log.exception("failed")
    text = json.dumps(json_lines())
    assert secret not in text
    assert secret[5:] not in text
    assert b64[:100] not in text
    assert "[REDACTED]" in text
    assert "base64 " in text
    assert f"<{len(image)} bytes>" in text


def test_log_format_json_makes_every_process_write_json_lines():
    code = (
        "import logging; logging.getLogger('collectors.test').warning("
        "'hello %s', 'clct_" + "x" * 40 + "')"
    )
    env_json = {"LOG_FORMAT": "json", "COLLECTORS_DEV": "1"}
    out = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", code],
        cwd=ROOT,
        env={**_base_env(), **env_json},
        capture_output=True,
        text=True,
        timeout=60,
    )
    lines = [json.loads(line) for line in out.stderr.splitlines() if line.startswith("{")]
    assert [line["message"] for line in lines] == ["hello clct_[REDACTED]"], out.stderr
    text = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", code],
        cwd=ROOT,
        env={**_base_env(), "COLLECTORS_DEV": "1", "LOG_FORMAT": "text"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "WARNING collectors.test: hello clct_[REDACTED]" in text.stderr
    assert not text.stderr.lstrip().startswith("{")


def _base_env() -> dict:
    return {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}


@pytest.mark.django_db
def test_access_line_has_request_id_user_status_and_duration(alice, json_lines, settings):
    settings.LOG_REQUESTS = True
    client = Client()
    client.force_login(alice.user)
    client.get("/healthz", HTTP_X_REQUEST_ID="probe-42")
    client.get("/healthz", HTTP_X_REQUEST_ID="bad id with spaces")
    first, second = [line for line in json_lines() if line["logger"] == "collectors.access"]
    assert first["request_id"] == "probe-42"
    assert first["user"] == "alice"
    assert first["status"] == 200
    assert first["path"] == "/healthz"
    assert first["duration_ms"] >= 0
    assert second["request_id"] != "bad id with spaces"
    assert len(second["request_id"]) == 32


@pytest.mark.django_db
def test_api_calls_carry_request_id_user_and_app_in_the_log_context(alice, api, monkeypatch):
    seen = []
    monkeypatch.setattr(hooks, "_HOOKS", [*hooks._HOOKS, lambda event: seen.append(logs.context())])
    path = "/v2/users/builtin/apps/main/models/sentiment/outputs"
    body = {"inputs": [{"data": {"text": {"raw": "a fine day"}}}]}
    r = api.post(path, body, key=alice.secret, headers={"X-Request-ID": "client-7"})
    assert r["status"]["code"] == 10000
    (ctx,) = seen
    assert ctx["request_id"] == "client-7"
    assert ctx["transport"] == "rest"
    assert ctx["rpc"] == "PostModelOutputs"
    assert ctx["user"] == "alice"  # the caller
    assert ctx["app"] == "builtin/main"  # the app the call names
    assert logs.context().get("rpc") is None  # nothing left bound after the call
