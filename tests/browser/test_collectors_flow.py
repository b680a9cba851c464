"""The product page's "Create via the UI" walk-through, in Debian's chromium against a live server
with a real Celery worker: install (options 1 and 2), authorize, the page's two workflows in the
Workflow Builder (random-sample with keep_fraction 1, image-to-text with the caption model),
create the collector on the page's source model (its model URL and version id), predict as the
caller, find the captioned capture in the inputs gallery, update (no post-queue workflow: captured
as-is), deactivate, reactivate, delete.

Screenshots of every step go to screenshots/collectors-flow/ (the folder is printed).
"""

from __future__ import annotations

import base64
import io
import re
import time

import pytest
import requests

from tests import photos
from tests.support.pages import PASSWORD

# live_server needs a transactional database, flushed after the test: a serialized rollback puts
# the seeded rows (built-in models, the module catalogue) back for the tests that follow.
pytestmark = [
    pytest.mark.browser,
    pytest.mark.worker,
    pytest.mark.django_db(transaction=True),
]

# The product page's source model, as its walkthrough names it: the model URL and version id.
PAGE_MODEL_URL = "https://clarifai.com/clarifai/main/models/general-image-recognition"
PAGE_VERSION = "aa7f35c01e0642fda5cf400f543e7c40"
PAGE_MODEL = "/users/clarifai/apps/main/models/general-image-recognition"
CAPTION = {
    "user_id": "builtin",
    "app_id": "main",
    "id": "general-english-image-caption",
    "version": "4ae20f0036badbe3fba16d8102372d73",
}
WAIT_MS = 120_000


def text_image(text: str = "HELLO 42", color=(250, 250, 250)) -> bytes:
    """A PNG with large dark printed text, so OCR has something to read."""
    from PIL import Image, ImageDraw, ImageFont

    img = Image.new("RGB", (640, 200), color)
    draw = ImageDraw.Draw(img)
    try:
        font = ImageFont.truetype("DejaVuSans-Bold.ttf", 96)
    except OSError:
        font = ImageFont.load_default(size=96)
    draw.text((40, 40), text, fill=(10, 10, 10), font=font)
    draw.rectangle((0, 180, 640, 200), fill=(30, 90, 200))  # a blue band for the colour model
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


class Flow:
    def __init__(self, page, base: str, shots, secret: str):
        self.page = page
        self.base = base
        self.shots = shots
        self.secret = secret
        self.n = 0

    def shot(self, name: str, *, full: bool = True) -> None:
        self.n += 1
        self.page.screenshot(path=str(self.shots / f"{self.n:02d}-{name}.png"), full_page=full)

    def api(self, method: str, path: str, body: dict) -> dict:
        r = requests.request(
            method,
            self.base + path,
            json=body,
            headers={"Authorization": f"Key {self.secret}"},
            timeout=120,
        )
        payload = r.json()
        assert payload.get("status", {}).get("code") == 10000, (path, r.status_code, payload)
        return payload

    def predict(self, image: bytes) -> dict:
        return self.api(
            "POST",
            f"/v2{PAGE_MODEL}/versions/{PAGE_VERSION}/outputs",
            {"inputs": [{"data": {"image": {"base64": base64.b64encode(image).decode()}}}]},
        )


def _inputs_of(app):
    from collectors_module.inputs.models import Input

    return list(Input.objects.filter(app=app).order_by("created_at", "pk"))


def _captures(collector_pk: int) -> int:
    from collectors_module.capture.models import Capture

    return Capture.objects.filter(collector_id=collector_pk).count()


def _wait_for(predicate, timeout: float = 120.0, interval: float = 0.5):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s")


def _images_loaded(page) -> None:
    """Wait until every image of the page has loaded (and none is broken)."""
    check = "Array.from(document.images).every(i => i.complete && i.naturalWidth > 0)"
    _wait_for(lambda: page.evaluate(check), timeout=15)


def _builder_url() -> str:
    from django.urls import NoReverseMatch, reverse

    try:
        return reverse("workflows:builder", args=["app1"])
    except NoReverseMatch:
        return ""


def _workflow_in_builder(
    page, base: str, builder: str, workflow_id: str, choice: str, params: dict
) -> None:
    """New workflow -> add one node (model or operator, with its parameters) -> Save workflow."""
    from playwright.sync_api import expect

    page.goto(base + builder)
    page.get_by_label("Workflow ID").fill(workflow_id)
    page.get_by_role("button", name="Create workflow").click()
    page.wait_for_url(re.compile(rf".*/workflows/{re.escape(workflow_id)}/$"))
    page.locator("select#choice").select_option(choice)  # htmx swaps in the node form
    node_form = page.locator("form.wf-node-form")
    expect(node_form).to_be_visible()
    for name, value in params.items():
        node_form.locator(f'[name="{name}"]').fill(value)
    node_form.get_by_role("button", name="Add node").click()
    expect(page.locator("ol.wf-nodes li")).to_have_count(1)
    page.get_by_role("button", name="Save workflow").click()
    expect(page.locator("#editor")).to_contain_text("Saved")


def _metric(page, name: str):
    return page.locator(f'tr.collector-row dd[data-metric="{name}"]').first


def test_collectors_module_flow_from_the_product_page(
    live_server,
    browser_context,
    worker,
    shots_dir,
    make_user,
    make_app,
    make_key,
    settings,
    tmp_path,
):
    from playwright.sync_api import expect

    from collectors_module.collectors.models import Collector
    from collectors_module.modules.models import Installation

    print(f"\nscreenshots: {shots_dir}")
    alice = make_user("alice")
    app = make_app(alice, "app1", description="where captured inputs land")
    pat = make_key(alice, description="alice's PAT")
    page = browser_context.new_page()
    base = live_server.url
    flow = Flow(page, base, shots_dir, pat.secret)

    # -- log in -------------------------------------------------------------------------------
    page.goto(base + "/accounts/login/")
    page.get_by_label("User ID").fill("alice")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(base + "/")

    # -- install, option 1: module page -> Install Module -> dialog -> Confirm -> destination -----
    page.goto(base + "/modules/collector/")
    expect(page.get_by_role("heading", name="Collectors", exact=True)).to_be_visible()
    flow.shot("module-page")
    page.get_by_role("link", name="Install Module").click()
    dialog = page.locator("dialog#install-dialog")
    expect(dialog).to_be_visible()
    dialog.get_by_label("User").select_option("alice")
    dialog.get_by_label("Destination app").select_option("app1")
    flow.shot("install-dialog", full=False)
    dialog.get_by_role("button", name="Confirm").click()
    page.wait_for_url(re.compile(r".*/modules/collector/install/\?.*app=app1.*"))
    page.get_by_label("Destination URL").fill("collectors")
    page.get_by_label("Private").check()
    flow.shot("install-destination")
    page.get_by_role("button", name="Install to this App!").click()
    page.wait_for_url(base + "/apps/app1/installed_module_versions/collectors/installed/")
    expect(page.get_by_role("link", name="Click to use installed module version")).to_be_visible()
    expect(page.locator("#installed-modules")).to_contain_text("app1/collectors")
    flow.shot("installed")
    page.get_by_role("link", name="Click to use installed module version").click()

    # -- authorize: the permissions, then Authorize creates the key ------------------------------
    page.wait_for_url(base + "/apps/app1/installed_module_versions/collectors/authorize/")
    expect(page.get_by_text("Collectors:Add")).to_be_visible()
    flow.shot("authorize")
    page.get_by_role("button", name="Authorize").click()
    page.wait_for_url(base + "/apps/app1/installed_module_versions/collectors/collectors/create/")
    inst = Installation.objects.get(app=app, slug="collectors")
    assert inst.key is not None
    assert inst.key.is_usable
    assert "Collectors:Add" in inst.key.scopes

    # the key is on the keys page
    page.goto(base + "/accounts/keys/")
    expect(page.get_by_text(inst.key.public_id).first).to_be_visible()
    flow.shot("keys-page-with-module-key")

    # -- install, option 2: Manage Installed Modules -> Module URL ------------------------------
    page.goto(base + "/apps/app1/")
    page.get_by_role("link", name="Manage Installed Modules").click()
    page.wait_for_url(base + "/apps/app1/modules/manage/")
    page.get_by_label("Module URL").fill(base + "/modules/collector/")
    flow.shot("manage-module-url")
    page.get_by_role("button", name="Install", exact=True).click()
    page.wait_for_url(re.compile(r".*/modules/collector/install/\?.*"))
    page.get_by_label("Destination URL").fill("collectors-via-url")
    page.get_by_role("button", name="Install to this App!").click()
    page.wait_for_url(base + "/apps/app1/installed_module_versions/collectors-via-url/installed/")
    page.get_by_role("link", name="Click to use installed module version").click()
    page.get_by_role("button", name="Authorize").click()
    page.wait_for_url(re.compile(r".*/collectors-via-url/collectors/create/"))
    page.goto(base + "/apps/app1/modules/manage/")
    expect(page.locator("table.installations")).to_contain_text("collectors-via-url")
    flow.shot("manage-two-installations")
    assert Installation.objects.filter(app=app).count() == 2

    # -- the two workflows of the example, made in the Workflow Builder ---------------------------
    builder = _builder_url()
    if builder:
        _workflow_in_builder(
            page, base, builder, "random-sample", "op:random-sample", {"p_keep_fraction": "1"}
        )
        flow.shot("builder-random-sample")
        _workflow_in_builder(
            page, base, builder, "image-to-text", "builtin:general-english-image-caption", {}
        )
        flow.shot("builder-image-to-text")
    else:  # the Workflow Builder page is not in this build: the workflows API with the user's key
        print("Workflow Builder not available: workflows made through the API")
        flow.api(
            "POST",
            "/v2/users/alice/apps/app1/models",
            {
                "model": {
                    "id": "sampler",
                    "model_type_id": "random-sample",
                    "output_info": {"params": {"keep_fraction": 1}},
                }
            },
        )
        flow.api(
            "POST",
            "/v2/users/alice/apps/app1/workflows",
            {
                "workflows": [
                    {
                        "id": "random-sample",
                        "nodes": [{"id": "sample", "model": {"id": "sampler"}}],
                    },
                    {
                        "id": "image-to-text",
                        "nodes": [
                            {
                                "id": "caption",
                                "model": {
                                    "id": CAPTION["id"],
                                    "user_id": CAPTION["user_id"],
                                    "app_id": CAPTION["app_id"],
                                    "model_version": {"id": CAPTION["version"]},
                                },
                            }
                        ],
                    },
                ]
            },
        )
    from collectors_module.workflows.models import Workflow

    made = {w.public_id: w for w in Workflow.objects.filter(app=app).prefetch_related("nodes")}
    assert set(made) == {"random-sample", "image-to-text"}
    sampler_node = made["random-sample"].nodes.get()
    assert sampler_node.model_version.model.output_info["params"]["keep_fraction"] == 1
    assert made["image-to-text"].nodes.get().model_version.public_id == CAPTION["version"]

    # -- create the collector through the sidebar's Create page ---------------------------------
    page.goto(base + "/apps/app1/")
    sidebar_entry = (
        page.locator("#installed-modules details").filter(has_text="app1/collectors").first
    )
    sidebar_entry.locator("summary").click()
    sidebar_entry.get_by_role("link", name="Create").click()
    page.wait_for_url(base + "/apps/app1/installed_module_versions/collectors/collectors/create/")
    page.get_by_label("Collector ID").fill("general-captures")
    page.get_by_label("Description").fill(
        "Images alice sends to general-image-recognition, captioned"
    )
    page.get_by_label("Pre-queue Workflow").select_option("random-sample")
    page.get_by_label("Post-queue Workflow").select_option("image-to-text")
    page.get_by_label("Post Inputs Key").select_option(pat.key.public_id)
    expect(page.get_by_label("Activate Collector")).to_be_checked()
    expect(page.get_by_label("Caller")).to_have_value("alice")
    page.get_by_label("Source model URL").fill("https://clarifai.com/clarifai/main/models/nope")
    expect(page.locator("#source-check")).to_contain_text("No such model", timeout=10_000)
    page.get_by_label("Source model URL").fill(PAGE_MODEL_URL)
    page.get_by_label("Model version ID").fill(PAGE_VERSION)
    page.get_by_label("Collect outputs").check()  # the source's concepts arrive with the caption
    expect(page.locator("#source-check")).to_contain_text(
        "General image recognition", timeout=10_000
    )
    flow.shot("create-form-filled")
    page.get_by_role("button", name="Create new collector").click()
    page.wait_for_url(base + "/apps/app1/installed_module_versions/collectors/collectors/")
    collector = Collector.objects.get(app=app, public_id="general-captures")
    assert collector.is_active
    assert (collector.model_user_id, collector.model_app_id, collector.model_id) == (
        "clarifai",
        "main",
        "general-image-recognition",
    )
    assert collector.model_version_id == PAGE_VERSION
    expect(page.locator("tr.collector-row")).to_contain_text("general-captures")
    flow.shot("show-all-created")

    # -- predict as the caller: captured, captioned, ingested -----------------------------------
    started = time.monotonic()
    predicted = flow.predict(photos.photo("coffee"))
    assert predicted["outputs"][0]["data"]["concepts"][0]["name"] == "espresso"
    expect(_metric(page, "ingested")).to_have_text("1", timeout=WAIT_MS)  # htmx polling
    print(
        f"predict -> captured, captioned and shown as ingested on Show All: {time.monotonic() - started:.1f}s"
    )
    expect(_metric(page, "accepted")).to_have_text("1")
    flow.shot("show-all-after-first-capture")
    first = _wait_for(lambda: _inputs_of(app))[0]
    page.goto(base + "/apps/app1/")
    card = page.locator("li.item").filter(has_text=first.public_id[:20]).first
    expect(card.locator(".item-text")).to_contain_text("a photo of an espresso")
    expect(card.locator("p.outputs")).to_contain_text("general-image-recognition")
    expect(card.locator("p.outputs")).to_contain_text("espresso")  # the collected concepts
    expect(card.locator("img")).to_be_visible()
    _images_loaded(page)
    flow.shot("gallery-captioned-capture")
    card.get_by_role("link").first.click()  # the input's page: caption and the source's concepts
    expect(page.locator(".input-text").first).to_contain_text("a photo of an espresso")
    expect(page.locator("ul.concepts").first).to_contain_text("espresso")
    flow.shot("input-captioned-with-concepts")

    # -- update: deselect the post-queue workflow; the image is captured as-is ------------------
    page.goto(base + "/apps/app1/installed_module_versions/collectors/collectors/")
    page.locator("tr.collector-row").first.get_by_role("link", name="Update").click()
    page.wait_for_url(re.compile(r".*/collectors/general-captures/update/"))
    expect(page.get_by_label("Post-queue Workflow")).to_have_value("image-to-text")
    page.get_by_label("Post-queue Workflow").select_option("")
    flow.shot("update-form")
    page.get_by_role("button", name="Update", exact=True).click()
    page.wait_for_url(base + "/apps/app1/installed_module_versions/collectors/collectors/")
    collector.refresh_from_db()
    assert collector.post_queue_workflow is None
    flow.predict(photos.photo("chelsea"))
    expect(_metric(page, "ingested")).to_have_text("2", timeout=WAIT_MS)
    inputs = _wait_for(lambda: (lambda xs: xs if len(xs) == 2 else None)(_inputs_of(app)))
    as_is = inputs[1]
    assert as_is.public_id != first.public_id
    page.goto(base + "/apps/app1/")
    card = page.locator("li.item").filter(has_text=as_is.public_id[:20]).first
    expect(card.locator("img")).to_be_visible()
    expect(card.locator(".item-text")).to_have_count(0)  # no generated text: captured as-is
    _images_loaded(page)
    flow.shot("gallery-as-is-capture")

    # -- deactivate (htmx, no reload): predictions are not captured ------------------------------
    page.goto(base + "/apps/app1/installed_module_versions/collectors/collectors/")
    page.evaluate("window.__noReload = true")
    row = page.locator("tr.collector-row").first
    row.get_by_role("button", name="Deactivate").click()
    expect(row.get_by_role("button", name="Reactivate")).to_be_visible()
    expect(page.locator("tr.collector-row").first).to_contain_text("Inactive")
    assert page.evaluate("window.__noReload === true")  # same document: swapped by htmx
    collector.refresh_from_db()
    assert not collector.is_active
    flow.shot("deactivated")
    before = _captures(collector.pk)
    flow.predict(text_image("NOT ME"))
    time.sleep(4)
    assert _captures(collector.pk) == before
    assert len(_inputs_of(app)) == 2
    expect(_metric(page, "accepted")).to_have_text("2")

    # -- reactivate: captured again ------------------------------------------------------------
    page.locator("tr.collector-row").first.get_by_role("button", name="Reactivate").click()
    expect(page.locator("tr.collector-row").first).to_contain_text("Active")
    expect(
        page.locator("tr.collector-row").first.get_by_role("button", name="Deactivate")
    ).to_be_visible()
    flow.predict(text_image("BACK 3"))
    expect(_metric(page, "ingested")).to_have_text("3", timeout=WAIT_MS)
    assert page.evaluate("window.__noReload === true")
    assert len(_inputs_of(app)) == 3
    flow.shot("reactivated-and-captured")

    # -- narrow screen (375 px): readable, no sideways scrolling ---------------------------------
    page.set_viewport_size({"width": 375, "height": 800})
    page.reload()
    flow.shot("show-all-375px")
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")
    page.goto(base + "/apps/app1/installed_module_versions/collectors/collectors/create/")
    flow.shot("create-form-375px")
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")
    page.set_viewport_size({"width": 1280, "height": 900})

    # -- keyboard: the toggle is reachable and shows focus --------------------------------------
    page.goto(base + "/apps/app1/installed_module_versions/collectors/collectors/")
    page.locator("tr.collector-row").first.get_by_role("button", name="Deactivate").focus()
    outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert outline != "none"

    # -- delete, with confirmation, without a reload --------------------------------------------
    page.evaluate("window.__noReload = true")
    page.once("dialog", lambda d: d.accept())
    page.locator("tr.collector-row").first.get_by_role("button", name="Delete").click()
    expect(page.locator("tr.collector-row")).to_have_count(0)
    expect(page.locator("tr.deleted-note")).to_contain_text("general-captures deleted")
    assert page.evaluate("window.__noReload === true")
    assert not Collector.objects.filter(pk=collector.pk).exists()
    flow.shot("deleted")
    # the captured inputs stay in the app
    assert len(_inputs_of(app)) == 3

    csp = [p for p in browser_context.problems if "Content Security Policy" in p]
    assert not csp, csp
