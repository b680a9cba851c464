"""The consent pages in chromium: a caller grants capture on the account's Capture grants page,
the owner turns on "capture every caller" on the model's page, and the caller sees it there."""

from __future__ import annotations

import pytest

from tests.support.browser import SCREENSHOTS, screenshots_dir
from tests.support.pages import PASSWORD

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SHOTS = SCREENSHOTS / "security"


def _login(page, base, user_id):
    page.goto(base + "/accounts/login/")
    page.get_by_label("User ID").fill(user_id)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(base + "/")


def test_grant_capture_and_model_opt_in_pages(live_server, page, make_user, make_app):
    from collectors_module.applications.models import App
    from collectors_module.inference.models import Model

    screenshots_dir("security")
    base = live_server.url
    alice = make_user("alice")
    make_user("bob")
    app = make_app(alice, "app1")
    App.objects.filter(pk=app.pk).update(visibility=50)
    Model.objects.create(
        app=app, public_id="shared", model_type_id="text-classifier", visibility=50
    )

    _login(page, base, "bob")
    page.goto(base + "/accounts/capture-grants/")
    page.get_by_label("User ID allowed to capture your predictions").fill("nobody-here")
    page.get_by_role("button", name="Grant").click()
    assert page.locator("#id_grantee_user_id_error").is_visible()
    page.screenshot(path=str(SHOTS / "01-grant-error.png"), full_page=True)
    page.get_by_label("User ID allowed to capture your predictions").fill("alice")
    page.get_by_role("button", name="Grant").click()
    assert page.locator("#grants-given").get_by_text("alice").is_visible()
    page.screenshot(path=str(SHOTS / "02-granted.png"), full_page=True)

    page.goto(base + "/users/alice/apps/app1/models/shared/")
    assert "Owner only" in page.locator("#capture-status").inner_text()
    assert page.locator("#id_capture_all_callers").count() == 0  # bob cannot change it

    page.context.clear_cookies()
    _login(page, base, "alice")
    page.goto(base + "/users/alice/apps/app1/models/shared/")
    page.get_by_label("Capture every caller", exact=False).check()
    page.get_by_role("button", name="Save").click()
    assert "Captures every caller" in page.locator("#capture-status").inner_text()
    page.screenshot(path=str(SHOTS / "03-model-opt-in.png"), full_page=True)
    assert Model.objects.get(public_id="shared").capture_all_callers
    # The refused grant answers 400 on purpose; nothing else may fail.
    assert [p for p in page.problems if "status of 400" not in p] == [], page.problems


def test_authorize_page_says_where_the_module_key_acts(live_server, page, alice, make_app, install):
    screenshots_dir("security-authorize")
    make_app(alice.user, "elsewhere")
    inst = install(alice, authorize=False)
    base = live_server.url
    _login(page, base, "alice")
    page.goto(f"{base}/apps/app1/installed_module_versions/{inst.slug}/authorize/")
    reach = page.locator("#key-reach")
    assert "alice/app1" in reach.inner_text()
    assert "elsewhere" in reach.inner_text()
    page.screenshot(path=str(SCREENSHOTS / "security-authorize" / "authorize.png"), full_page=True)
    page.get_by_role("button", name="Authorize").click()
    inst.refresh_from_db()
    assert inst.key.app_id == alice.app.pk
    assert not page.problems, page.problems
