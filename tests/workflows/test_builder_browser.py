"""Build workflows through the Workflow Builder in Debian's chromium and run "Try it" on them.

The random-sample workflow of the product page (keep_fraction 1) and an image-to-text workflow are
made node by node with the generated forms, saved, and run on an image with text drawn by Pillow:
the OCR node shows the text. Screenshots go to screenshots/builder/.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.support.browser import SCREENSHOTS, screenshots_dir
from tests.support.pages import PASSWORD

from .conftest import text_image

pytestmark = [
    pytest.mark.browser,
    # live_server needs a transactional database. No serialized rollback: its teardown flush skips
    # post_migrate, which would leave the tests after this one without builtin/main; this one
    # seeds builtin/main itself (a serialized test before it may have flushed it away).
    pytest.mark.django_db(transaction=True),
]

SHOTS = SCREENSHOTS / "builder"


@pytest.fixture
def page(page):
    screenshots_dir("builder")
    return page


def shot(pg, name: str) -> None:
    # caret="initial": hiding the caret leaves style="" on inputs, which htmx then copies (CSP).
    pg.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True, caret="initial")


def new_workflow(pg, workflow_id: str) -> None:
    pg.get_by_role("link", name="Workflow Builder").first.click()
    pg.get_by_role("heading", name="Workflow Builder").wait_for()
    pg.get_by_label("Workflow ID").fill(workflow_id)
    pg.get_by_label("Start from").select_option("")  # from scratch
    pg.get_by_role("button", name="Create workflow").click()
    pg.get_by_role("heading", name=f"Workflow {workflow_id}").wait_for()


def choose(pg, value: str) -> None:
    """Pick a model or operator; htmx swaps in its generated form."""
    pg.get_by_label("Model or operator").select_option(value)
    pg.get_by_role("button", name="Add node").wait_for()


def add_and_save(pg, node_id: str) -> None:
    pg.get_by_role("button", name="Add node").click()
    pg.locator(f"#node-{node_id}").wait_for()  # the editor partial came back
    pg.locator("#unsaved").wait_for()
    pg.get_by_role("button", name="Save workflow").click()
    pg.get_by_text(re.compile(r"Workflow .* saved\.")).wait_for()


def try_it(pg, image_path: Path) -> None:
    pg.get_by_label("Image", exact=True).set_input_files(str(image_path))
    pg.get_by_role("button", name="Run").click()
    pg.locator("#try-verdict").wait_for()


def test_build_random_sample_and_image_to_text_workflows_and_try_them(
    live_server, page, make_user, make_app, tmp_path
):
    from collectors_module.inference.seed import ensure_builtin_models

    ensure_builtin_models()
    user = make_user("alice")
    make_app(user, "shop")
    image = tmp_path / "sign.png"
    image.write_bytes(text_image("OPEN 24"))
    base = live_server.url
    pg = page

    pg.goto(base + "/accounts/login/")
    pg.get_by_label("User ID").fill("alice")
    pg.get_by_label("Password").fill(PASSWORD)
    pg.get_by_role("button", name="Log in").click()
    pg.wait_for_url(base + "/")
    pg.goto(base + "/apps/shop/")

    # 1. The product page's random sample, keeping every input (keep_fraction 1).
    new_workflow(pg, "sample-all")
    shot(pg, "01-empty-editor")
    choose(pg, "op:random-sample")
    keep = pg.get_by_label("keep_fraction")
    assert keep.get_attribute("type") == "number"
    assert keep.get_attribute("min") == "0"
    assert keep.get_attribute("max") == "1"
    assert pg.get_by_text("Average fraction of inputs let through").is_visible()  # help text
    keep.fill("1")
    pg.get_by_label("seed").fill("demo")
    shot(pg, "02-random-sample-form")
    add_and_save(pg, "sample")
    assert pg.locator("#node-sample").inner_text().count("keep_fraction=1;") == 1
    assert pg.locator("svg.wf-svg text", has_text="Random sample").count() == 1
    try_it(pg, image)
    verdict = pg.locator("#try-verdict").inner_text()
    assert verdict.startswith("Kept")
    assert "passed the input on" in pg.locator("#out-sample").inner_text().lower()
    shot(pg, "03-random-sample-tried")

    from collectors_module.workflows.models import Workflow

    sampler = Workflow.objects.get(public_id="sample-all").nodes.get()
    assert sampler.model_version.model.model_type_id == "random-sample"
    assert sampler.model_version.output_info["params"]["keep_fraction"] == 1

    # 2. Image to text: the built-in OCR model, then a random sample reading its output.
    new_workflow(pg, "read-text")
    choose(pg, "builtin:ocr")
    assert pg.get_by_text("This model has no parameters.").is_visible()
    pg.get_by_label("Node ID").fill("text")
    add_and_save(pg, "text")
    try_it(pg, image)
    out = pg.locator("#out-text")
    text = out.locator("pre.wf-text").inner_text()
    assert "OPEN" in text.upper()
    assert "24" in text
    assert "ms" in out.inner_text()
    shot(pg, "04-image-to-text-tried")

    # Adding a second node: its inputs are checkboxes of the earlier nodes.
    choose(pg, "op:random-sample")
    reads = pg.get_by_role("checkbox", name="text")
    assert reads.is_checked()  # a chain by default
    pg.get_by_label("keep_fraction").fill("2")  # out of range: shown next to the field
    pg.get_by_role("button", name="Add node").click()
    error = pg.locator("#nf-p_keep_fraction_error")
    error.wait_for()
    assert "from 0 to 1" in error.inner_text()
    shot(pg, "05-bad-param")
    pg.get_by_label("keep_fraction").fill("1")
    add_and_save(pg, "sample")
    assert pg.locator("svg.wf-svg path[marker-end]").count() == 2
    shot(pg, "06-two-nodes")

    # 3. A template: uncertain predictions (the source model, then max probability below 0.5).
    pg.get_by_role("link", name="Workflow Builder").first.click()
    pg.get_by_label("Workflow ID").fill("uncertain")
    pg.get_by_label("Start from").select_option("uncertain-predictions")
    pg.get_by_role("button", name="Create workflow").click()
    pg.get_by_role("heading", name="Workflow uncertain").wait_for()
    assert pg.locator("#node-uncertain").inner_text().count("threshold=0.5") == 1
    try_it(pg, image)  # mostly white: the classifier is sure, so the input is filtered out
    assert pg.locator("#try-verdict").inner_text().startswith("Filtered out by node uncertain")
    assert pg.locator("#out-source meter").count() >= 1  # the concepts drawn as bars
    shot(pg, "07-template-tried")
    pg.get_by_role("link", name="Workflow Builder").first.click()
    assert pg.locator(".wf-table tbody tr").count() == 3
    shot(pg, "08-builder-list")

    # 375px wide: no horizontal scrolling.
    pg.set_viewport_size({"width": 375, "height": 800})
    pg.goto(base + "/apps/shop/workflows/read-text/")
    assert pg.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")
    shot(pg, "09-narrow-editor")
    pg.goto(base + "/apps/shop/workflows/")
    assert pg.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")
    shot(pg, "10-narrow-builder-list")
    pg.set_viewport_size({"width": 1280, "height": 900})

    # Knowledge graph: add, then delete after confirming.
    pg.get_by_role("link", name="Knowledge graph").first.click()
    pg.get_by_label("Subject concept", exact=True).fill("red")
    pg.get_by_label("Relation", exact=True).select_option("synonym")
    pg.get_by_label("Object concept", exact=True).fill("rouge")
    pg.get_by_role("button", name="Add relation").click()
    pg.get_by_text("Relation added.").wait_for()
    assert "Relations (1)" in pg.locator("#kg-panel").inner_text()
    shot(pg, "11-knowledge-graph")
    pg.once("dialog", lambda d: d.accept())
    pg.get_by_role("button", name="Delete red synonym rouge").click()
    pg.get_by_text("No relations yet.").wait_for()

    assert pg.problems == []  # no CSP violations, no script errors
