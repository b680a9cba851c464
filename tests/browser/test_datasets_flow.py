"""The datasets pages in Debian's chromium against a live server with a real Celery worker: a
collector captures four QR predictions; create a dataset, add the inputs captured by the
collector (and see the error next to the field for an unknown one), make a version, export it
as COCO while the progress bar moves, download the archive and open it with pycocotools, and
filter the inputs gallery by the dataset.

Screenshots go to screenshots/datasets-flow/ (the folder is printed).
"""

from __future__ import annotations

import base64
import re
import zipfile

import pytest
import requests
from pycocotools.coco import COCO

from tests.datasets.support import QR, qr_png
from tests.support.browser import screenshots_dir
from tests.support.pages import PASSWORD

pytestmark = [pytest.mark.browser, pytest.mark.worker, pytest.mark.django_db(transaction=True)]

N = 4
WAIT_MS = 60_000


def test_datasets_flow(
    live_server,
    browser_context,
    celery_workers,
    media_root,
    make_user,
    make_app,
    make_key,
    make_collector,
    tmp_path,
):
    from playwright.sync_api import expect

    from collectors_module.datasets.models import DatasetInput

    shots = screenshots_dir("datasets-flow")
    print(f"\nscreenshots: {shots}")
    step = iter(range(1, 100))

    def shot(name: str) -> None:
        page.screenshot(path=str(shots / f"{next(step):02d}-{name}.png"), full_page=True)

    alice = make_user("alice")
    app = make_app(alice, "app1")
    pat = make_key(alice, description="alice's PAT")
    tenant = type("T", (), {"user": alice, "app": app, "key": pat.key, "secret": pat.secret})
    # A slow export (a pause after each batch of one input) so the progress bar can be watched.
    worker = celery_workers.start(
        pool="solo",
        env={
            "MEDIA_ROOT": str(media_root),
            "DATASET_EXPORT_BATCH_SIZE": "1",
            "COLLECTORS_FAULTS": "dataset_export_batch:sleep",
            "COLLECTORS_FAULT_SLEEP": "0.7",
        },
    )
    make_collector(tenant, "qr-collector", source=QR)
    base = live_server.url
    path = (
        f"/v2/users/{QR['model_user_id']}/apps/{QR['model_app_id']}/models/{QR['model_id']}"
        f"/versions/{QR['model_version_id']}/outputs"
    )
    for i in range(N):
        body = {
            "inputs": [
                {"data": {"image": {"base64": base64.b64encode(qr_png(f"flow-{i}")).decode()}}}
            ]
        }
        r = requests.post(
            base + path, json=body, headers={"Authorization": f"Key {pat.secret}"}, timeout=60
        )
        assert r.json()["status"]["code"] == 10000, r.text

    page = browser_context.new_page()
    page.goto(base + "/accounts/login/")
    page.get_by_label("User ID").fill("alice")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(base + "/")
    # The captures land in the app while we log in.
    page.goto(base + "/apps/app1/")
    expect(page.locator("#gallery")).to_contain_text(f"{N} inputs", timeout=WAIT_MS)

    # -- create a dataset (a bad id first: the message is next to the field) -------------------
    page.get_by_role("link", name="Datasets").click()
    page.wait_for_url(base + "/apps/app1/datasets/")
    page.get_by_label("Dataset ID").fill("bad id!")
    page.get_by_role("button", name="Create dataset").click()
    expect(page.locator("#field-dataset_id .error")).to_contain_text("invalid")
    shot("create-error")
    page.get_by_label("Dataset ID").fill("training")
    page.get_by_label("Description").fill("QR codes seen in production")
    page.get_by_role("button", name="Create dataset").click()
    page.wait_for_url(base + "/apps/app1/datasets/training/")
    shot("dataset-created")

    # -- add the inputs captured by the collector ---------------------------------------------
    page.get_by_label("Captured by collector").fill("no-such-collector")
    page.get_by_role("button", name="Add the inputs of this filter").click()
    expect(page.locator("#field-collector .error")).to_contain_text("no collector")
    shot("add-error")
    page.get_by_label("Captured by collector").fill("qr-collector")
    page.get_by_role("button", name="Add the inputs of this filter").click()
    expect(page.get_by_text(f"{N} inputs captured by qr-collector added.")).to_be_visible()
    expect(page.locator("#inputs-total")).to_have_text(str(N))
    assert DatasetInput.objects.count() == N

    # -- make a version: building, then ready (the table polls) -------------------------------
    page.get_by_label("Version ID").fill("v1")
    page.get_by_role("button", name="Make version").click()
    row = page.locator('tr[data-version="v1"]')
    expect(row).to_be_visible()
    expect(row.get_by_text("ready")).to_be_visible(timeout=WAIT_MS)
    shot("version-ready")

    # -- export as COCO and watch the progress bar --------------------------------------------
    coco = row.locator('td[data-format="COCO"]')
    coco.get_by_role("button", name="Export").click()
    bar = coco.locator("progress")
    expect(bar).to_be_visible(timeout=WAIT_MS)
    seen = {int(bar.get_attribute("value") or 0)}
    deadline_values = 0
    shot_taken = False
    while coco.locator("progress").count() and deadline_values < 200:
        try:
            seen.add(int(coco.locator("progress").get_attribute("value", timeout=1000) or 0))
        except Exception:
            break
        if len(seen) == 2 and not shot_taken:
            shot("export-progress")
            shot_taken = True
        page.wait_for_timeout(150)
        deadline_values += 1
    download_link = coco.get_by_role("link", name="Download")
    expect(download_link).to_be_visible(timeout=WAIT_MS)
    assert len(seen) >= 2, f"the progress bar never moved: {seen}\n{worker.log()}"
    assert max(seen) > 0
    shot("export-done")

    with page.expect_download() as info:
        download_link.click()
    archive = tmp_path / "coco.zip"
    info.value.save_as(archive)
    assert re.match(r"training-v1-coco\.zip", info.value.suggested_filename)
    zf = zipfile.ZipFile(archive)
    (tmp_path / "instances.json").write_bytes(zf.read("annotations/instances.json"))
    dataset = COCO(str(tmp_path / "instances.json"))
    assert len(dataset.getImgIds()) == N
    assert len(dataset.getAnnIds()) == N  # one QR box per image
    assert [c["name"] for c in dataset.loadCats(dataset.getCatIds())] == ["qr-code"]

    # -- the gallery filtered by the dataset ---------------------------------------------------
    page.goto(base + "/apps/app1/")
    page.get_by_label("Dataset").select_option("training")
    page.get_by_role("button", name="Filter").click()
    expect(page.locator("#gallery")).to_contain_text(f"{N} inputs in dataset training")
    shot("gallery-by-dataset")
