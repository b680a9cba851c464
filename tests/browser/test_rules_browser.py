"""Collector rules in Debian's chromium against a live server: edit a node's keep_fraction in the
Workflow Builder, save, try it; then the collector form's preview panel on recent traffic.

Screenshots go to screenshots/collector-rules/ (the folder is printed)."""

from __future__ import annotations

import re

import pytest

from collectors_module.capture.models import Capture
from collectors_module.capture.worker import process
from tests.support import rules
from tests.support.browser import screenshots_dir
from tests.support.pages import PASSWORD

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

RED, BLUE = (220, 20, 30), (20, 40, 220)


def _png_file(tmp_path, raw: bytes, name: str):
    path = tmp_path / name
    path.write_bytes(raw)
    return str(path)


def test_edit_keep_fraction_save_try_and_preview_the_collector(
    live_server, browser_context, alice, api, install, make_collector, media_root, tmp_path
):
    from playwright.sync_api import expect

    shots = screenshots_dir("collector-rules")
    print(f"\nscreenshots: {shots}")
    n = iter(range(1, 100))

    def shot(page, name: str) -> None:
        page.screenshot(path=str(shots / f"{next(n):02d}-{name}.png"), full_page=True)

    page = browser_context.new_page()
    base = live_server.url
    page.goto(base + "/accounts/login/")
    page.get_by_label("User ID").fill("alice")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(base + "/")

    # -- builder: a template asks for keep_fraction; edit it in place; save; try it ----------
    page.goto(base + "/apps/app1/workflows/")
    page.get_by_label("Workflow ID").fill("sampler")
    page.get_by_label("Start from").select_option("random-sample")
    key = page.get_by_label("sample.keep_fraction")
    expect(key).to_have_value("0.1")
    shot(page, "template-asks-keep-fraction")
    key.fill("0")
    page.get_by_role("button", name="Create workflow").click()
    page.wait_for_url(re.compile(r".*/workflows/sampler/$"))
    expect(page.locator("#node-sample")).to_contain_text("keep_fraction=0")
    page.get_by_role("link", name="Edit the parameters of node sample").click()
    field = page.locator("#node-sample-edit").get_by_label("keep_fraction")
    expect(field).to_have_value("0")
    field.fill("1.5")
    page.locator("#node-sample-edit").get_by_role("button", name="Apply").click()
    expect(page.locator("#node-sample-edit")).to_contain_text("enter a number from 0 to 1")
    shot(page, "edit-error-next-to-field")
    page.locator("#node-sample-edit").get_by_label("keep_fraction").fill("1")
    page.locator("#node-sample-edit").get_by_role("button", name="Apply").click()
    expect(page.locator("#node-sample")).to_contain_text("keep_fraction=1")
    expect(page.locator("#unsaved")).to_be_visible()
    page.get_by_role("button", name="Save workflow").click()
    expect(page.locator("#editor")).to_contain_text("Saved")
    page.locator("#try-image").set_input_files(_png_file(tmp_path, rules.solid(RED), "red.png"))
    page.locator("#try-it").get_by_role("button", name="Run").click()
    expect(page.locator("#try-verdict")).to_contain_text("Kept")
    shot(page, "saved-and-tried")

    # -- recent traffic, then the collector form's preview panel -------------------------------
    make_collector(alice, "everything", source=rules.COLOR)
    for raw in (rules.solid(RED), rules.halves(RED, BLUE), rules.solid(BLUE)):
        rules.predict_image(api, alice.secret, raw)
    rules.operator_model(alice.app, "unsure", "least-confidence", {"threshold": 0.3})
    rules.source_then(alice.app, "uncertain", "unsure")
    inst = install(alice)
    page.goto(base + f"/apps/app1/installed_module_versions/{inst.slug}/collectors/create/")
    page.get_by_label("Collector ID").fill("unsure-only")
    page.get_by_label("Pre-queue Workflow").select_option("uncertain")
    page.get_by_label("Source model URL").fill("/users/builtin/apps/main/models/color-recognition")
    page.get_by_label("Post Inputs Key").select_option(alice.key.public_id)
    page.get_by_role("button", name="Preview").click()
    panel = page.locator("#preview-panel")
    expect(panel).to_contain_text("1 of 3")
    expect(panel.locator("tr.kept")).to_have_count(1)
    expect(panel.locator("tr.dropped")).to_have_count(2)
    expect(panel).to_contain_text("filtered_inline:rule")
    panel.scroll_into_view_if_needed()
    shot(page, "collector-preview")

    # -- Show All (its heading is the sidebar link; the chart) and the gallery's card titles ----
    for cap in Capture.objects.filter(collector__public_id="everything"):
        process(cap.pk)
    page.get_by_role("link", name="Show All").first.click()
    expect(page.get_by_role("heading", name="Show All", exact=True)).to_be_visible()
    expect(page.locator(".chart-values").first).to_contain_text("3 captured")
    shot(page, "show-all-chart")
    page.goto(base + "/apps/app1/")
    expect(page.locator(".item-title").first).to_contain_text("Captured")
    shot(page, "gallery-titles")
    page.goto(base + "/accounts/logout/")
    expect(page.get_by_role("heading", name="Log out")).to_be_visible()
    shot(page, "logout-asks")
    assert not browser_context.problems, browser_context.problems
