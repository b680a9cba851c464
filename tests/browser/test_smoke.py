"""Drive the web UI in Debian's chromium: log in, create an app, create a key, revoke it."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.support.browser import SCREENSHOTS, screenshots_dir
from tests.support.pages import PASSWORD, png_bytes

# live_server needs a transactional database, which is flushed after the test; post_migrate
# receivers re-seed the rows data migrations made (built-in models, module catalogue).
pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("media_root"),
]

SHOTS = SCREENSHOTS / "web"


@pytest.fixture
def browser_page(page):
    screenshots_dir("web")
    return page


def _no_horizontal_scroll(page) -> bool:
    return page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")


def test_login_create_app_create_key_see_secret_once_and_revoke(
    live_server, browser_page, make_user, make_input
):
    page = browser_page
    user = make_user("alice")
    base = live_server.url

    # Login required: the home page sends us to the login form.
    page.goto(base + "/")
    assert "/accounts/login/" in page.url
    page.screenshot(path=str(SHOTS / "01-login.png"))
    page.get_by_label("User ID").fill("alice")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(base + "/")
    assert page.get_by_role("heading", name="Your apps").is_visible()

    # Create an app.
    page.get_by_role("link", name="Create your first app").click()
    page.get_by_label("App ID").fill("smoke-app")
    page.get_by_label("Description").fill("made by the browser smoke test")
    page.get_by_role("button", name="Create app").click()
    page.wait_for_url(base + "/apps/smoke-app/")
    assert page.get_by_text("No inputs yet").is_visible()

    # Inputs land in the gallery (one captured by a collector) with a working thumbnail.
    from collectors_module.applications.models import App

    app = App.objects.get(owner=user, public_id="smoke-app")
    make_input(
        app,
        "red-square",
        image=png_bytes((64, 48)),
        concepts=[("red", 0.98)],
        metadata={"collector": {"collector_id": "demo-collector", "caller_user_id": "alice"}},
    )
    make_input(app, "a-text", text="a captured sentence", concepts=[("positive", 0.7)])
    page.reload()
    thumb = page.locator('img[src="/apps/smoke-app/inputs/red-square/media"]')
    thumb.wait_for()
    expect(thumb).to_have_js_property("naturalWidth", 64)  # the media view served the PNG
    page.screenshot(path=str(SHOTS / "02-gallery.png"), full_page=True)
    # Filter by collector through htmx (partial swap), then clear.
    page.get_by_label("Filter by collector").fill("demo-collector")
    page.get_by_role("button", name="Filter").click()
    page.wait_for_url(re.compile(r".*collector=demo-collector.*"))
    page.get_by_text("from collector").wait_for()
    assert page.get_by_text("a captured sentence").count() == 0
    page.screenshot(path=str(SHOTS / "03-gallery-filtered.png"), full_page=True)

    # Create an app key with the "Post inputs + read models" preset.
    page.get_by_role("link", name="Keys", exact=True).click()
    page.wait_for_url(base + "/accounts/keys/")
    page.get_by_label("Description").fill("smoke key")
    page.get_by_label("App key (one app)").check()
    page.get_by_label("App (for an app key)").select_option("smoke-app")
    page.get_by_label("Post inputs + read models").check()
    page.screenshot(path=str(SHOTS / "04-keys-form.png"), full_page=True)
    page.get_by_role("button", name="Create key").click()
    secret_box = page.get_by_role("textbox", name="Secret")
    secret_box.wait_for()
    secret = secret_box.input_value()
    assert secret.startswith("clct_")
    assert page.get_by_text("This is the only time the secret is shown.").is_visible()
    page.screenshot(path=str(SHOTS / "05-key-created.png"), full_page=True)

    # Back on the list: the key is there, its secret is not.
    page.get_by_role("link", name="Back to keys").click()
    page.wait_for_url(base + "/accounts/keys/")
    assert secret not in page.content()
    from collectors_module.accounts.models import Key

    key = Key.objects.get(owner=user, description="smoke key")
    row = page.locator(f"#key-{key.public_id}")
    assert "smoke-app" in row.inner_text()

    # Revoke through htmx, accepting the confirmation.
    page.once("dialog", lambda d: d.accept())
    row.get_by_role("button", name=f"Revoke key {key.public_id}").click()
    page.locator(f"#key-{key.public_id} .badge.err").wait_for()
    assert "/accounts/keys/" in page.url  # swapped in place, no navigation
    key.refresh_from_db()
    assert key.revoked_at is not None
    page.screenshot(path=str(SHOTS / "06-key-revoked.png"), full_page=True)

    # Narrow screen: readable without horizontal scrolling; sidebar opens from the toggle.
    page.set_viewport_size({"width": 375, "height": 800})
    for name, path in (
        ("07-mobile-keys", "/accounts/keys/"),
        ("08-mobile-gallery", "/apps/smoke-app/"),
    ):
        page.goto(base + path)
        assert _no_horizontal_scroll(page), path
        page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)
    page.get_by_role("button", name="Show or hide the sidebar").click()
    assert page.locator("#sidebar").is_visible()
    page.screenshot(path=str(SHOTS / "09-mobile-sidebar.png"))

    # Keyboard: the skip link is the first stop on a fresh page.
    page.goto(base + "/accounts/keys/")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Skip to content"

    # Log out.
    page.set_viewport_size({"width": 1280, "height": 900})
    page.get_by_role("button", name="Log out").click()
    page.wait_for_url(re.compile(r".*/accounts/login/.*"))

    assert page.problems == [], page.problems  # no CSP violations or script errors
