"""Login, app pages, the inputs gallery, the media view and security headers."""

from __future__ import annotations

import pytest
from django.test import Client

from .conftest import PASSWORD, png_bytes


@pytest.mark.parametrize(
    "path",
    [
        "/",
        "/new-app/",
        "/apps/app1/",
        "/apps/app1/inputs/x/",
        "/apps/app1/inputs/x/media",
        "/accounts/keys/",
        "/accounts/account/",
    ],
)
def test_pages_require_login(client, alice, path):
    r = client.get(path)
    assert r.status_code == 302
    assert r["Location"].startswith("/accounts/login/?next=")


def test_login_then_home_lists_apps_and_logout_ends_session(client, alice):
    r = client.post("/accounts/login/", {"username": "alice", "password": PASSWORD})
    assert (r.status_code, r["Location"]) == (302, "/")
    page = client.get("/").content.decode()
    assert "app1" in page
    assert "Your apps" in page
    assert client.get("/accounts/logout/").status_code == 405  # logout is POST only
    r = client.post("/accounts/logout/")
    assert r.status_code == 302
    assert client.get("/").status_code == 302


def test_wrong_password_is_refused(client, alice):
    r = client.post("/accounts/login/", {"username": "alice", "password": "nope"})
    assert r.status_code == 400
    assert "correct" in r.content.decode()
    assert client.get("/").status_code == 302


def test_login_next_is_followed_only_when_local(client, alice):
    r = client.post(
        "/accounts/login/?next=/apps/app1/", {"username": "alice", "password": PASSWORD}
    )
    assert r["Location"] == "/apps/app1/"
    client.post("/accounts/logout/")
    r = client.post(
        "/accounts/login/",
        {"username": "alice", "password": PASSWORD, "next": "https://evil.example/"},
    )
    assert r["Location"] == "/"


def test_login_form_refused_without_csrf_token(alice):
    client = Client(enforce_csrf_checks=True)
    r = client.post("/accounts/login/", {"username": "alice", "password": PASSWORD})
    assert r.status_code == 403


def test_create_app_redirects_to_its_page(alice_client):
    r = alice_client.post("/new-app/", {"app_id": "photos", "description": "my photos"})
    assert (r.status_code, r["Location"]) == (302, "/apps/photos/")
    page = alice_client.get("/apps/photos/").content.decode()
    assert "photos" in page
    assert "No inputs yet" in page


def test_create_app_with_taken_or_bad_id_shows_the_error(alice_client):
    r = alice_client.post("/new-app/", {"app_id": "app1"})
    assert r.status_code == 400
    assert "already exists" in r.content.decode()
    r = alice_client.post("/new-app/", {"app_id": "bad id/.."})
    assert r.status_code == 400
    assert "invalid" in r.content.decode()


def test_gallery_lists_inputs_with_thumbnails_text_concepts_and_provenance(
    alice, alice_client, make_input
):
    make_input(alice.app, "img1", image=png_bytes(), concepts=[("red", 0.97)])
    make_input(alice.app, "txt1", text="hello collectors")
    make_input(
        alice.app,
        "cap1",
        image=png_bytes(color=(0, 0, 255)),
        metadata={"collector": {"collector_id": "col-a", "caller_user_id": "alice"}},
    )
    page = alice_client.get("/apps/app1/").content.decode()
    assert '<img src="/apps/app1/inputs/img1/media"' in page
    assert '<img src="/apps/app1/inputs/cap1/media"' in page
    assert "hello collectors" in page
    assert "red" in page
    assert "0.97" in page
    assert "col-a" in page
    assert "3 inputs" in page


def test_gallery_filters_by_collector_id(alice, alice_client, make_input):
    make_input(alice.app, "a1", text="from a", metadata={"collector": {"collector_id": "col-a"}})
    make_input(alice.app, "b1", text="from b", metadata={"collector": {"collector_id": "col-b"}})
    make_input(alice.app, "plain", text="posted by hand")
    page = alice_client.get("/apps/app1/?collector=col-a").content.decode()
    assert "from a" in page
    assert "from b" not in page
    assert "posted by hand" not in page
    assert "1 input " in page


def test_gallery_htmx_request_gets_only_the_gallery_partial(alice, alice_client, make_input):
    make_input(alice.app, "a1", text="from a", metadata={"collector": {"collector_id": "col-a"}})
    r = alice_client.get(
        "/apps/app1/?collector=col-a", headers={"HX-Request": "true", "HX-Target": "gallery"}
    )
    body = r.content.decode()
    assert body.lstrip().startswith('<section id="gallery"')
    assert "<html" not in body
    assert "from a" in body
    assert "HX-Request" in r["Vary"]


def test_gallery_is_paginated_newest_first(alice, alice_client, make_input):
    for i in range(30):
        make_input(alice.app, f"in{i:02d}", text=f"text number {i:02d}")
    first = alice_client.get("/apps/app1/").content.decode()
    assert "text number 29" in first
    assert "text number 05" not in first
    assert "page 1 of 2" in first
    second = alice_client.get("/apps/app1/?page=2").content.decode()
    assert "text number 05" in second
    assert "text number 29" not in second
    # Out-of-range and junk page numbers do not fail.
    assert alice_client.get("/apps/app1/?page=999").status_code == 200
    assert alice_client.get("/apps/app1/?page=abc").status_code == 200


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


def test_sidebar_lists_apps_and_marks_the_current_app(alice, alice_client, make_app):
    make_app(alice.user, "second")
    page = alice_client.get("/apps/second/").content.decode()
    assert 'href="/apps/app1/"' in page
    assert 'href="/apps/second/" aria-current="page"' in page
    assert "Installed Modules" in page
    assert "Manage Installed Modules" in page


def test_account_page_changes_plan(alice, alice_client):
    r = alice_client.post("/accounts/account/", {"plan": "enterprise"})
    assert r.status_code == 302
    alice.user.refresh_from_db()
    assert alice.user.plan == "enterprise"
    r = alice_client.post("/accounts/account/", {"plan": "platinum"})
    assert r.status_code == 400
    alice.user.refresh_from_db()
    assert alice.user.plan == "enterprise"


def _assert_security_headers(r):
    csp = r["Content-Security-Policy"]
    assert "script-src 'self' 'nonce-" in csp
    assert "style-src 'self'" in csp
    assert "frame-ancestors 'none'" in csp
    assert r["X-Frame-Options"] == "DENY"
    assert r["X-Content-Type-Options"] == "nosniff"


def test_security_headers_on_full_pages_and_htmx_partials(alice, alice_client, make_input, client):
    _assert_security_headers(client.get("/accounts/login/"))
    _assert_security_headers(alice_client.get("/"))
    _assert_security_headers(alice_client.get("/accounts/keys/"))
    _assert_security_headers(
        alice_client.get("/apps/app1/", headers={"HX-Request": "true", "HX-Target": "gallery"})
    )
    r = alice_client.post(
        f"/accounts/keys/{alice.key.public_id}/revoke/", headers={"HX-Request": "true"}
    )
    _assert_security_headers(r)


def test_pages_have_no_inline_styles_or_unnonced_scripts(alice, alice_client, make_input):
    import re

    make_input(alice.app, "img1", image=png_bytes(), metadata={"collector": {"collector_id": "c"}})
    for path in [
        "/",
        "/new-app/",
        "/apps/app1/",
        "/apps/app1/inputs/img1/",
        "/accounts/keys/",
        "/accounts/account/",
    ]:
        r = alice_client.get(path)
        body = r.content.decode()
        nonce = re.search(r"'nonce-([^']+)'", r["Content-Security-Policy"]).group(1)
        assert " style=" not in body, path
        assert "hx-on" not in body, path
        for tag in re.findall(r"<script[^>]*>", body):
            assert f'nonce="{nonce}"' in tag, (path, tag)


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


def test_sidebar_shows_installed_modules_with_their_links(alice, alice_client):
    from collectors_module.modules.models import Module
    from collectors_module.modules.services import installation_create

    module = Module.objects.filter(slug="collector").first()
    if module is None:
        pytest.skip("the Collectors module is not in the catalogue")
    installation_create(module=module, app=alice.app, user=alice.user, slug="collector")
    page = alice_client.get("/apps/app1/").content.decode()
    section = page[page.index('id="installed-modules"') :]
    assert "Collectors" in section
    assert "/apps/app1/installed_module_versions/collector/" in section
    assert 'href="/apps/app1/modules/manage/">Manage Installed Modules' in page


def test_gallery_filter_offers_the_apps_collector_ids(alice, alice_client, make_key):
    from clarifai_grpc.grpc.api import resources_pb2

    from collectors_module.collectors.services import collector_create

    pb = resources_pb2.Collector(id="col-offered", pre_queue_random_sample=0.5)
    src = pb.collector_source.api_post_model_outputs_collector_source
    src.model_user_id, src.model_app_id, src.model_id = "builtin", "main", "color-recognition"
    src.caller_user_id = "alice"
    src.post_inputs_key_id = alice.key.public_id
    collector_create(app=alice.app, actor=alice.user, collector_pb=pb)
    page = alice_client.get("/apps/app1/").content.decode()
    assert '<option value="col-offered">' in page
