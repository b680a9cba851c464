"""Installing the Collectors module: option 1 (module page), option 2 (Module URL), authorize,
uninstall, plan gating, tenancy and CSRF."""

from __future__ import annotations

import re

import pytest
from django.test import Client
from django.urls import reverse

from collectors_module.accounts.models import Key
from collectors_module.modules.models import Installation

pytestmark = pytest.mark.django_db


def test_collector_module_is_seeded_with_the_scopes_its_pages_use():
    import importlib

    from django.db.migrations import RunPython

    from collectors_module.collectors import views
    from collectors_module.modules.models import Module

    migration = importlib.import_module(
        "collectors_module.modules.migrations.0002_seed_collector_module"
    )
    assert any(
        isinstance(op, RunPython) and op.code is migration.seed
        for op in migration.Migration.operations
    )
    collector_module = Module.objects.get(slug="collector")
    assert collector_module.required_scopes == migration.COLLECTOR_SCOPES

    needed = set()
    for scopes in (
        views.FORM_SCOPES,
        views.UPDATE_SCOPES,
        views.LIST_SCOPES,
        views.STATUS_SCOPES,
        views.DELETE_SCOPES,
        views.SOURCE_SCOPES,
    ):
        needed |= set(scopes)
    assert collector_module.title == "Collectors"
    assert needed <= set(collector_module.required_scopes)
    for scope in (
        "Inputs:Add",
        "Collectors:Add",
        "Collectors:Get",
        "Collectors:Delete",
        "Workflows:Get",
        "Models:Get",
        "Predict",
        "Keys:Get",
    ):
        assert scope in collector_module.required_scopes


def test_module_page_has_install_button_and_dialog_with_user_and_app(alice, alice_client):
    page = alice_client.get(reverse("modules:detail", args=["collector"])).content.decode()
    assert "Install Module" in page
    assert 'data-open-dialog="install-dialog"' in page
    dialog = page[page.index("<dialog") : page.index("</dialog>")]
    assert 'name="user"' in dialog
    assert 'value="alice"' in dialog
    assert 'name="app"' in dialog
    assert 'value="app1"' in dialog
    assert ">Confirm<" in dialog
    # every input of the dialog has a label
    for input_id in re.findall(r'<select id="([^"]+)"', dialog):
        assert f'for="{input_id}"' in dialog


def test_install_option_1_confirm_destination_and_use(alice, alice_client):
    url = reverse("modules:install", args=["collector"])
    page = alice_client.get(url, {"user": "alice", "app": "app1"})
    assert page.status_code == 200
    body = page.content.decode()
    assert "Install to this App!" in body
    assert 'name="slug"' in body
    assert 'name="visibility"' in body
    response = alice_client.post(
        url, {"user": "alice", "app": "app1", "slug": "my-collectors", "visibility": "10"}
    )
    inst = Installation.objects.get(app=alice.app, slug="my-collectors")
    assert response.status_code == 302
    assert response["Location"] == reverse("modules:installed", args=["app1", "my-collectors"])
    success = alice_client.get(response["Location"]).content.decode()
    assert "Click to use installed module version" in success
    # the sidebar lists it under Installed Modules, expanding to Create and Show All
    sidebar = success[success.index("Installed Modules") :]
    assert "my-collectors" in sidebar
    assert reverse("collectors:create", args=["app1", "my-collectors"]) in sidebar
    assert reverse("collectors:list", args=["app1", "my-collectors"]) in sidebar
    assert "Show All" in sidebar
    # first use asks for authorization
    use = alice_client.get(reverse("modules:use", args=["app1", "my-collectors"]))
    assert use["Location"] == reverse("modules:authorize", args=["app1", "my-collectors"])
    assert inst.key is None


def test_install_option_2_from_module_url(alice, alice_client):
    manage = reverse("modules:manage", args=["app1"])
    page = alice_client.get(manage).content.decode()
    assert "Module URL" in page
    assert 'for="id_module_url"' in page
    module_url = "http://testserver" + reverse("modules:detail", args=["collector"])
    response = alice_client.get(manage, {"module_url": module_url})
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("modules:install", args=["collector"]))
    prompt = alice_client.get(response["Location"]).content.decode()
    assert "Install to this App!" in prompt
    assert 'value="app1"' in prompt
    alice_client.post(
        reverse("modules:install", args=["collector"]),
        {"user": "alice", "app": "app1", "slug": "via-url", "visibility": "50"},
    )
    inst = Installation.objects.get(app=alice.app, slug="via-url")
    assert inst.visibility == 50
    listing = alice_client.get(manage).content.decode()
    assert "via-url" in listing
    assert "Uninstall" in listing


@pytest.mark.parametrize(
    "bad", ["https://example.com/nothing/here", "modules/no-such-module", "javascript:alert(1)"]
)
def test_manage_module_url_errors_appear_next_to_the_field(alice, alice_client, bad):
    response = alice_client.get(reverse("modules:manage", args=["app1"]), {"module_url": bad})
    assert response.status_code == 400
    body = response.content.decode()
    field = body[body.index('id="id_module_url"') :]
    assert 'aria-invalid="true"' in body
    assert 'id="module-url-error"' in field[:800]
    assert not Installation.objects.exists()


def test_install_slug_taken_or_invalid_shows_error_next_to_slug(alice, alice_client, install):
    install(alice, "collector")
    url = reverse("modules:install", args=["collector"])
    taken = alice_client.post(
        url, {"user": "alice", "app": "app1", "slug": "collector", "visibility": "10"}
    )
    assert taken.status_code == 400
    body = taken.content.decode()
    assert 'id="slug-error"' in body
    assert "already used" in body
    bad = alice_client.post(
        url, {"user": "alice", "app": "app1", "slug": "Not A Slug!", "visibility": "10"}
    )
    assert bad.status_code == 400
    assert 'id="slug-error"' in bad.content.decode()
    assert Installation.objects.filter(app=alice.app).count() == 1


def test_install_suggests_a_free_slug(alice, alice_client, install):
    install(alice, "collector")
    page = alice_client.get(
        reverse("modules:install", args=["collector"]), {"user": "alice", "app": "app1"}
    )
    assert 'value="collector-2"' in page.content.decode()


def test_install_into_another_users_app_does_not_exist(alice, bob, alice_client):
    url = reverse("modules:install", args=["collector"])
    assert alice_client.get(url, {"user": "alice", "app": "bobapp"}).status_code == 404
    response = alice_client.post(
        url, {"user": "alice", "app": "bobapp", "slug": "x", "visibility": "10"}
    )
    assert response.status_code == 404
    assert alice_client.get(url, {"user": "bob", "app": "app1"}).status_code == 404
    assert not Installation.objects.exists()


def test_authorize_shows_scopes_and_creates_a_key_with_them(
    alice, alice_client, install, collector_module
):
    inst = install(alice, authorize=False)
    url = reverse("modules:authorize", args=["app1", inst.slug])
    page = alice_client.get(url).content.decode()
    for scope in collector_module.required_scopes:
        assert f"<code>{scope}</code>" in page
    assert ">Authorize<" in page
    before = set(Key.objects.filter(owner=alice.user).values_list("pk", flat=True))
    response = alice_client.post(url)
    assert response["Location"] == reverse("collectors:create", args=["app1", inst.slug])
    inst.refresh_from_db()
    key = inst.key
    assert key is not None
    assert key.pk not in before
    assert key.owner == alice.user
    assert key.app == alice.app  # an app key: the narrowest that works for the installation
    assert key.is_usable
    assert sorted(key.scopes) == sorted(collector_module.required_scopes)
    # visible (and revocable) on the keys page
    keys_page = alice_client.get(reverse("accounts:keys")).content.decode()
    assert key.public_id in keys_page
    # and the module page opens
    assert (
        alice_client.get(reverse("collectors:create", args=["app1", inst.slug])).status_code == 200
    )


def test_revoked_module_key_sends_the_user_back_to_authorize(alice, alice_client, install):
    from collectors_module.accounts.services import key_revoke

    inst = install(alice)
    create = reverse("collectors:create", args=["app1", inst.slug])
    assert alice_client.get(create).status_code == 200
    key_revoke(owner=alice.user, key_public_id=inst.key.public_id)
    response = alice_client.get(create)
    assert response.status_code == 302
    assert response["Location"] == reverse("modules:authorize", args=["app1", inst.slug])
    assert "was revoked" in alice_client.get(response["Location"]).content.decode()
    # htmx requests are redirected by header instead
    partial = alice_client.get(
        reverse("collectors:list", args=["app1", inst.slug]), headers={"HX-Request": "true"}
    )
    assert partial["HX-Redirect"] == reverse("modules:authorize", args=["app1", inst.slug])
    # authorizing again restores access with a fresh key
    alice_client.post(reverse("modules:authorize", args=["app1", inst.slug]))
    assert alice_client.get(create).status_code == 200


def test_expired_module_key_sends_the_user_back_to_authorize(alice, alice_client, install):
    from datetime import timedelta

    from django.utils import timezone

    inst = install(alice)
    Key.objects.filter(pk=inst.key_id).update(expires_at=timezone.now() - timedelta(seconds=1))
    response = alice_client.get(reverse("collectors:list", args=["app1", inst.slug]))
    assert response["Location"] == reverse("modules:authorize", args=["app1", inst.slug])


def test_uninstall_deletes_installation_and_revokes_its_key(alice, alice_client, install):
    inst = install(alice)
    key_pk = inst.key_id
    url = reverse("modules:uninstall", args=["app1", inst.slug])
    confirm = alice_client.get(url)
    assert confirm.status_code == 200
    assert "Uninstall" in confirm.content.decode()
    assert Installation.objects.filter(pk=inst.pk).exists()
    response = alice_client.post(url)
    assert response["Location"] == reverse("modules:manage", args=["app1"])
    assert not Installation.objects.filter(pk=inst.pk).exists()
    assert Key.objects.get(pk=key_pk).revoked_at is not None


def test_uninstall_over_htmx_returns_an_empty_row(alice, alice_client, install):
    inst = install(alice)
    response = alice_client.post(
        reverse("modules:uninstall", args=["app1", inst.slug]), headers={"HX-Request": "true"}
    )
    assert response.status_code == 200
    assert response.content == b""
    assert not Installation.objects.exists()


def test_another_users_installation_does_not_exist(alice, bob, bob_client, install):
    inst = install(alice)
    for name in ("modules:use", "modules:installed", "modules:authorize", "modules:uninstall"):
        assert bob_client.get(reverse(name, args=["app1", inst.slug])).status_code == 404
    assert (
        bob_client.post(reverse("modules:uninstall", args=["app1", inst.slug])).status_code == 404
    )
    assert (
        bob_client.post(reverse("modules:authorize", args=["app1", inst.slug])).status_code == 404
    )
    assert bob_client.get(reverse("collectors:create", args=["app1", inst.slug])).status_code == 404
    assert bob_client.get(reverse("modules:manage", args=["app1"])).status_code == 404
    assert Installation.objects.filter(pk=inst.pk).exists()
    inst.refresh_from_db()
    assert inst.key.is_usable


def test_post_without_csrf_token_is_refused(alice, install):
    inst = install(alice, authorize=False)
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice.user)
    install_url = reverse("modules:install", args=["collector"])
    assert (
        client.post(
            install_url, {"user": "alice", "app": "app1", "slug": "x", "visibility": "10"}
        ).status_code
        == 403
    )
    assert client.post(reverse("modules:authorize", args=["app1", inst.slug])).status_code == 403
    assert client.post(reverse("modules:uninstall", args=["app1", inst.slug])).status_code == 403
    inst.refresh_from_db()
    assert inst.key is None
    assert list(Installation.objects.values_list("slug", flat=True)) == [inst.slug]


def test_community_user_sees_plan_explanation_instead_of_the_module(make_user, make_app):
    user = make_user("carol", plan="community")
    make_app(user, "capp")
    client = Client()
    client.force_login(user)
    page = client.get(reverse("modules:detail", args=["collector"])).content.decode()
    assert "Professional or Enterprise" in page
    assert "upgrade" in page.lower()
    assert "Install Module" not in page
    install_url = reverse("modules:install", args=["collector"])
    refused = client.post(
        install_url, {"user": "carol", "app": "capp", "slug": "x", "visibility": "10"}
    )
    assert refused.status_code == 403
    assert "Professional or Enterprise" in refused.content.decode()
    assert (
        client.get(
            reverse("modules:manage", args=["capp"]), {"module_url": "collector"}
        ).status_code
        == 403
    )
    assert not Installation.objects.exists()


def test_downgraded_user_loses_module_pages(alice, alice_client, install):
    inst = install(alice)
    alice.user.plan = "community"
    alice.user.save(update_fields=["plan"])
    for name in ("collectors:create", "collectors:list"):
        response = alice_client.get(reverse(name, args=["app1", inst.slug]))
        assert response.status_code == 403
        assert "Professional or Enterprise" in response.content.decode()


def test_module_key_without_a_needed_scope_cannot_act(alice, alice_client, install):
    inst = install(alice)
    Key.objects.filter(pk=inst.key_id).update(scopes=["Collectors:Get", "Apps:Get"])
    response = alice_client.get(reverse("collectors:create", args=["app1", inst.slug]))
    assert response.status_code == 403
    assert "Collectors:Add" in response.content.decode()
    assert alice_client.get(reverse("collectors:list", args=["app1", inst.slug])).status_code == 200


def test_pages_need_login(alice, install):
    inst = install(alice)
    client = Client()
    for url in (
        reverse("modules:detail", args=["collector"]),
        reverse("collectors:list", args=["app1", inst.slug]),
        reverse("modules:manage", args=["app1"]),
    ):
        response = client.get(url)
        assert response.status_code == 302
        assert "login" in response["Location"]


@pytest.mark.parametrize("bad", ["%00", "a%00b", "x" * 300, "%C3%BC"])
def test_malformed_ids_in_urls_are_not_found_never_500(alice, alice_client, install, bad):
    inst = install(alice)
    urls = [
        f"/apps/{bad}/modules/manage/",
        f"/apps/{bad}/installed_module_versions/{inst.slug}/",
        f"/apps/app1/installed_module_versions/{inst.slug}/collectors/{bad}/update/",
        f"/apps/app1/installed_module_versions/{inst.slug}/collectors/{bad}/stats/",
        f"/modules/collector/install/?user=alice&app={bad}",
    ]
    for url in urls:
        assert alice_client.get(url).status_code == 404, url
    post = f"/apps/app1/installed_module_versions/{inst.slug}/collectors/{bad}/status/"
    assert alice_client.post(post, {"active": "0"}).status_code == 404
