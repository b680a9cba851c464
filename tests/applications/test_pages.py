"""App pages: create, the app page's inputs gallery, the sidebar."""

from __future__ import annotations

import pytest

from tests.support.pages import png_bytes

pytestmark = pytest.mark.usefixtures("media_root")


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


def test_sidebar_lists_apps_and_marks_the_current_app(alice, alice_client, make_app):
    make_app(alice.user, "second")
    page = alice_client.get("/apps/second/").content.decode()
    assert 'href="/apps/app1/"' in page
    assert 'href="/apps/second/" aria-current="page"' in page
    assert "Installed Modules" in page
    assert "Manage Installed Modules" in page


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
