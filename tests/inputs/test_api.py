"""Inputs over REST and through the service functions other apps call (real PostgreSQL, real storage)."""

from __future__ import annotations

import base64
import hashlib
import http.server
import io
import threading
from datetime import timedelta

import pytest
from clarifai_grpc.grpc.api import resources_pb2
from django.core.files.storage import default_storage
from django.urls import reverse
from django.utils import timezone
from PIL import Image

from collectors_module.accounts.models import Key
from collectors_module.core.errors import SC, ApiError
from collectors_module.inputs import services
from collectors_module.inputs.models import Input

INPUTS = "/v2/users/alice/apps/app1/inputs"


@pytest.fixture(autouse=True)
def media_root(settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path / "media")
    return tmp_path / "media"


def png_bytes(color=(200, 30, 30), size=(8, 6)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, format="PNG")
    return buf.getvalue()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def image_input(input_id: str, data: bytes | None = None, **extra) -> dict:
    body = {"id": input_id, "data": {"image": {"base64": b64(data or png_bytes())}}}
    body["data"].update(extra)
    return body


def text_input(input_id: str, text: str = "hello") -> dict:
    return {"id": input_id, "data": {"text": {"raw": text}}}


def post(api, tenant, *inputs, path=INPUTS, **body):
    return api.post(path, {"inputs": list(inputs), **body}, key=tenant.secret)


# --- PostInputs ---------------------------------------------------------------------------


def test_post_image_bytes_are_stored_in_blob_storage_and_round_trip(api, alice):
    raw = png_bytes()
    extra = {
        "concepts": [{"id": "cat", "name": "cat", "value": 1}, {"id": "dog", "value": 0}],
        "metadata": {"source": "test", "n": 3},
        "regions": [
            {
                "region_info": {
                    "bounding_box": {
                        "top_row": 0.1,
                        "left_col": 0.2,
                        "bottom_row": 0.5,
                        "right_col": 0.6,
                    }
                }
            }
        ],
    }
    r = post(api, alice, image_input("img1", raw, **extra))
    assert (r["_http"], r["status"]["code"]) == (200, 10000), r
    out = r["inputs"][0]
    assert out["id"] == "img1"
    assert out["status"]["code"] == 30000
    assert out["data"]["image"]["url"].endswith("/apps/app1/inputs/img1/media")
    assert "base64" not in out["data"]["image"] or not out["data"]["image"]["base64"]
    assert out["data"]["image"]["image_info"]["width"] == 8

    row = Input.objects.get(app=alice.app, public_id="img1")
    assert row.content_hash == hashlib.sha256(raw).hexdigest()
    with default_storage.open(row.image.name, "rb") as fh:
        assert fh.read() == raw
    assert "base64" not in str(row.data)

    got = api.get(f"{INPUTS}/img1", key=alice.secret)
    assert got["status"]["code"] == 10000
    data = got["input"]["data"]
    assert [(c["id"], c["value"]) for c in data["concepts"]] == [("cat", 1.0), ("dog", 0.0)]
    assert data["metadata"] == {"source": "test", "n": 3.0}
    assert data["regions"][0]["region_info"]["bounding_box"]["right_col"] == pytest.approx(0.6)
    assert "created_at" in got["input"]


def test_the_hosted_image_url_is_the_web_media_route_and_serves_the_bytes(api, alice, client):
    raw = png_bytes((9, 9, 9))
    r = post(api, alice, image_input("m1", raw))
    url = r["inputs"][0]["data"]["image"]["url"]
    assert url == reverse("inputs:media", args=["app1", "m1"])
    client.force_login(alice.user)
    served = client.get(url)
    assert served.status_code == 200
    assert b"".join(served.streaming_content) == raw


class _CountingHandler(http.server.BaseHTTPRequestHandler):
    hits: list = []

    def do_GET(self):
        _CountingHandler.hits.append(self.path)
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        self.end_headers()
        self.wfile.write(png_bytes())

    def log_message(self, *args):
        pass


def test_an_image_url_is_stored_as_the_url_and_never_fetched(api, alice):
    _CountingHandler.hits = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _CountingHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/cat.png"
        r = post(api, alice, {"id": "u1", "data": {"image": {"url": url}}})
        assert r["status"]["code"] == 10000, r
        assert r["inputs"][0]["data"]["image"]["url"] == url
        row = Input.objects.get(public_id="u1")
        assert (row.image_url, bool(row.image)) == (url, False)
        assert row.content_hash == hashlib.sha256(url.encode()).hexdigest()
        assert api.get(f"{INPUTS}/u1", key=alice.secret)["input"]["data"]["image"]["url"] == url
    finally:
        server.shutdown()
        server.server_close()
    assert _CountingHandler.hits == []


def test_post_text_input(api, alice):
    r = post(api, alice, text_input("t1", "a caption ✓"))
    assert r["status"]["code"] == 10000
    assert r["inputs"][0]["data"]["text"]["raw"] == "a caption ✓"
    assert Input.objects.get(public_id="t1").text == "a caption ✓"


def test_post_input_without_id_gets_a_generated_id(api, alice):
    r = post(api, alice, {"data": {"text": {"raw": "x"}}})
    new_id = r["inputs"][0]["id"]
    assert len(new_id) == 32
    assert Input.objects.filter(app=alice.app, public_id=new_id).exists()


def test_duplicate_input_id_is_input_duplicate(api, alice):
    assert post(api, alice, text_input("dup"))["status"]["code"] == 10000
    r = post(api, alice, text_input("dup", "other"))
    assert (r["_http"], r["status"]["code"]) == (409, 30100)
    assert r["inputs"][0]["status"]["code"] == 30100
    assert Input.objects.get(public_id="dup").text == "hello"


def test_duplicate_id_inside_one_request(api, alice):
    r = post(api, alice, text_input("same", "first"), text_input("same", "second"))
    assert r["status"]["code"] == 10010
    assert [i["status"]["code"] for i in r["inputs"]] == [30000, 30100]
    assert Input.objects.get(public_id="same").text == "first"


def test_partly_failed_batch_is_mixed_status_with_per_input_statuses(api, alice):
    post(api, alice, text_input("taken"))
    r = post(
        api,
        alice,
        image_input("good"),
        text_input("taken"),
        {"id": "junk", "data": {"image": {"base64": b64(b"definitely not an image")}}},
        {"id": "empty", "data": {}},
        {"id": "../etc", "data": {"text": {"raw": "x"}}},
        {"id": "badurl", "data": {"image": {"url": "file:///etc/passwd"}}},
    )
    assert (r["_http"], r["status"]["code"]) == (200, 10010), r
    codes = {i["id"]: i["status"]["code"] for i in r["inputs"]}
    assert codes == {
        "good": 30000,
        "taken": 30100,
        "junk": 30300,
        "empty": 30104,
        "../etc": 30104,
        "badurl": 30106,
    }
    assert set(Input.objects.filter(app=alice.app).values_list("public_id", flat=True)) == {
        "taken",
        "good",
    }


def test_all_failed_batch_reports_the_error(api, alice):
    r = post(api, alice, {"id": "j1", "data": {"image": {"base64": b64(b"nope")}}})
    assert (r["_http"], r["status"]["code"]) == (400, 30300)
    assert r["inputs"][0]["status"]["code"] == 30300


def test_invalid_base64_is_invalid_bytes(api, alice):
    r = post(api, alice, {"id": "b", "data": {"image": {"base64": "%%%not-base64%%%"}}})
    assert (r["_http"], r["status"]["code"]) == (400, 30300)
    assert not Input.objects.exists()


def test_conflict_resolution_skip_keeps_the_existing_input(api, alice):
    post(api, alice, text_input("k", "original"))
    r = post(api, alice, text_input("k", "new"), input_id_conflict_resolution="SKIP")
    assert r["status"]["code"] == 10000, r
    assert r["inputs"][0]["data"]["text"]["raw"] == "original"
    assert Input.objects.filter(public_id__startswith="k").count() == 1


def test_conflict_resolution_suffix_makes_a_new_id(api, alice):
    post(api, alice, text_input("k", "original"))
    r = post(api, alice, text_input("k", "new"), input_id_conflict_resolution="SUFFIX")
    assert r["status"]["code"] == 10000, r
    new_id = r["inputs"][0]["id"]
    assert new_id.startswith("k-")
    assert new_id != "k"
    assert Input.objects.get(public_id=new_id).text == "new"


def test_more_than_128_inputs_are_refused(api, alice):
    r = post(api, alice, *[text_input(f"i{n}") for n in range(129)])
    assert (r["_http"], r["status"]["code"]) == (400, 39999)
    assert not Input.objects.exists()
    assert post(api, alice, *[text_input(f"i{n}") for n in range(128)])["status"]["code"] == 10000
    assert Input.objects.count() == 128


def test_empty_post_inputs_is_invalid_request(api, alice):
    assert post(api, alice)["status"]["code"] == 39999


def test_oversized_body_is_refused_with_413(api, alice, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 50_000
    r = post(api, alice, text_input("big", "x" * 60_000))
    assert (r["_http"], r["status"]["code"]) == (413, 40033)
    assert not Input.objects.exists()


def test_text_over_the_limit_is_invalid_argument(api, alice, settings):
    settings.INPUT_MAX_TEXT_BYTES = 100
    r = post(api, alice, text_input("long", "y" * 101))
    assert r["status"]["code"] == 30104
    assert not Input.objects.exists()


def test_broken_json_is_bad_request_format(api, alice):
    r = api.post(INPUTS, raw=b'{"inputs": [{"id": "x",', key=alice.secret)
    assert (r["_http"], r["status"]["code"]) == (400, 11100)
    r = api.post(INPUTS, raw=b'["not", "an", "object"]', key=alice.secret)
    assert (r["_http"], r["status"]["code"]) == (400, 11100)
    r = api.post(INPUTS, {"inputs": "not a list"}, key=alice.secret)
    assert (r["_http"], r["status"]["code"]) == (400, 11100)


def test_nul_in_metadata_is_refused_not_a_500(api, alice):
    r = post(api, alice, {"id": "n", "data": {"text": {"raw": "a"}, "metadata": {"k": "a\u0000b"}}})
    assert r["status"]["code"] == 30104
    r = post(api, alice, {"id": "n2", "data": {"text": {"raw": "a\u0000b"}}})
    assert r["status"]["code"] == 30104


# --- List / Get / Count ---------------------------------------------------------------------


def test_list_inputs_newest_first_and_paginated(api, alice):
    for n in range(5):
        post(api, alice, text_input(f"n{n}"))
    r = api.get(INPUTS, {"per_page": 2}, key=alice.secret)
    assert [i["id"] for i in r["inputs"]] == ["n4", "n3"]
    r = api.get(INPUTS, {"page": 3, "per_page": 2}, key=alice.secret)
    assert [i["id"] for i in r["inputs"]] == ["n0"]
    r = api.get(INPUTS, {"page": 4, "per_page": 2}, key=alice.secret)
    assert (r["status"]["code"], r["inputs"]) == (10000, [])
    r = api.get(INPUTS, {"per_page": 0, "page": 0}, key=alice.secret)
    assert len(r["inputs"]) == 5


def test_list_inputs_filters_by_ids(api, alice):
    for n in range(3):
        post(api, alice, text_input(f"f{n}"))
    r = api.get(INPUTS, {"ids": ["f0", "f2", "missing"]}, key=alice.secret)
    assert sorted(i["id"] for i in r["inputs"]) == ["f0", "f2"]


def test_get_input_count_by_status(api, alice):
    post(api, alice, text_input("c1"), text_input("c2"))
    Input.objects.create(app=alice.app, public_id="failed", status_code=SC.INPUT_DOWNLOAD_FAILED)
    r = api.get(f"{INPUTS}/status", key=alice.secret)
    assert r["status"]["code"] == 10000, r
    assert r["counts"]["processed"] == 2
    assert r["counts"]["errors"] == 1


def test_get_missing_input_does_not_exist(api, alice):
    r = api.get(f"{INPUTS}/nope", key=alice.secret)
    assert (r["_http"], r["status"]["code"]) == (404, 11101)


# --- Delete --------------------------------------------------------------------------------


def test_delete_input_removes_row_and_blob(api, alice, django_capture_on_commit_callbacks):
    post(api, alice, image_input("d1"))
    name = Input.objects.get(public_id="d1").image.name
    assert default_storage.exists(name)
    with django_capture_on_commit_callbacks(execute=True):
        r = api.delete(f"{INPUTS}/d1", key=alice.secret)
    assert r["status"]["code"] == 10000, r
    assert not Input.objects.filter(public_id="d1").exists()
    assert not default_storage.exists(name)
    assert api.get(f"{INPUTS}/d1", key=alice.secret)["status"]["code"] == 11101
    assert api.delete(f"{INPUTS}/d1", key=alice.secret)["status"]["code"] == 11101


def test_a_blob_shared_by_two_inputs_outlives_the_first_delete(
    api, alice, django_capture_on_commit_callbacks
):
    raw = png_bytes((1, 2, 3))
    post(api, alice, image_input("s1", raw), image_input("s2", raw))
    names = set(Input.objects.values_list("image", flat=True))
    assert len(names) == 1
    name = names.pop()
    with django_capture_on_commit_callbacks(execute=True):
        api.delete(f"{INPUTS}/s1", key=alice.secret)
    assert default_storage.exists(name)
    with django_capture_on_commit_callbacks(execute=True):
        api.delete(f"{INPUTS}/s2", key=alice.secret)
    assert not default_storage.exists(name)


def test_delete_inputs_by_ids_is_all_or_nothing(api, alice):
    post(api, alice, text_input("a"), text_input("b"), text_input("c"))
    r = api.delete(INPUTS, {"ids": ["a", "zzz"]}, key=alice.secret)
    assert (r["_http"], r["status"]["code"]) == (404, 11101)
    assert "zzz" in r["status"]["details"]
    assert Input.objects.count() == 3
    r = api.delete(INPUTS, {"ids": ["a", "b"]}, key=alice.secret)
    assert r["status"]["code"] == 10000
    assert list(Input.objects.values_list("public_id", flat=True)) == ["c"]
    assert api.delete(INPUTS, {"ids": []}, key=alice.secret)["status"]["code"] == 39999


# --- Tenancy, keys, scopes -----------------------------------------------------------------


def test_another_tenants_inputs_do_not_exist(api, alice, bob):
    post(api, bob, text_input("secret-b"), path="/v2/users/bob/apps/bobapp/inputs")
    bob_inputs = "/v2/users/bob/apps/bobapp/inputs"
    for r in (
        api.get(bob_inputs, key=alice.secret),
        api.get(f"{bob_inputs}/secret-b", key=alice.secret),
        api.get(f"{bob_inputs}/status", key=alice.secret),
        api.post(bob_inputs, {"inputs": [text_input("x")]}, key=alice.secret),
        api.delete(f"{bob_inputs}/secret-b", key=alice.secret),
        api.delete(bob_inputs, {"ids": ["secret-b"]}, key=alice.secret),
        # bob's input id inside alice's own app is just missing too
        api.get(f"{INPUTS}/secret-b", key=alice.secret),
        api.delete(INPUTS, {"ids": ["secret-b"]}, key=alice.secret),
    ):
        assert (r["_http"], r["status"]["code"]) == (404, 11101), r
    assert Input.objects.filter(public_id="secret-b").exists()
    assert not Input.objects.filter(app=bob.app, public_id="x").exists()


def test_inputs_of_a_public_app_stay_private(api, alice, make_user, make_app, make_key):
    carol = make_user("carol")
    make_app(carol, "shared", visibility=50)
    carol_key = make_key(carol)
    api.post(
        "/v2/users/carol/apps/shared/inputs", {"inputs": [text_input("p")]}, key=carol_key.secret
    )
    assert api.get("/v2/users/carol/apps/shared", key=alice.secret)["status"]["code"] == 10000
    r = api.get("/v2/users/carol/apps/shared/inputs", key=alice.secret)
    assert r["status"]["code"] == 11101


def test_app_key_uses_short_paths(api, alice, make_key):
    app_key = make_key(alice.user, app=alice.app)
    r = api.post(
        "/v2/inputs", {"inputs": [text_input("s1"), image_input("s2")]}, key=app_key.secret
    )
    assert r["status"]["code"] == 10000, r
    assert Input.objects.filter(app=alice.app).count() == 2
    r = api.get("/v2/inputs", key=app_key.secret)
    assert [i["id"] for i in r["inputs"]] == ["s2", "s1"]
    assert api.get("/v2/inputs/s1", key=app_key.secret)["input"]["id"] == "s1"
    assert api.get("/v2/inputs/status", key=app_key.secret)["counts"]["processed"] == 2
    assert api.delete("/v2/inputs/s1", key=app_key.secret)["status"]["code"] == 10000
    assert api.delete("/v2/inputs", {"ids": ["s2"]}, key=app_key.secret)["status"]["code"] == 10000
    assert not Input.objects.exists()
    # The same key on its own long path works; on another app it does not exist.
    assert api.get(INPUTS, key=app_key.secret)["status"]["code"] == 10000


def test_app_key_cannot_reach_another_app(api, alice, bob, make_app, make_key):
    make_app(alice.user, "app2")
    app_key = make_key(alice.user, app=alice.app)
    for path in ("/v2/users/alice/apps/app2/inputs", "/v2/users/bob/apps/bobapp/inputs"):
        r = api.get(path, key=app_key.secret)
        assert (r["_http"], r["status"]["code"]) == (404, 11101)


def test_pat_works_on_long_paths_and_short_paths_need_an_app(api, alice):
    assert post(api, alice, text_input("l1"))["status"]["code"] == 10000
    r = api.get("/v2/inputs", key=alice.secret)
    assert (r["_http"], r["status"]["code"]) == (400, 11102)
    assert "app" in r["status"]["details"]
    r = api.post("/v2/inputs", {"inputs": [text_input("l2")]}, key=alice.secret)
    assert r["status"]["code"] == 11102
    assert api.get(INPUTS, key=alice.secret)["inputs"][0]["id"] == "l1"


def test_missing_wrong_revoked_and_expired_keys_are_refused(api, alice, make_key):
    revoked = make_key(alice.user)
    Key.objects.filter(pk=revoked.key.pk).update(revoked_at=timezone.now())
    expired = make_key(alice.user)
    Key.objects.filter(pk=expired.key.pk).update(expires_at=timezone.now() - timedelta(minutes=1))
    for secret in (None, "clct_not-a-key", revoked.secret, expired.secret):
        for r in (
            api.get(INPUTS, key=secret),
            api.post(INPUTS, {"inputs": [text_input("x")]}, key=secret),
            api.delete(f"{INPUTS}/x", key=secret),
        ):
            assert (r["_http"], r["status"]["code"]) == (401, 11008), (secret, r)
    assert not Input.objects.exists()


def test_missing_scopes_are_insufficient_scopes(api, alice, make_key):
    reader = make_key(
        alice.user, scopes=["Apps:Get", "Annotations:Get", "Concepts:Get", "Inputs:Get"]
    )
    r = post(api, type("T", (), {"secret": reader.secret}), text_input("x"))
    assert (r["_http"], r["status"]["code"]) == (403, 11007)
    assert "Inputs:Add" in r["status"]["details"]
    assert api.get(INPUTS, key=reader.secret)["status"]["code"] == 10000
    r = api.delete(f"{INPUTS}/x", key=reader.secret)
    assert r["status"]["code"] == 11007
    assert not Input.objects.exists()


# --- Service functions other apps call ------------------------------------------------------


def test_input_create_service_with_bytes_annotations_and_provenance(alice):
    pb = resources_pb2.Input(id="cap-1")
    pb.data.concepts.add(id="cat", value=0.9)
    row = services.input_create(
        app=alice.app,
        input_pb=pb,
        image_bytes=png_bytes(),
        annotations=[{"model": "m1", "concepts": [{"id": "cat", "value": 0.9}]}],
        extra_metadata={"collector": {"id": "c1", "capture_id": "abc"}},
    )
    assert row.image.name
    assert row.status_code == 30000
    assert row.annotations[0]["model"] == "m1"
    assert row.data["metadata"]["collector"]["capture_id"] == "abc"
    with pytest.raises(ApiError) as exc:
        services.input_create(app=alice.app, input_pb=pb, image_bytes=png_bytes())
    assert exc.value.code == SC.INPUT_DUPLICATE


def test_input_create_validates_image_bytes(alice):
    pb = resources_pb2.Input(id="bad")
    with pytest.raises(ApiError) as exc:
        services.input_create(app=alice.app, input_pb=pb, image_bytes=b"\x89PNG\r\n\x1a\ntruncated")
    assert exc.value.code == SC.ALL_INPUT_INVALID_BYTES
    assert not Input.objects.exists()


def test_deleting_an_app_deletes_its_image_blobs(
    api, alice, bob, django_capture_on_commit_callbacks
):
    raw = png_bytes((4, 5, 6))
    post(api, alice, image_input("x1", raw))
    post(api, bob, image_input("y1", raw), path="/v2/users/bob/apps/bobapp/inputs")
    mine = Input.objects.get(app=alice.app).image.name
    theirs = Input.objects.get(app=bob.app).image.name
    with django_capture_on_commit_callbacks(execute=True):
        r = api.delete("/v2/users/alice/apps/app1", key=alice.secret)
    assert r["status"]["code"] == 10000, r
    assert not default_storage.exists(mine)
    assert default_storage.exists(theirs)
