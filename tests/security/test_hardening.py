"""Regression tests for the security review of issue 15, one section per finding class."""

from __future__ import annotations

import http.server
import io
import json
import logging
import os
import re
import threading
import time
from datetime import timedelta

import pytest
from django.utils import timezone

from collectors_module.api.descriptors import all_rpcs
from collectors_module.api.dispatch import implemented
from collectors_module.api.rest.transport import route_table
from collectors_module.core.errors import SC

SENTIMENT_VERSION = "996e3c70d6372b1e7e3c10875ebd2b8b"


def builtin_collector(collector_id: str, key_id: str, caller: str = "alice") -> dict:
    return {
        "id": collector_id,
        "pre_queue_random_sample": 1.0,
        "collector_source": {
            "api_post_model_outputs_collector_source": {
                "model_user_id": "builtin",
                "model_app_id": "main",
                "model_id": "sentiment",
                "model_version_id": SENTIMENT_VERSION,
                "post_inputs_key_id": key_id,
                "caller_user_id": caller,
            }
        },
    }


# -- 10. page and per_page are bounded on every list route ---------------------------------------


def _paged_get_routes():
    done = implemented()
    for template, verbs in sorted(route_table().items()):
        name = verbs.get("get", ("", ""))[0]
        if name in done and "page" in all_rpcs()[name].request_cls.DESCRIPTOR.fields_by_name:
            yield template, name


PAGED = list(_paged_get_routes())


def test_every_paged_route_is_found():
    names = {name for _t, name in PAGED}
    assert {"ListCollectorCaptures", "ListInputs", "ListModels", "ListKeys"} <= names


@pytest.mark.parametrize(
    "params",
    [
        {"page": "4294967295", "per_page": "1000"},
        {"page": "100001"},
        {"page": "1", "per_page": "4294967295"},
        {"page": "999999999999999999"},
    ],
)
def test_huge_pages_are_invalid_requests_never_500(api, alice, params):
    r = api.post(
        "/v2/users/alice/apps/app1/collectors",
        {"collectors": [builtin_collector("paged", alice.key.public_id)]},
        key=alice.secret,
    )
    assert r["status"]["code"] == SC.SUCCESS, r
    for template, name in PAGED:
        path = template.replace("{user_app_id.user_id}", "alice")
        path = path.replace("{user_app_id.app_id}", "app1").replace("{collector_id}", "paged")
        path = re.sub(r"\{[^}]+\}", "nothing-here", path)
        r = api.get(path, params, key=alice.secret)
        assert r["_http"] in (400, 404), (name, path, r)
        if r["_http"] == 400:
            assert r["status"]["code"] in (SC.CONN_INVALID_REQUEST, SC.CONN_BAD_REQUEST_FORMAT)
        else:
            assert "nothing-here" in path, (name, path, r)


def test_capture_log_pages_within_bounds_still_work(api, alice):
    api.post(
        "/v2/users/alice/apps/app1/collectors",
        {"collectors": [builtin_collector("paged", alice.key.public_id)]},
        key=alice.secret,
    )
    base = "/api/v2/users/alice/apps/app1/collectors/paged/captures"
    r = api.get(base, {"page": "100000", "per_page": "1000"}, key=alice.secret)
    assert r["_http"] == 200, r
    assert r.get("captures", []) == []
    r = api.get(base, {"page": "100001"}, key=alice.secret)
    assert r["status"]["code"] == SC.CONN_INVALID_REQUEST
    assert "page may be at most" in r["status"]["details"]


# -- 11. ids are full matches: a trailing newline (or any control character) is refused ---------


@pytest.mark.parametrize("bad", ["ok-id\n", "ok-id\r\n", "ok\nid", "ok-id\x00", "\nok-id"])
def test_id_validation_is_a_full_match(bad):
    from collectors_module.core.ids import is_valid_id

    assert not is_valid_id(bad)
    assert is_valid_id("ok-id")


def test_pattern_helpers_refuse_a_trailing_newline():
    from collectors_module.collectors.forms import _SOURCE_RES
    from collectors_module.modules.selectors import _BARE_SLUG_RE, _MODULE_PATH_RE
    from collectors_module.modules.services import _SLUG_RE

    path = "/users/alice/apps/app1/models/m1"
    assert all(p.match(path + "\n") is None for p in _SOURCE_RES)
    assert any(p.match(path) for p in _SOURCE_RES)
    assert _MODULE_PATH_RE.search("/modules/collectors\n") is None
    assert _MODULE_PATH_RE.search("/modules/collectors")
    assert not _SLUG_RE.fullmatch("slug\n")
    assert not _BARE_SLUG_RE.fullmatch("slug\n")


@pytest.mark.parametrize("suffix", ["\n", "\r", "\t", "\x7f"])
def test_api_refuses_ids_with_control_characters(api, alice, suffix):
    base = "/v2/users/alice/apps/app1"
    r = api.post(f"{base}/concepts", {"concepts": [{"id": "c" + suffix}]}, key=alice.secret)
    assert r["_http"] == 400, r
    r = api.post(
        f"{base}/models",
        {"model": {"id": "m" + suffix, "model_type_id": "text-classifier"}},
        key=alice.secret,
    )
    assert r["_http"] == 400, r
    r = api.post(
        f"{base}/collectors",
        {"collectors": [builtin_collector("c" + suffix, alice.key.public_id)]},
        key=alice.secret,
    )
    assert r["_http"] == 400, r
    r = api.post("/v2/users/alice/apps", {"apps": [{"id": "a" + suffix}]}, key=alice.secret)
    assert r["_http"] == 400, r
    listed = api.get(f"{base}/concepts", key=alice.secret)
    assert all(c["id"] != "c" + suffix for c in listed.get("concepts", []))


# -- 9. secrets never in URL paths; log lines are scrubbed of anything shaped like one ----------


def test_delete_and_get_key_refuse_a_secret_in_the_path(api, alice, make_key):
    other = make_key(alice.user, scopes=["Predict"])
    for method in (api.delete, api.get):
        r = method(f"/v2/users/alice/keys/{other.secret}", key=alice.secret)
        assert r["_http"] == 400, r
        assert r["status"]["code"] == SC.CONN_INVALID_REQUEST
        assert other.secret not in json.dumps(r)
    assert api.get("/v2/myscopes", key=other.secret)["status"]["code"] == SC.SUCCESS
    r = api.delete(f"/v2/users/alice/keys/{other.key.public_id}", key=alice.secret)
    assert r["status"]["code"] == SC.SUCCESS


def test_no_route_takes_a_secret_in_any_path_variable(api, alice):
    for path in (
        f"/v2/users/alice/apps/{alice.secret}/inputs",
        f"/v2/users/{alice.secret}/apps",
        f"/v2/users/alice/apps/app1/models/{alice.secret}",
    ):
        r = api.get(path, key=alice.secret)
        assert r["_http"] == 400, (path, r)
        assert "never accepted in a URL path" in r["status"]["details"]


def _scrubbing_handler():
    from collectors_module.core.logscrub import ScrubSecretsFilter

    handlers = [
        h
        for h in logging.getLogger().handlers
        if any(isinstance(f, ScrubSecretsFilter) for f in h.filters)
    ]
    assert handlers, "settings.LOGGING installs the scrubbing filter on the root handler"
    return handlers[0]


def test_log_lines_never_carry_a_key_secret(api, alice, make_key):
    other = make_key(alice.user, scopes=["Predict"])
    handler = _scrubbing_handler()
    stream = io.StringIO()
    old = handler.setStream(stream)
    try:
        api.delete(f"/v2/users/alice/keys/{other.secret}", key=alice.secret)
        log = logging.getLogger("collectors.test")
        log.warning("header was Authorization: Key %s", other.secret)
        log.warning("odd key %s in %s", other.secret[:20], {"authorization": "Bearer abc123"})
        try:
            raise ValueError(f"bad value {other.secret}")
        except ValueError:
            log.exception("failed")
    finally:
        handler.setStream(old)
    out = stream.getvalue()
    assert "keys/clct_[REDACTED]" in out  # Django's "Bad Request: <path>" line, scrubbed
    assert other.secret not in out
    assert other.secret[:20] not in out
    assert "abc123" not in out
    assert "ValueError: bad value clct_[REDACTED]" in out


# -- 3. PatchKeys: expiries only come forward; changing another key needs its scopes + delete -----

KEYS = "/v2/users/alice/keys"


def _expiring_key(make_key, user, scopes, days=7):
    from collectors_module.accounts.models import Key

    k = make_key(user, scopes=scopes)
    expiry = timezone.now() + timedelta(days=days)
    Key.objects.filter(pk=k.key.pk).update(expires_at=expiry)
    k.key.refresh_from_db()
    return k


def test_a_key_cannot_clear_or_extend_its_own_expiry(api, alice, make_key):
    k = _expiring_key(make_key, alice.user, ["Keys:Add", "Keys:Get"])
    before = k.key.expires_at
    attempts = [
        {"action": "overwrite", "keys": [{"id": k.key.public_id, "description": "no expiry"}]},
        {
            "action": "merge",
            "keys": [{"id": k.key.public_id, "expires_at": "9999-12-31T00:00:00Z"}],
        },
        {
            "action": "overwrite",
            "keys": [{"id": k.key.public_id, "expires_at": "1970-01-01T00:00:00Z"}],
        },
    ]
    codes = [api.patch(KEYS, body, key=k.secret)["status"]["code"] for body in attempts]
    # The plain overwrite succeeds but keeps the expiry; the other two are refused.
    assert codes == [SC.SUCCESS, SC.CONN_INVALID_REQUEST, SC.CONN_INVALID_REQUEST]
    k.key.refresh_from_db()
    assert k.key.expires_at == before
    assert k.key.description == "no expiry"
    sooner = (before - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    body = {"action": "merge", "keys": [{"id": k.key.public_id, "expires_at": sooner}]}
    assert api.patch(KEYS, body, key=k.secret)["status"]["code"] == SC.SUCCESS
    k.key.refresh_from_db()
    assert k.key.expires_at < before


def test_changing_another_key_needs_its_scopes_and_keys_delete(api, alice, make_key):
    victim = make_key(alice.user, scopes=["Predict", "Inputs:Get"])
    weak = make_key(alice.user, scopes=["Keys:Add", "Keys:Get"])
    no_delete = make_key(alice.user, scopes=["Keys:Add", "Keys:Get", "Predict", "Inputs:Get"])
    strong = make_key(
        alice.user, scopes=["Keys:Add", "Keys:Get", "Keys:Delete", "Predict", "Inputs:Get"]
    )
    cut = {"action": "remove", "keys": [{"id": victim.key.public_id, "scopes": ["Inputs:Get"]}]}
    soon = (timezone.now() + timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%SZ")
    expire = {"action": "merge", "keys": [{"id": victim.key.public_id, "expires_at": soon}]}
    for actor in (weak, no_delete):
        for body in (cut, expire):
            r = api.patch(KEYS, body, key=actor.secret)
            assert r["status"]["code"] == SC.CONN_INSUFFICIENT_SCOPES, r
    victim.key.refresh_from_db()
    assert victim.key.scopes == ["Predict", "Inputs:Get"]
    assert victim.key.expires_at is None
    assert api.patch(KEYS, cut, key=strong.secret)["status"]["code"] == SC.SUCCESS
    victim.key.refresh_from_db()
    assert victim.key.scopes == ["Predict"]


# -- 1. the acting key's own access governs collector create/change ------------------------------


def _model(api, secret, app_id, model_id="src-model") -> dict:
    body = {
        "model": {
            "id": model_id,
            "model_type_id": "text-classifier",
            "model_version": {"metadata": {"runner": "builtin:sentiment"}},
        }
    }
    r = api.post(f"/v2/users/alice/apps/{app_id}/models", body, key=secret)
    assert r["status"]["code"] == SC.SUCCESS, r
    return r["model"]


def _source_collector(collector_id, model, app_id, key_ref, caller="alice") -> dict:
    return {
        "id": collector_id,
        "pre_queue_random_sample": 1.0,
        "collector_source": {
            "api_post_model_outputs_collector_source": {
                "model_user_id": "alice",
                "model_app_id": app_id,
                "model_id": model["id"],
                "model_version_id": model["model_version"]["id"],
                "post_inputs_key_id": key_ref,
                "caller_user_id": caller,
            }
        },
    }


@pytest.fixture
def two_apps(api, alice, make_app, make_key):
    make_app(alice.user, "other-app")
    private = _model(api, alice.secret, "other-app", "private-model")
    own = _model(api, alice.secret, "app1", "own-model")
    app_key = make_key(alice.user, scopes=["All"], app=alice.app)
    return type("W", (), {"private": private, "own": own, "app_key": app_key})


def test_app_key_cannot_collect_from_a_model_it_cannot_read(api, alice, two_apps):
    url = "/v2/users/alice/apps/app1/collectors"
    w = two_apps
    for ref in (alice.key.public_id, alice.secret, w.app_key.key.public_id):
        body = {"collectors": [_source_collector("steal", w.private, "other-app", ref)]}
        r = api.post(url, body, key=w.app_key.secret)
        assert r["status"]["code"] == SC.MODEL_DOES_NOT_EXIST, (ref, r)
    assert api.get(f"{url}/steal", key=alice.secret)["_http"] == 404
    # The owner's PAT may (it reads both apps).
    body = {"collectors": [_source_collector("fine", w.private, "other-app", alice.key.public_id)]}
    assert api.post(url, body, key=alice.secret)["status"]["code"] == SC.SUCCESS


def test_app_key_cannot_change_a_collector_to_a_model_it_cannot_read(api, alice, two_apps):
    url = "/v2/users/alice/apps/app1/collectors"
    w = two_apps
    body = {"collectors": [_source_collector("mine", w.own, "app1", alice.key.public_id)]}
    assert api.post(url, body, key=alice.secret)["status"]["code"] == SC.SUCCESS
    moved = _source_collector("mine", w.private, "other-app", "")
    r = api.patch(url, {"action": "overwrite", "collectors": [moved]}, key=w.app_key.secret)
    assert r["status"]["code"] == SC.MODEL_DOES_NOT_EXIST, r
    got = api.get(f"{url}/mine", key=alice.secret)["collector"]["collector_source"]
    assert got["api_post_model_outputs_collector_source"]["model_app_id"] == "app1"


def test_acting_key_names_only_keys_it_could_create_or_was_shown(api, alice, two_apps, make_key):
    url = "/v2/users/alice/apps/app1/collectors"
    w = two_apps
    # An app key cannot name the owner's PAT by its public id (GetCollector shows it) ...
    body = {"collectors": [_source_collector("c1", w.own, "app1", alice.key.public_id)]}
    r = api.post(url, body, key=w.app_key.secret)
    assert r["status"]["code"] == SC.CONN_INSUFFICIENT_SCOPES, r
    assert "post inputs key" in r["status"]["details"]
    # ... but may name itself, or a key whose secret it was given.
    body = {"collectors": [_source_collector("c2", w.own, "app1", w.app_key.key.public_id)]}
    assert api.post(url, body, key=w.app_key.secret)["status"]["code"] == SC.SUCCESS
    body = {"collectors": [_source_collector("c3", w.own, "app1", alice.secret)]}
    assert api.post(url, body, key=w.app_key.secret)["status"]["code"] == SC.SUCCESS
    # A PAT that could not have created the named key (fewer scopes, or no Keys:Add) cannot.
    narrow = make_key(
        alice.user,
        scopes=[
            "Apps:Get", "Inputs:Add", "Annotations:Add", "Annotations:Get", "Collectors:Add",
            "Concepts:Get", "Inputs:Get", "Models:Get", "Predict", "Workflows:Get",
        ],
    )  # fmt: skip
    body = {"collectors": [_source_collector("c4", w.own, "app1", alice.key.public_id)]}
    r = api.post(url, body, key=narrow.secret)
    assert r["status"]["code"] == SC.CONN_INSUFFICIENT_SCOPES, r
    # A PAT holding All could have created any key: it may name one by public id.
    strong = make_key(alice.user, scopes=["All"])
    body = {"collectors": [_source_collector("c5", w.own, "app1", alice.key.public_id)]}
    assert api.post(url, body, key=strong.secret)["status"]["code"] == SC.SUCCESS
    listed = {c["id"] for c in api.get(url, key=alice.secret)["collectors"]}
    assert listed == {"c2", "c3", "c5"}


# -- 6. counts are checked on the parsed JSON before any protobuf; lists bounded everywhere ------


def test_millions_of_empty_inputs_are_refused_before_parsing(api, alice):
    import time

    raw = b'{"inputs": [' + b",".join([b"{}"] * 2_000_000) + b"]}"
    started = time.monotonic()
    r = api.post("/v2/users/alice/apps/app1/inputs", raw=raw, key=alice.secret)
    elapsed = time.monotonic() - started
    assert r["_http"] == 400, r
    assert "JSON values" in r["status"]["details"]
    # Figure for the report, not a timed assertion of speed: refused without building messages.
    print(f"2,000,000 empty inputs refused in {elapsed:.2f}s")


def test_lists_over_the_cap_are_refused_on_the_parsed_json(api, alice):
    inputs = {"inputs": [{} for _ in range(129)]}
    r = api.post("/v2/users/alice/apps/app1/inputs", inputs, key=alice.secret)
    assert r["status"]["code"] == SC.INPUT_INVALID_REQUEST
    assert "at most 128" in r["status"]["details"]
    ids = {"ids": [f"id{i}" for i in range(1001)]}
    r = api.delete("/v2/users/alice/apps/app1/inputs", ids, key=alice.secret)
    assert r["status"]["code"] == SC.CONN_INVALID_REQUEST
    assert "at most 1000" in r["status"]["details"]
    r = api.delete("/v2/users/alice/apps/app1/collectors", {"ids": ["x"] * 5000}, key=alice.secret)
    assert r["_http"] == 400, r
    ok = api.delete("/v2/users/alice/apps/app1/inputs", {"ids": ["nope"]}, key=alice.secret)
    assert ok["_http"] < 500


def test_dispatch_bounds_repeated_fields_for_every_transport(alice):
    from clarifai_grpc.grpc.api import service_pb2

    from collectors_module.api.dispatch import dispatch

    req = service_pb2.DeleteInputsRequest(ids=[f"i{i}" for i in range(5000)])
    req.user_app_id.user_id, req.user_app_id.app_id = "alice", "app1"
    r = dispatch("DeleteInputs", req, f"Key {alice.secret}", transport="grpc")
    assert r.status.code == SC.CONN_INVALID_REQUEST
    assert "at most 1000" in r.status.details
    req = service_pb2.PostInputsRequest()
    for _ in range(129):
        req.inputs.add().data.text.raw = "x"
    r = dispatch("PostInputs", req, f"Key {alice.secret}", transport="grpc")
    assert r.status.code == SC.INPUT_INVALID_REQUEST


def test_grpc_message_cap_follows_the_rest_body_cap(settings):
    from django.conf import settings as conf

    assert conf.GRPC_MAX_MESSAGE_BYTES <= conf.DATA_UPLOAD_MAX_MEMORY_SIZE


# -- 7. one deadline per request for all its URL fetches ------------------------------------------


class _Drip(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", "1000")
        self.end_headers()
        try:
            for _ in range(1000):  # one byte a second: 1000 s if nobody stops reading
                self.wfile.write(b"x")
                self.wfile.flush()
                time.sleep(1.0)
        except OSError:
            pass


@pytest.fixture
def drip_origin(settings):
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Drip)
    srv.daemon_threads = True
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    settings.SAFE_FETCH_ALLOWED_HOSTS = [f"127.0.0.1:{srv.server_address[1]}"]
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()
    srv.server_close()


def test_slow_urls_share_one_request_deadline(drip_origin, settings):
    from clarifai_grpc.grpc.api import resources_pb2

    from collectors_module.inference.services import prepare_inputs

    settings.PREDICT_FETCH_DEADLINE_SECONDS = 2.0
    settings.PREDICT_FETCH_WORKERS = 4
    inputs = []
    for i in range(12):  # three waves of four: 3 x 15 s with per-fetch timeouts alone
        inp = resources_pb2.Input()
        inp.data.text.url = f"{drip_origin}/slow/{i}"
        inputs.append(inp)
    started = time.monotonic()
    results = prepare_inputs(inputs)
    elapsed = time.monotonic() - started
    assert all(getattr(r, "code", None) == SC.INPUT_CONNECTION_FAILED for r in results), results
    assert all("time limit" in r.details for r in results)
    # The shared deadline is 2 s; a per-fetch 15 s would take 45 s. Generous margin for load.
    assert elapsed < 8, elapsed


def test_fetch_deadline_argument_bounds_a_single_fetch(drip_origin):
    from collectors_module.core.safe_fetch import FetchError, fetch, request_deadline

    started = time.monotonic()
    with pytest.raises(FetchError) as caught:
        fetch(f"{drip_origin}/one", timeout=15.0, deadline=request_deadline(1.0))
    assert caught.value.reason == "timeout"
    assert time.monotonic() - started < 5
    with pytest.raises(FetchError):  # a deadline already passed: no connection at all
        fetch(f"{drip_origin}/two", deadline=request_deadline(-1))


# -- 8. throttled guessing: sign-ins per account and per address, bad keys per address ----------


@pytest.fixture
def low_throttles(settings):
    from django.core.cache import caches

    # Day-long windows: django-ratelimit's windows are fixed, so a test whose calls straddled a
    # window's end would see its counts split in two (a 15-minute window flaked once in a full run).
    settings.THROTTLE_LOGIN_FAILURES_PER_ACCOUNT = "5/d"
    settings.THROTTLE_LOGIN_FAILURES_PER_ADDRESS = "8/d"
    settings.THROTTLE_BAD_KEYS_PER_ADDRESS = "10/d"
    caches["throttle"].clear()  # this worktree's own Redis database (REDIS_URL)
    yield
    caches["throttle"].clear()


def _login(client, username, password, address):
    return client.post(
        "/accounts/login/", {"username": username, "password": password}, REMOTE_ADDR=address
    )


def test_wrong_passwords_then_the_right_one_is_still_refused(client, alice, low_throttles):
    for _ in range(5):
        assert _login(client, "alice", "wrong", "198.51.100.7").status_code == 400
    r = _login(client, "alice", "pw-for-tests-123", "198.51.100.7")
    assert r.status_code == 429
    assert b"Too many failed sign-ins" in r.content
    assert "_auth_user_id" not in client.session
    # Per account: another address does not help.
    assert _login(client, "alice", "pw-for-tests-123", "203.0.113.9").status_code == 429
    assert _login(client, "ALICE", "pw-for-tests-123", "203.0.113.9").status_code == 429


def test_failed_sign_ins_are_throttled_per_address(client, make_user, low_throttles):
    for i in range(8):  # eight accounts, one failure each: only the address is over
        make_user(f"spray{i}")
        assert _login(client, f"spray{i}", "wrong", "198.51.100.8").status_code == 400
    make_user("victim")
    assert _login(client, "victim", "pw-for-tests-123", "198.51.100.8").status_code == 429
    r = _login(client, "victim", "pw-for-tests-123", "198.51.100.99")
    assert r.status_code == 302  # the account itself is fine from elsewhere


def test_bad_keys_are_throttled_per_address_and_valid_keys_never_are(
    api, alice, low_throttles, settings
):
    codes = []
    for i in range(12):
        r = api.get("/v2/myscopes", key=f"clct_guess{i:04d}", headers={"X": "1"})
        codes.append(r["status"]["code"])
    assert codes[:10] == [SC.CONN_KEY_INVALID] * 10
    assert codes[10:] == [SC.CONN_THROTTLED] * 2
    r = api.get("/v2/myscopes", key="clct_guess-more")
    assert r["_http"] == 429
    assert "valid key" in r["status"]["details"]
    # The same address with a valid key: served at once, every time.
    for _ in range(20):
        assert api.get("/v2/myscopes", key=alice.secret)["status"]["code"] == SC.SUCCESS
    # Another address is not throttled.
    r = api.client.get("/v2/myscopes", HTTP_AUTHORIZATION="Key nope", REMOTE_ADDR="192.0.2.44")
    assert r.json()["status"]["code"] == SC.CONN_KEY_INVALID


def test_grpc_bad_keys_are_throttled_per_forwarded_address_behind_a_proxy(
    stub, low_throttles, settings
):
    """Behind a proxy every gRPC call has the proxy's peer address: with
    THROTTLE_GRPC_CLIENT_ADDRESS_METADATA the throttle counts the address the proxy forwards."""
    from clarifai_grpc.grpc.api import service_pb2

    settings.THROTTLE_GRPC_CLIENT_ADDRESS_METADATA = "x-forwarded-for"

    def call(i: int, forwarded: str) -> int:
        metadata = (("authorization", f"Key clct_grpcguess{i:04d}"), ("x-forwarded-for", forwarded))
        return stub.ListModelTypes(
            service_pb2.ListModelTypesRequest(), metadata=metadata
        ).status.code

    codes = [call(i, "10.0.0.1, 203.0.113.7") for i in range(12)]  # the last hop counts
    assert codes[:10] == [SC.CONN_KEY_INVALID] * 10
    assert codes[10:] == [SC.CONN_THROTTLED] * 2
    assert call(99, "203.0.113.8") == SC.CONN_KEY_INVALID  # another client behind the proxy


def test_grpc_client_addresses_come_from_the_peer_unless_a_proxy_key_is_set(settings):
    from collectors_module.accounts.throttle import grpc_client_address

    metadata = (("x-forwarded-for", "198.51.100.1, 192.0.2.9"),)
    assert grpc_client_address(metadata, "ipv4:10.1.2.3:5555") == "10.1.2.3"
    settings.THROTTLE_GRPC_CLIENT_ADDRESS_METADATA = "X-Forwarded-For"
    assert grpc_client_address(metadata, "ipv4:10.1.2.3:5555") == "192.0.2.9"
    assert grpc_client_address((), "ipv4:10.1.2.3:5555") == "10.1.2.3"  # none sent: the peer


def test_grpc_peer_addresses_are_parsed():
    from collectors_module.accounts.throttle import grpc_peer_address

    assert grpc_peer_address("ipv4:10.1.2.3:5555") == "10.1.2.3"
    assert grpc_peer_address("ipv6:[2001:db8::1]:5555") == "2001:db8::1"
    assert grpc_peer_address("unix:/tmp/sock") == ""


# -- 2. consent: grants (page and API) and the model's opt-in, visible to callers ---------------


def test_capture_grants_api_grant_list_revoke(api, alice, bob, make_key):
    base = "/api/v2/users/bob/capture_grants"
    r = api.post(base, {"grantee_user_id": "alice"}, key=bob.secret)
    assert r["status"]["code"] == SC.SUCCESS, r
    assert [g["grantee_user_id"] for g in r["given"]] == ["alice"]
    mine = api.get("/api/v2/users/alice/capture_grants", key=alice.secret)
    assert [g["grantor_user_id"] for g in mine["received"]] == ["bob"]
    assert api.post(base, {"grantee_user_id": "bob"}, key=bob.secret)["_http"] == 400
    assert api.post(base, {"grantee_user_id": "nobody"}, key=bob.secret)["_http"] == 404
    # Only the grantor themselves, with a PAT: not alice, not an app key.
    assert api.get(base, key=alice.secret)["_http"] == 404
    app_key = make_key(bob.user, scopes=["All"], app=bob.app)
    assert api.post(base, {"grantee_user_id": "alice"}, key=app_key.secret)["_http"] in (401, 403)
    r = api.delete(f"{base}/alice", key=bob.secret)
    assert r["status"]["code"] == SC.SUCCESS
    assert r["given"] == []
    assert api.delete(f"{base}/alice", key=bob.secret)["_http"] == 404


def test_capture_grants_page(client, alice, bob):
    client.force_login(bob.user)
    page = client.get("/accounts/capture-grants/")
    assert page.status_code == 200
    assert b"csrfmiddlewaretoken" in page.content
    r = client.post("/accounts/capture-grants/", {"grantee_user_id": "nobody-here"})
    assert r.status_code == 400
    assert b'id="id_grantee_user_id_error"' in r.content
    r = client.post("/accounts/capture-grants/", {"grantee_user_id": "alice"}, follow=True)
    assert b"<code>alice</code>" in r.content
    from collectors_module.accounts.selectors import has_active_grant

    assert has_active_grant(grantor_id=bob.user.pk, grantee_id=alice.user.pk)
    client.post("/accounts/capture-grants/alice/revoke/")
    assert not has_active_grant(grantor_id=bob.user.pk, grantee_id=alice.user.pk)
    assert b"capture-grants" in client.get("/accounts/account/").content


def test_model_opt_in_is_shown_to_callers_and_only_the_owner_sets_it(api, client, alice, bob):
    from collectors_module.applications.models import App

    App.objects.filter(pk=alice.app.pk).update(visibility=50)
    body = {
        "model": {
            "id": "shared",
            "model_type_id": "text-classifier",
            "visibility": {"gettable": 50},
            "model_version": {"metadata": {"runner": "builtin:sentiment"}},
        }
    }
    assert api.post("/v2/users/alice/apps/app1/models", body, key=alice.secret)["_http"] == 200
    got = api.get("/v2/users/alice/apps/app1/models/shared", key=bob.secret)
    assert got["model"]["metadata"] == {"capture_all_callers": False}
    path = "/api/v2/users/alice/apps/app1/models/shared/capture_consent"
    r = api.patch(path, {"capture_all_callers": True}, key=bob.secret)
    assert r["_http"] == 404, r  # not bob's to change
    client.force_login(bob.user)
    page = client.get("/users/alice/apps/app1/models/shared/")
    assert page.status_code == 200
    assert b"Owner only" in page.content
    assert b'name="capture_all_callers"' not in page.content
    assert (
        client.post(
            "/users/alice/apps/app1/models/shared/", {"capture_all_callers": "on"}
        ).status_code
        == 404
    )
    client.force_login(alice.user)
    client.post("/users/alice/apps/app1/models/shared/", {"capture_all_callers": "on"})
    got = api.get("/v2/users/alice/apps/app1/models/shared", key=bob.secret)
    assert got["model"]["metadata"] == {"capture_all_callers": True}
    client.force_login(bob.user)
    assert b"Captures every caller" in client.get("/users/alice/apps/app1/models/shared/").content
    # Set at creation through model.metadata too (and refused when not a boolean).
    body["model"]["id"], body["model"]["metadata"] = "opted", {"capture_all_callers": True}
    r = api.post("/v2/users/alice/apps/app1/models", body, key=alice.secret)
    assert r["model"]["metadata"] == {"capture_all_callers": True}
    body["model"]["id"], body["model"]["metadata"] = "bad", {"capture_all_callers": "yes"}
    assert api.post("/v2/users/alice/apps/app1/models", body, key=alice.secret)["_http"] == 400


# -- 4. remote-model credentials: operator-bound only; per-model keys sealed, never returned ------


class _Echo(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    seen: list = []

    def log_message(self, *args):
        pass

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        type(self).seen.append((self.path, self.headers.get("Authorization")))
        body = json.dumps({"choices": [{"message": {"content": "ok"}}]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def echo_endpoint(settings):
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
    srv.daemon_threads = True
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{srv.server_address[1]}"
    settings.REMOTE_MODEL_ALLOWED_ENDPOINTS = [f"{base}/open/", f"{base}/bound/"]
    settings.REMOTE_MODEL_KEYS = {"REMOTE_MODEL_KEY_OPERATOR": "sk-operator-secret"}
    settings.REMOTE_MODEL_CREDENTIAL_ENDPOINTS = {"REMOTE_MODEL_KEY_OPERATOR": f"{base}/bound/"}
    _Echo.seen = []
    yield base
    srv.shutdown()
    srv.server_close()


def _remote_model(model_id, url, **meta):
    return {
        "model": {
            "id": model_id,
            "model_type_id": "image-to-text",
            "model_version": {
                "metadata": {"runner": "remote:openai-chat", "url": url, "model": "m", **meta}
            },
        }
    }


def _predict_text(api, secret, model_id):
    body = {"inputs": [{"data": {"text": {"raw": "hello"}}}]}
    return api.post(f"/v2/users/alice/apps/app1/models/{model_id}/outputs", body, key=secret)


def test_tenants_cannot_name_operator_credentials(api, alice, echo_endpoint):
    base = "/v2/users/alice/apps/app1/models"
    for name in ("REMOTE_MODEL_KEY_OPERATOR", "SECRET_KEY", "DATABASE_URL"):
        body = _remote_model(f"m-{len(name)}", f"{echo_endpoint}/open/chat", api_key_env=name)
        r = api.post(base, body, key=alice.secret)
        assert r["_http"] == 400, r
        assert "api_key_env" in r["status"]["details"]
    # The operator's credential goes only to the endpoint it is bound to.
    assert (
        api.post(base, _remote_model("open", f"{echo_endpoint}/open/chat"), key=alice.secret)[
            "status"
        ]["code"]
        == SC.SUCCESS
    )
    assert (
        api.post(base, _remote_model("bound", f"{echo_endpoint}/bound/chat"), key=alice.secret)[
            "status"
        ]["code"]
        == SC.SUCCESS
    )
    assert _predict_text(api, alice.secret, "open")["status"]["code"] == SC.SUCCESS
    assert _predict_text(api, alice.secret, "bound")["status"]["code"] == SC.SUCCESS
    assert _Echo.seen == [("/open/chat", None), ("/bound/chat", "Bearer sk-operator-secret")]


def test_per_model_api_keys_are_sealed_at_rest_and_never_returned(api, alice, echo_endpoint):
    from collectors_module.inference.models import ModelVersion

    body = _remote_model("own-key", f"{echo_endpoint}/open/chat", api_key="sk-tenant-own-123")
    r = api.post("/v2/users/alice/apps/app1/models", body, key=alice.secret)
    assert r["status"]["code"] == SC.SUCCESS, r
    assert "sk-tenant-own-123" not in json.dumps(r)
    stored = ModelVersion.objects.get(model__public_id="own-key").runner_config
    assert "api_key" not in stored
    assert stored["api_key_sealed"].startswith("fernet:")
    assert "sk-tenant-own-123" not in json.dumps(stored)
    got = api.get("/v2/users/alice/apps/app1/models/own-key", key=alice.secret)
    assert "sk-tenant-own-123" not in json.dumps(got)
    assert "api_key_sealed" not in json.dumps(got)
    assert _predict_text(api, alice.secret, "own-key")["status"]["code"] == SC.SUCCESS
    assert _Echo.seen[-1] == ("/open/chat", "Bearer sk-tenant-own-123")
    body = _remote_model("forged", f"{echo_endpoint}/open/chat", api_key_sealed="fernet:x")
    assert api.post("/v2/users/alice/apps/app1/models", body, key=alice.secret)["_http"] == 400


def test_sealing_keys_rotate(settings, api, alice, echo_endpoint):
    from cryptography.fernet import Fernet

    from collectors_module.core.sealed import SealedError, unseal
    from collectors_module.inference.models import ModelVersion
    from collectors_module.inference.services import reseal_model_secrets

    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings.REMOTE_MODEL_SECRET_KEYS = [old]
    body = _remote_model("rot", f"{echo_endpoint}/open/chat", api_key="sk-rotating-1")
    assert api.post("/v2/users/alice/apps/app1/models", body, key=alice.secret)["_http"] == 200
    settings.REMOTE_MODEL_SECRET_KEYS = [new, old]
    assert reseal_model_secrets() == 1
    token = ModelVersion.objects.get(model__public_id="rot").runner_config["api_key_sealed"]
    settings.REMOTE_MODEL_SECRET_KEYS = [new]
    assert unseal(token) == "sk-rotating-1"
    settings.REMOTE_MODEL_SECRET_KEYS = [old]
    with pytest.raises(SealedError):
        unseal(token)


def test_data_migration_seals_keys_and_drops_api_key_env(alice):
    import importlib

    from django.apps import apps as django_apps

    from collectors_module.core.sealed import unseal
    from collectors_module.inference.models import Model, ModelVersion

    model = Model.objects.create(app=alice.app, public_id="legacy", model_type_id="image-to-text")
    mv = ModelVersion.objects.create(
        model=model,
        public_id="a" * 32,
        runner="remote:openai-chat",
        runner_config={"url": "http://x/v1", "api_key": "sk-old", "api_key_env": "SECRET_KEY"},
    )
    migration = importlib.import_module(
        "collectors_module.inference.migrations.0005_seal_remote_model_keys"
    )
    migration.forwards(django_apps, None)
    mv.refresh_from_db()
    assert set(mv.runner_config) == {"url", "api_key_sealed"}
    assert unseal(mv.runner_config["api_key_sealed"]) == "sk-old"


# -- 5. decode cost: per-request pixel budget, bounded concurrent decodes, peak RSS --------------

# The bound this test sets: 4 concurrent requests of two 9,200 x 9,200 PNGs (the review's image,
# about 85 MP each) keep the process under 1,000 MB peak RSS (measured ~750 MB with
# IMAGE_DECODE_CONCURRENCY=2; ~2,630 MB before the fix). It is about base + concurrency x 4 bytes x
# MAX_IMAGE_PIXELS.
PEAK_RSS_BOUND_MB = 1000


def test_peak_rss_of_concurrent_huge_pngs_stays_under_the_bound():
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    proc = subprocess.run(
        [sys.executable, str(root / "scripts" / "bench_decode_memory.py"), "4", "2"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=root,
        env={**os.environ, "IMAGE_DECODE_CONCURRENCY": "2", "COLLECTORS_DEV": "1"},
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    print(result)
    assert [o["ok"] for o in result["outcomes"]] == [2, 2, 2, 2]  # the work was really done
    assert result["peak_rss_after_mb"] < PEAK_RSS_BOUND_MB, result


def test_images_past_the_request_pixel_budget_are_refused(settings):
    from clarifai_grpc.grpc.api import resources_pb2
    from PIL import Image

    from collectors_module.inference.services import prepare_inputs

    buf = io.BytesIO()
    Image.new("RGB", (100, 100), (1, 2, 3)).save(buf, "PNG")
    settings.IMAGE_MAX_PIXELS_PER_REQUEST = 25_000  # two 100x100 images fit, the third not
    inp = resources_pb2.Input(
        data=resources_pb2.Data(image=resources_pb2.Image(base64=buf.getvalue()))
    )
    text = resources_pb2.Input(data=resources_pb2.Data(text=resources_pb2.Text(raw="hi")))
    results = prepare_inputs([inp, text, inp, inp])
    assert [type(r).__name__ for r in results] == ["Data", "Data", "Data", "ApiError"]
    assert "pixels together" in results[3].details


def test_decodes_wait_for_a_slot(settings):
    from collectors_module.core.images import decode_slot

    settings.IMAGE_DECODE_CONCURRENCY = 1
    inside, peak, lock = [0], [0], threading.Lock()

    def work():
        with decode_slot():
            with lock:
                inside[0] += 1
                peak[0] = max(peak[0], inside[0])
            time.sleep(0.05)
            with lock:
                inside[0] -= 1

    threads = [threading.Thread(target=work) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert peak[0] == 1
    settings.IMAGE_DECODE_CONCURRENCY = 3
    threads = [threading.Thread(target=work) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert peak[0] == 3


def test_reduced_decode_keeps_results_sane():
    from PIL import Image

    from collectors_module.core.images import decode_reduced

    for mode, fmt in (("RGB", "PNG"), ("P", "PNG"), ("RGB", "JPEG"), ("L", "WEBP")):
        buf = io.BytesIO()
        Image.new(mode, (2000, 1000)).save(buf, fmt)
        img = decode_reduced(buf.getvalue(), 256)
        assert min(img.size) >= 256, (mode, fmt, img.size)
        assert img.size[0] <= 1000, (mode, fmt, img.size)


# -- fuzzing additions: every REST route with huge pages, oversized counts, control-char ids ------

HOSTILE_SEGMENTS = ["x%0A", "%00", "x%7F", "a%0D%0Ab", "%C2%85"]


def _rest_cells():
    done = implemented()
    for template, verbs in sorted(route_table().items()):
        for verb, (name, body_rule) in sorted(verbs.items()):
            if name in done:
                yield template, verb, name, body_rule


REST_CELLS = list(_rest_cells())


def _hostile_body(rpc_name: str) -> dict:
    desc = all_rpcs()[rpc_name].request_cls.DESCRIPTOR
    body: dict = {}
    for f in desc.fields:
        if f.name == "user_app_id":
            continue
        if f.is_repeated and f.type == f.TYPE_STRING:
            body[f.name] = ["id\n\x00"] * 5000
        elif (
            f.is_repeated and f.type == f.TYPE_MESSAGE and not f.message_type.GetOptions().map_entry
        ):
            body[f.name] = [{}] * 2000
        elif f.type == f.TYPE_STRING and not f.is_repeated:
            body[f.name] = "id\n\x7f"
        elif f.type == f.TYPE_UINT32:
            body[f.name] = 2**32 - 1
    return body


@pytest.mark.parametrize(
    ("template", "verb", "rpc_name", "body_rule"),
    REST_CELLS,
    ids=[f"{v} {t}" for t, v, _, _ in REST_CELLS],
)
def test_rest_routes_never_500_on_hostile_input(api, alice, template, verb, rpc_name, body_rule):
    for segment in HOSTILE_SEGMENTS[:2]:
        path = template.replace("{user_app_id.user_id}", "alice")
        path = path.replace("{user_app_id.app_id}", "app1")
        path = re.sub(r"\{[^}]+\}", segment, path)
        params = "?page=4294967295&per_page=4294967295&page=999999999999999999"
        body = _hostile_body(rpc_name) if body_rule else None
        if verb == "get":
            r = api.client.get(path + params, HTTP_AUTHORIZATION=f"Key {alice.secret}")
        else:
            r = getattr(api.client, verb)(
                path + params,
                data=json.dumps(body or {}),
                content_type="application/json",
                HTTP_AUTHORIZATION=f"Key {alice.secret}",
            )
        assert r.status_code < 500, (verb, path, r.status_code, r.content[:300])


# -- 13. accounts: password change and reset, session lifetime, log out on every device ----------


def test_password_change_ends_other_sessions(alice, make_user):
    from django.test import Client

    here, other = Client(), Client()
    for c in (here, other):
        assert (
            c.post(
                "/accounts/login/", {"username": "alice", "password": "pw-for-tests-123"}
            ).status_code
            == 302
        )
    page = here.get("/accounts/password/")
    assert page.status_code == 200
    assert b"csrfmiddlewaretoken" in page.content
    bad = here.post(
        "/accounts/password/",
        {"old_password": "wrong", "new_password1": "x", "new_password2": "y"},
    )
    assert bad.status_code == 200
    assert b'id="id_old_password_error"' in bad.content
    r = here.post(
        "/accounts/password/",
        {
            "old_password": "pw-for-tests-123",
            "new_password1": "A-much-better-pass-42",
            "new_password2": "A-much-better-pass-42",
        },
    )
    assert r.status_code == 302
    assert here.get("/accounts/account/").status_code == 200  # this device stays signed in
    assert other.get("/accounts/account/").status_code == 302  # the other one is signed out
    fresh = Client()
    ok = fresh.post("/accounts/login/", {"username": "alice", "password": "A-much-better-pass-42"})
    assert ok.status_code == 302


def test_password_reset_by_email(client, make_user, mailoutbox, settings):
    from collectors_module.accounts.models import User

    user = make_user("resetme")
    User.objects.filter(pk=user.pk).update(email="resetme@example.test")
    assert b"Forgot your password?" in client.get("/accounts/login/").content
    r = client.post("/accounts/password/reset/", {"email": "resetme@example.test"})
    assert r.status_code == 302
    client.post("/accounts/password/reset/", {"email": "nobody@example.test"})  # same answer
    assert len(mailoutbox) == 1
    link = re.search(r"https?://[^/]+(/accounts/password/reset/\S+)", mailoutbox[0].body)
    assert link, mailoutbox[0].body
    form = client.get(link.group(1), follow=True)
    assert b"Choose a new password" in form.content
    set_url = form.redirect_chain[-1][0] if form.redirect_chain else link.group(1)
    done = client.post(
        set_url, {"new_password1": "Reset-pass-9911", "new_password2": "Reset-pass-9911"}
    )
    assert done.status_code == 302
    again = client.get(link.group(1), follow=True)
    assert b'id="reset-invalid"' in again.content  # the link works once
    ok = client.post("/accounts/login/", {"username": "resetme", "password": "Reset-pass-9911"})
    assert ok.status_code == 302


def test_log_out_on_every_device(alice, settings):
    from django.test import Client

    assert settings.SESSION_COOKIE_AGE > 0
    devices = [Client() for _ in range(3)]
    for c in devices:
        c.post("/accounts/login/", {"username": "alice", "password": "pw-for-tests-123"})
        assert c.get("/accounts/account/").status_code == 200
    assert devices[0].get("/accounts/logout-everywhere/").status_code == 405  # POST only
    r = devices[0].post("/accounts/logout-everywhere/")
    assert r.status_code == 302
    for c in devices:
        assert c.get("/accounts/account/").status_code == 302
    again = Client()
    again.post("/accounts/login/", {"username": "alice", "password": "pw-for-tests-123"})
    assert again.get("/accounts/account/").status_code == 200  # signing in again works


def test_session_lifetime_follows_the_setting(client, alice, settings):
    settings.SESSION_COOKIE_AGE = 600
    client.post("/accounts/login/", {"username": "alice", "password": "pw-for-tests-123"})
    assert client.session.get_expiry_age() == 600


# -- 12. the module's key: an app key of the installed app, and the page says where it acts ------


def test_module_key_is_the_narrowest_that_works(api, alice, make_app, install, alice_client):
    from django.urls import reverse

    from collectors_module.modules.services import installation_authorize

    make_app(alice.user, "elsewhere")
    inst = install(alice, authorize=False)
    page = alice_client.get(reverse("modules:authorize", args=["app1", inst.slug])).content
    assert b'id="key-reach"' in page
    assert b"<code>alice/app1</code>" in page
    assert b"<code>elsewhere</code>" in page  # named as a place it can NOT act
    created = installation_authorize(installation=inst, user=alice.user)
    assert created.key.app_id == alice.app.pk
    assert sorted(created.key.scopes) == sorted(inst.module.required_scopes)
    assert "All" not in created.key.scopes
    ok = api.get("/v2/users/alice/apps/app1/collectors", key=created.secret)
    assert ok["status"]["code"] == SC.SUCCESS, ok
    other = api.get("/v2/users/alice/apps/elsewhere/collectors", key=created.secret)
    assert other["_http"] == 404
    assert api.get("/v2/users/alice/keys", key=created.secret)["_http"] in (401, 403)
