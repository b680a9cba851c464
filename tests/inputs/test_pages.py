"""An input's page and its media view (content types, keys, tenancy)."""

from __future__ import annotations

import pytest

from tests.support.pages import png_bytes

pytestmark = pytest.mark.usefixtures("media_root")


def test_input_detail_shows_metadata_and_concepts(alice, alice_client, make_input):
    make_input(
        alice.app,
        "img1",
        image=png_bytes(),
        concepts=[("red", 0.5)],
        metadata={"collector": {"collector_id": "col-a", "capture_id": "cap-123"}},
    )
    page = alice_client.get("/apps/app1/inputs/img1/").content.decode()
    assert "cap-123" in page
    assert "col-a" in page
    assert "red" in page
    assert '<img src="/apps/app1/inputs/img1/media"' in page


def test_media_view_streams_the_image_with_a_safe_content_type(alice, alice_client, make_input):
    raw = png_bytes()
    make_input(alice.app, "img1", image=raw)
    r = alice_client.get("/apps/app1/inputs/img1/media")
    assert r.status_code == 200
    assert b"".join(r.streaming_content) == raw
    assert r["Content-Type"] == "image/png"
    assert r["Content-Disposition"] == "inline"
    assert r["X-Content-Type-Options"] == "nosniff"
    assert "sandbox" in r["Content-Security-Policy"]


def test_api_clients_fetch_media_with_a_key_that_may_read_inputs(
    alice, bob, client, make_input, make_key
):
    raw = png_bytes()
    make_input(alice.app, "img1", image=raw)
    path = "/apps/app1/inputs/img1/media"
    r = client.get(path, headers={"Authorization": f"Key {alice.secret}"})
    assert r.status_code == 200
    assert b"".join(r.streaming_content) == raw
    predict_only = make_key(alice.user, scopes=["Predict"])
    app_key_elsewhere = make_key(bob.user, app=bob.app)
    for secret in ("wrong", predict_only.secret, bob.secret, app_key_elsewhere.secret):
        assert client.get(path, headers={"Authorization": f"Key {secret}"}).status_code == 404
    assert client.get(path).status_code == 302  # no key, no session: log in


def test_media_view_of_text_input_is_404(alice, alice_client, make_input):
    make_input(alice.app, "t1", text="no image here")
    assert alice_client.get("/apps/app1/inputs/t1/media").status_code == 404


def test_other_users_app_inputs_and_media_are_404(alice, bob, alice_client, make_input):
    make_input(bob.app, "secret-img", image=png_bytes(), text="bob's private text")
    for path in [
        "/apps/bobapp/",
        "/apps/bobapp/inputs/secret-img/",
        "/apps/bobapp/inputs/secret-img/media",
        "/apps/app1/inputs/secret-img/",
        "/apps/app1/inputs/secret-img/media",
        "/apps/nope/",
    ]:
        r = alice_client.get(path)
        assert r.status_code == 404, path
        assert b"bob's private text" not in r.content


def test_gallery_and_detail_show_collected_model_outputs(alice, alice_client, make_input):
    outputs = [
        {
            "model_id": "color-recognition",
            "model_user_id": "builtin",
            "model_app_id": "main",
            "data": {"concepts": [{"id": "red", "name": "red", "value": 1.0}]},
        }
    ]
    make_input(
        alice.app,
        "cap1",
        image=png_bytes(),
        annotations=outputs,
        metadata={"collector": {"collector_id": "demo-collector"}},
    )
    page = alice_client.get("/apps/app1/").content.decode()
    assert "color-recognition:</span> red" in page
    detail = alice_client.get("/apps/app1/inputs/cap1/").content.decode()
    assert "Source model outputs" in detail
    assert "color-recognition" in detail


def test_media_view_content_type_follows_the_stored_bytes(alice, alice_client, make_input):
    make_input(alice.app, "jpg1", image=png_bytes(fmt="JPEG"))
    r = alice_client.get("/apps/app1/inputs/jpg1/media")
    assert r["Content-Type"] == "image/jpeg"


def test_media_type_sniffing_never_yields_markup():
    from collectors_module.inputs.views import sniff_image_mime

    assert (
        sniff_image_mime(b"<svg xmlns='http://www.w3.org/2000/svg'>") == "application/octet-stream"
    )
    assert sniff_image_mime(b"<!doctype html><script>") == "application/octet-stream"
    assert sniff_image_mime(b"RIFF\x00\x00\x00\x00WEBPVP8 ") == "image/webp"
    assert sniff_image_mime(b"") == "application/octet-stream"
